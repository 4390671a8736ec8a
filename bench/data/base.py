"""The one dataset interface every stage reads: ids, class names, images, masks, image-level labels.

A `SegDataset` is a thin, lazy view over files on disk (nothing is loaded at construction except
the id list and the image-level labels). `ds[i]` returns

    dict(id=str, image=np.uint8 (H, W, 3), mask=np.uint8 (H, W) or None,
         labels=np.float32 (num_classes - 1,))     # multi-hot over the foreground classes 1..C-1

Masks hold class indices 0..C-1 and 255 (ignore). `labels[k]` refers to class `k + 1`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from weakclip.core.io import IGNORE_INDEX, load_image, load_mask


class SegDataset:
    """Base class: subclasses set the attributes below and implement `image_path` and `mask_path`."""

    name: str = "dataset"
    class_names: list[str]  # set by subclasses; index 0 = "background"
    # Class indices that can never occur in this label space (e.g. the 10 unused COCO ids); the evaluator
    # reports None for them and leaves them out of the mean.
    unused_classes: tuple[int, ...] = ()

    def __init__(self, ids: list[str], with_masks: bool = True):
        self.ids = list(ids)
        self.with_masks = with_masks
        self._labels: dict[str, np.ndarray] = {}

    # ---- to implement -------------------------------------------------------------------------
    def image_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def mask_path(self, image_id: str) -> Path:
        raise NotImplementedError

    # ---- shared behaviour ---------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image = self.load_image(image_id)
        mask = self.load_mask(image_id) if self.with_masks else None
        if mask is not None and mask.shape != image.shape[:2]:
            raise ValueError(
                f"{self.mask_path(image_id)}: mask size {mask.shape[::-1]} (W, H) differs from image "
                f"{self.image_path(image_id)} size {image.shape[1::-1]}"
            )
        return {"id": image_id, "image": image, "mask": mask, "labels": self.labels(image_id)}

    def load_image(self, image_id: str) -> np.ndarray:
        return load_image(self.image_path(image_id))  # (H, W, 3) uint8

    def load_mask(self, image_id: str) -> np.ndarray:
        """(H, W) uint8 class indices, 255 = ignore; a value >= num_classes is an error naming the file."""
        path = self.mask_path(image_id)
        mask = load_mask(path)
        check_mask_values(mask, self.num_classes, path)
        return mask

    def labels(self, image_id: str) -> np.ndarray:
        """Multi-hot (num_classes - 1,) float32 over the foreground classes."""
        if image_id not in self._labels:
            self._labels[image_id] = labels_from_mask(self.load_mask(image_id), self.num_classes)
        return self._labels[image_id]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)}, num_classes={self.num_classes})"


def check_mask_values(mask: np.ndarray, num_classes: int, path) -> None:
    values = np.unique(mask)
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(
            f"{path}: label value(s) {bad.tolist()} >= num_classes={num_classes} (only 0..{num_classes - 1} "
            f"and {IGNORE_INDEX} = ignore are allowed)"
        )


def labels_from_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Image-level labels = the foreground classes present in the mask (0 and 255 excluded)."""
    present = np.bincount(mask.ravel(), minlength=256)[1:num_classes] > 0
    return present.astype(np.float32)  # (num_classes - 1,)


def multi_hot(indices, num_classes: int, source="") -> np.ndarray:
    """Foreground class indices (1..C-1) -> multi-hot (C-1,) float32."""
    out = np.zeros(num_classes - 1, dtype=np.float32)
    for k in indices:
        k = int(k)
        if not 1 <= k < num_classes:
            raise ValueError(
                f"{source}: image-level label {k} outside the foreground range 1..{num_classes - 1}"
            )
        out[k - 1] = 1.0
    return out


def read_id_list(path: str | Path) -> list[str]:
    """Read an ImageSets-style list: one id per line; also accepts lines like
    'JPEGImages/x.jpg SegmentationClassAug/x.png'
    lines (the first token's stem is the id). Blank lines are skipped; an empty list is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    ids = []
    for line in path.read_text().splitlines():
        token = line.strip().split()[0] if line.strip() else ""
        if token:
            is_path = "/" in token or token.lower().endswith((".jpg", ".jpeg", ".png"))
            ids.append(Path(token).stem if is_path else token)
    if not ids:
        raise ValueError(f"{path}: the image list is empty")
    return ids


def load_cls_labels(path: str | Path, num_classes: int) -> dict[str, np.ndarray]:
    """Image-level labels from a file, as {id: multi-hot (C-1,) float32}.

    Accepted formats:
      - voc-mini / synthetic JSON: {"classes": [...], "images": {id: {"labels": [fg indices 1..C-1], ...}}}
      - plain JSON {id: [fg indices 1..C-1]} or {id: multi-hot list of length C-1}
      - IRN-style .npy dict {id (str, or int like 2007000032): multi-hot (C-1,)}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image-level label file not found: {path}")
    if path.suffix == ".npy":
        raw = np.load(path, allow_pickle=True).item()
        raw = {_irn_id(k): np.asarray(v) for k, v in raw.items()}
    else:
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(raw, dict) and "images" in raw and isinstance(raw["images"], dict):
            classes = raw.get("classes")
            if classes is not None and len(classes) != num_classes:
                raise ValueError(f"{path}: lists {len(classes)} classes, the dataset has {num_classes}")
            raw = {k: v["labels"] if isinstance(v, dict) else v for k, v in raw["images"].items()}
    out = {}
    for image_id, value in raw.items():
        value = np.asarray(value)
        if value.shape == (num_classes - 1,) and set(np.unique(value).tolist()) <= {0, 1}:
            out[str(image_id)] = value.astype(np.float32)  # already multi-hot
        else:
            out[str(image_id)] = multi_hot(value.ravel().tolist(), num_classes, source=f"{path} [{image_id}]")
    return out


def _irn_id(key) -> str:
    """IRN's cls_labels.npy keys VOC ids as ints (2007_000032 -> 2007000032); map them back."""
    if isinstance(key, (int, np.integer)):
        s = str(int(key))
        return f"{s[:4]}_{s[4:]}" if len(s) == 10 else s
    return str(key)
