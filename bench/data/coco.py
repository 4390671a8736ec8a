"""COCO 2014 in the usual VOC-style mask conversion, with an explicit label space.

Layout (what the common COCO->VOC conversion scripts write):

    root/JPEGImages/{train2014,val2014}/<id>.jpg
    root/SegmentationClass/{train2014,val2014}/<id>.png   pixel value = COCO category id (1..90),
                                                           0 = background,
                                                           255 = ignore
    root/ImageSets/Segmentation/<split>.txt                (or root/ImageSets/<split>.txt, root/<split>.txt)

Label spaces (the `label_space` argument, written into `.name` and so into every result):

- "coco91": 91 classes indexed by COCO category id (0 = background, 1..90). The 10 ids in 1..90 that
  COCO's 80 categories do not use (COCO91_UNUSED_IDS) never occur: the evaluator reports None for them and
  leaves them out of the mean (`unused_classes`). WeakCLIP trains with K = 91 this way. (The original
  91-category list also had 91 "hair brush", which lies outside 0..90 and is not represented.)
- "coco81": 81 contiguous classes, background + the 80 categories in id order (person = 1, toothbrush = 80).

Masks on disk always hold category ids; `remap_mask` converts them to the chosen label space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.base import labels_from_mask
from bench.data.voc import VOCDataset
from weakclip.core.io import IGNORE_INDEX, load_mask

# COCO's 80 categories: category id -> name (ids as in instances_*.json).
COCO_CATEGORIES: dict[int, str] = {
    1: "person",
    2: "bicycle",
    3: "car",
    4: "motorcycle",
    5: "airplane",
    6: "bus",
    7: "train",
    8: "truck",
    9: "boat",
    10: "traffic light",
    11: "fire hydrant",
    13: "stop sign",
    14: "parking meter",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
    27: "backpack",
    28: "umbrella",
    31: "handbag",
    32: "tie",
    33: "suitcase",
    34: "frisbee",
    35: "skis",
    36: "snowboard",
    37: "sports ball",
    38: "kite",
    39: "baseball bat",
    40: "baseball glove",
    41: "skateboard",
    42: "surfboard",
    43: "tennis racket",
    44: "bottle",
    46: "wine glass",
    47: "cup",
    48: "fork",
    49: "knife",
    50: "spoon",
    51: "bowl",
    52: "banana",
    53: "apple",
    54: "sandwich",
    55: "orange",
    56: "broccoli",
    57: "carrot",
    58: "hot dog",
    59: "pizza",
    60: "donut",
    61: "cake",
    62: "chair",
    63: "couch",
    64: "potted plant",
    65: "bed",
    67: "dining table",
    70: "toilet",
    72: "tv",
    73: "laptop",
    74: "mouse",
    75: "remote",
    76: "keyboard",
    77: "cell phone",
    78: "microwave",
    79: "oven",
    80: "toaster",
    81: "sink",
    82: "refrigerator",
    84: "book",
    85: "clock",
    86: "vase",
    87: "scissors",
    88: "teddy bear",
    89: "hair drier",
    90: "toothbrush",
}
# Ids in 1..90 with no COCO category (names from the original 91-category list, for readable tables only).
COCO91_UNUSED_IDS: dict[int, str] = {
    12: "street sign",
    26: "hat",
    29: "shoe",
    30: "eye glasses",
    45: "plate",
    66: "mirror",
    68: "window",
    69: "desk",
    71: "door",
    83: "blender",
}
assert len(COCO_CATEGORIES) == 80 and not set(COCO_CATEGORIES) & set(COCO91_UNUSED_IDS)
assert set(COCO_CATEGORIES) | set(COCO91_UNUSED_IDS) == set(range(1, 91))

LABEL_SPACES = ("coco91", "coco81")

# category id -> contiguous index (coco81); background 0 -> 0.
COCO81_INDEX: dict[int, int] = {0: 0, **{cid: i + 1 for i, cid in enumerate(sorted(COCO_CATEGORIES))}}
# category id -> index in coco91: the identity on the used ids.
COCO91_INDEX: dict[int, int] = {0: 0, **{cid: cid for cid in COCO_CATEGORIES}}

COCO81_CLASSES: list[str] = ["background"] + [COCO_CATEGORIES[c] for c in sorted(COCO_CATEGORIES)]
COCO91_CLASSES: list[str] = ["background"] + [
    COCO_CATEGORIES.get(i, COCO91_UNUSED_IDS.get(i)) for i in range(1, 91)
]

COCO_DOWNLOAD_HINT = (
    "download COCO 2014 (train2014.zip, val2014.zip, annotations_trainval2014.zip from "
    "https://cocodataset.org) "
    "and convert the instance annotations to VOC-style masks: root/JPEGImages/{train2014,val2014}/<id>.jpg, "
    "root/SegmentationClass/{train2014,val2014}/<id>.png holding COCO category ids (0 = background, "
    "255 = ignore) and root/ImageSets/Segmentation/{train,val}.txt"
)


def class_names(label_space: str) -> list[str]:
    _check_space(label_space)
    return list(COCO91_CLASSES if label_space == "coco91" else COCO81_CLASSES)


def unused_classes(label_space: str) -> tuple[int, ...]:
    """Class indices that never occur in the label space (None in every per-class metric)."""
    _check_space(label_space)
    return tuple(sorted(COCO91_UNUSED_IDS)) if label_space == "coco91" else ()


def category_lut(label_space: str) -> np.ndarray:
    """(256,) int16 lookup: category id (or 255) -> class index in the label space; -1 marks a value that is
    not a COCO category (an unused id or anything above 90)."""
    _check_space(label_space)
    table = COCO91_INDEX if label_space == "coco91" else COCO81_INDEX
    lut = np.full(256, -1, dtype=np.int16)
    for cid, index in table.items():
        lut[cid] = index
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def remap_mask(mask: np.ndarray, label_space: str, source="mask") -> np.ndarray:
    """Category-id mask (H, W) uint8 -> class-index mask in `label_space`; unused/unknown ids are an error."""
    lut = category_lut(label_space)
    out = lut[mask]
    if (out < 0).any():
        bad = np.unique(mask[out < 0]).tolist()
        raise ValueError(
            f"{source}: value(s) {bad} are not COCO category ids (unused ids: "
            f"{sorted(COCO91_UNUSED_IDS)}; valid: 0, 1..90 used ids, 255)"
        )
    return out.astype(np.uint8)


def index_to_category(label_space: str) -> np.ndarray:
    """(num_classes,) int: class index in `label_space` -> COCO category id (inverse of the mapping)."""
    _check_space(label_space)
    table = COCO91_INDEX if label_space == "coco91" else COCO81_INDEX
    n = 91 if label_space == "coco91" else 81
    inverse = np.full(n, -1, dtype=np.int64)
    for cid, index in table.items():
        inverse[index] = cid
    return inverse


def _check_space(label_space: str) -> None:
    if label_space not in LABEL_SPACES:
        raise ValueError(f"label_space must be one of {LABEL_SPACES}, got {label_space!r}")


class COCODataset(VOCDataset):
    """COCO 2014 VOC-style masks; `split` is "train" or "val" (files under <split>2014/).

    A label file (`cls_labels`), when given, holds image-level labels in the chosen label space's class
    indices (index lists or multi-hot of length num_classes - 1); otherwise they come from the masks.
    """

    def __init__(
        self,
        root,
        split: str,
        label_space: str = "coco81",
        mask_dir=None,
        cls_labels=None,
        with_masks: bool = True,
        year: int = 2014,
        gt_masks: str | None = None,
        label_masks: str | None = None,
    ):
        _check_space(label_space)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"COCO dataset root not found: {root} ({COCO_DOWNLOAD_HINT})")
        self.label_space = label_space
        self.unused_classes = unused_classes(label_space)
        self.subdir = f"{split}{year}" if split in ("train", "val") else split
        super().__init__(
            root,
            split,
            mask_dir=mask_dir,
            cls_labels=cls_labels,
            with_masks=with_masks,
            class_names=class_names(label_space),
            name=label_space,
            gt_masks=gt_masks,
            label_masks=label_masks,
        )

    def _find_list(self, split: str) -> Path:
        candidates = (
            self.root / "ImageSets" / "Segmentation" / f"{split}.txt",
            self.root / "ImageSets" / f"{split}.txt",
            self.root / f"{split}.txt",
        )
        for path in candidates:
            if path.is_file():
                return path
        raise FileNotFoundError(
            f"COCO split list {split!r} not found under {self.root} ({COCO_DOWNLOAD_HINT})"
        )

    def _image_folder(self) -> Path:
        return self.root / "JPEGImages" / self.subdir

    def _default_mask_dir(self) -> Path | None:
        path = self.root / (self.gt_masks or "SegmentationClass") / self.subdir
        return path if path.is_dir() else None

    def load_mask(self, image_id: str) -> np.ndarray:
        """Ground-truth masks hold category ids and are remapped; a `mask_dir` override (pseudo masks written
        by a stage) already holds class indices of the label space."""
        if self.mask_dir != self.gt_mask_dir:
            return super().load_mask(image_id)
        return self._load_gt(image_id)

    def labels(self, image_id: str) -> np.ndarray:
        if image_id not in self._file_labels and image_id not in self._labels:
            if self.gt_mask_dir is None:
                raise FileNotFoundError(
                    f"no image-level labels for {image_id!r} and no masks under {self.root}"
                )
            self._labels[image_id] = labels_from_mask(self._load_gt(image_id), self.num_classes)
        return super().labels(image_id)

    def _load_gt(self, image_id: str) -> np.ndarray:
        path = self.gt_mask_dir / f"{image_id}.png"
        return remap_mask(load_mask(path), self.label_space, source=path)
