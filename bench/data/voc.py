"""PASCAL VOC 2012 (+ SBD's SegmentationClassAug) in its standard folder layout.

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png       official masks (train + val, 2,913 images): the ground truth
    root/SegmentationClassAug/<id>.png    SBD-augmented masks (train_aug + val, 12,031): coarser; where the
                                          image-level labels of train_aug images come from
    root/ImageSets/Segmentation/{train,train_aug,val}.txt   (ImageSets/SegmentationAug/ is also searched)
    root/cls_labels.json (or .npy, or ../cls_labels.json)   optional image-level labels

Ground truth (`gt_masks`, default SegmentationClass, else SegmentationClassAug when only that exists) is what
every score is computed against: the official masks wherever they exist (docs/protocol.md). Image-level labels
come from the label file when there is one, else from the `label_masks` folder when given (SBD's masks for
train_aug), else from the ground truth; never from a `mask_dir` override (pseudo masks are training targets,
not weak labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.base import SegDataset, labels_from_mask, load_cls_labels, read_id_list
from weakclip.core.io import load_mask

VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]

VOC_DOWNLOAD_HINT = (
    "download PASCAL VOC 2012 (VOCtrainval_11-May-2012.tar, http://host.robots.ox.ac.uk/pascal/VOC/voc2012/) "
    "and the SBD-augmented masks SegmentationClassAug (with ImageSets/Segmentation/train_aug.txt), and point "
    "the dataset root at the folder holding JPEGImages/, SegmentationClass/, SegmentationClassAug/ and "
    "ImageSets/Segmentation/"
)

_LIST_DIRS = ("ImageSets/Segmentation", "ImageSets/SegmentationAug")
_LABEL_FILES = ("cls_labels.json", "cls_labels.npy", "../cls_labels.json")
_MAX_LISTED = 5  # how many missing files an error message names


class VOCDataset(SegDataset):
    """VOC-layout dataset (also used for voc-mini and the synthetic profile).

    Args:
        root: folder holding JPEGImages/, SegmentationClass[Aug]/, ImageSets/Segmentation/.
        split: list name, e.g. "train", "train_aug", "val" (ImageSets/Segmentation/<split>.txt).
        mask_dir: folder of <id>.png masks replacing the ground truth (absolute, or relative to root),
            e.g. pseudo masks to train on.
        cls_labels: a label file path, or a {id: multi-hot} dict; default: searched next to root.
        with_masks: False for splits without masks (items then have mask=None).
        gt_masks: the ground-truth folder under root (default: SegmentationClass, else SegmentationClassAug).
        label_masks: a folder under root to read image-level labels from when the label file lacks an id.
        lists_dir: a folder searched first for <split>.txt (split lists a pipeline wrote outside the dataset).
    """

    def __init__(
        self,
        root,
        split: str,
        mask_dir=None,
        cls_labels=None,
        with_masks: bool = True,
        class_names: list[str] | None = None,
        name: str = "voc",
        image_ext: str = ".jpg",
        gt_masks: str | None = None,
        label_masks: str | None = None,
        lists_dir=None,
    ):
        self.root = Path(root)
        self.gt_masks, self.label_masks = gt_masks, label_masks
        self.lists_dir = Path(lists_dir) if lists_dir else None
        if not self.root.is_dir():
            raise FileNotFoundError(f"VOC dataset root not found: {self.root} ({VOC_DOWNLOAD_HINT})")
        self.split = split
        self.name = name
        self.class_names = list(class_names or VOC_CLASSES)
        self.image_ext = image_ext
        super().__init__(read_id_list(self._find_list(split)), with_masks=with_masks)
        self.image_dir = self._image_folder()
        self.gt_mask_dir = self._default_mask_dir()
        if mask_dir is not None:
            mask_dir = Path(mask_dir)
            self.mask_dir = mask_dir if mask_dir.is_absolute() else self.root / mask_dir
        else:
            self.mask_dir = self.gt_mask_dir
        self._check_files()
        self._file_labels = self._read_label_file(cls_labels)

    # ---- paths --------------------------------------------------------------------------------
    def image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}{self.image_ext}"

    def mask_path(self, image_id: str) -> Path:
        if self.mask_dir is None:
            raise FileNotFoundError(f"{self.root}: no SegmentationClass/ or SegmentationClassAug/ folder")
        return self.mask_dir / f"{image_id}.png"

    def labels(self, image_id: str) -> np.ndarray:
        if image_id in self._file_labels:
            return self._file_labels[image_id]
        if image_id not in self._labels:
            source = self.label_mask_dir or self.gt_mask_dir
            if source is None:
                raise FileNotFoundError(
                    f"no image-level labels for {image_id!r}: it is not in the label file and {self.root} "
                    "has no masks to derive them from"
                )
            self._labels[image_id] = labels_from_mask(load_mask(source / f"{image_id}.png"), self.num_classes)
        return self._labels[image_id]

    @property
    def label_mask_dir(self) -> Path | None:
        return self.root / self.label_masks if self.label_masks else None

    # ---- construction helpers -----------------------------------------------------------------
    def _find_list(self, split: str) -> Path:
        candidates = [self.root / d / f"{split}.txt" for d in _LIST_DIRS]
        if self.lists_dir is not None:
            candidates.insert(0, self.lists_dir / f"{split}.txt")
        for path in candidates:
            if path.is_file():
                return path
        available = sorted({p.stem for d in _LIST_DIRS for p in (self.root / d).glob("*.txt")})
        raise FileNotFoundError(
            f"split list {split!r} not found (looked for {', '.join(map(str, candidates))}); "
            f"available splits: {available or 'none'}"
        )

    def _image_folder(self) -> Path:
        return self.root / "JPEGImages"

    def _default_mask_dir(self) -> Path | None:
        if self.gt_masks:
            return self.root / self.gt_masks
        for sub in ("SegmentationClass", "SegmentationClassAug"):  # the official masks first
            if (self.root / sub).is_dir():
                return self.root / sub
        return None

    def _check_files(self) -> None:
        """Fail early, naming the files, when images or masks of the split are missing."""
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} ({VOC_DOWNLOAD_HINT})")
        missing = [p for p in map(self.image_path, self.ids) if not p.is_file()]
        if missing:
            raise FileNotFoundError(_missing_message("image", missing, len(self.ids), self.split))
        if not self.with_masks:
            return
        if self.mask_dir is None or not self.mask_dir.is_dir():
            raise FileNotFoundError(
                f"mask folder not found: {self.mask_dir or self.root / 'SegmentationClass'} "
                "(pass with_masks=False for a split without masks)"
            )
        missing = [p for p in map(self.mask_path, self.ids) if not p.is_file()]
        if missing:
            raise FileNotFoundError(_missing_message("mask", missing, len(self.ids), self.split))

    def _read_label_file(self, cls_labels) -> dict[str, np.ndarray]:
        if isinstance(cls_labels, dict):
            return {str(k): np.asarray(v, dtype=np.float32) for k, v in cls_labels.items()}
        if cls_labels is not None:
            return load_cls_labels(cls_labels, self.num_classes)
        for rel in _LABEL_FILES:
            path = (self.root / rel).resolve()
            if path.is_file():
                return load_cls_labels(path, self.num_classes)
        return {}


def _missing_message(kind: str, missing: list[Path], total: int, split: str) -> str:
    shown = ", ".join(str(p) for p in missing[:_MAX_LISTED])
    more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    return f"{len(missing)} of {total} {kind} file(s) of split {split!r} missing: {shown}{more}"
