"""Confusion-matrix segmentation metrics: mIoU and friends, over a whole list of images.

Conventions (also the JSON contract of `python -m bench.evaluate`):
- One confusion matrix over all pixels of all images (not a mean of per-image scores). Ground truth 255 is
  never scored. Rows = ground-truth class, columns = predicted class.
- A class *occurs* when its union TP + FP + FN > 0, i.e. it is in the ground truth or in the prediction.
  Its IoU = TP / (TP + FP + FN); a class that never occurs has IoU None and is left out of the mean
  (mIoU = mean over occurring classes, as in mmseg's nanmean and PSA/IRN's evaluation). Classes listed in
  `exclude_classes` (e.g. the 10 unused COCO ids) are None everywhere and never in the mean.
- precision = TP / (TP + FP), recall = TP / (TP + FN) (None when the denominator is 0);
  fp = FP / (TP + FP + FN) and fn = FN / (TP + FP + FN): the shares of the union lost to false positives and
  false negatives, as in PSA's and IRN's eval scripts, so that iou + fp + fn = 1 for every occurring class.
- A prediction may contain 255 ("no decision"); `pred_ignore` says how it is scored:
    "background": counted as class 0;
    "ignore":     the pixel is left out of the matrix (coverage reports how many were);
    "miss":       counted as wrong: an FN of the ground-truth class and an FP of no class.
  coverage = share of scored (gt != 255) pixels whose prediction is not 255 (the same in every mode).
- All fractions are in [0, 1].

The accumulator keeps a (C, C + 1) matrix whose last column counts predicted-255 pixels, so every mode is
a different reading of the same counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from weakclip.core.io import IGNORE_INDEX, load_mask

PRED_IGNORE_MODES = ("background", "ignore", "miss")


class ConfusionMatrix:
    """Accumulate (pred, gt) index arrays; `compute()` returns the metrics dict."""

    def __init__(
        self,
        num_classes: int,
        pred_ignore: str = "background",
        exclude_classes=(),
        ignore_index: int = IGNORE_INDEX,
    ):
        if not 1 <= num_classes <= 255:
            raise ValueError(f"num_classes must be in 1..255, got {num_classes}")
        if pred_ignore not in PRED_IGNORE_MODES:
            raise ValueError(f"pred_ignore must be one of {PRED_IGNORE_MODES}, got {pred_ignore!r}")
        self.num_classes, self.pred_ignore, self.ignore_index = num_classes, pred_ignore, ignore_index
        self.exclude_classes = tuple(sorted({int(c) for c in exclude_classes}))
        if any(not 0 <= c < num_classes for c in self.exclude_classes):
            raise ValueError(f"exclude_classes {self.exclude_classes} must lie in 0..{num_classes - 1}")
        c = num_classes
        self.matrix = np.zeros((c, c + 1), dtype=np.int64)  # column c = predicted 255
        self.n_images = 0
        # Columns of the (256, 256) joint histogram that feed the matrix: classes, then 255.
        self._columns = np.r_[np.arange(c), ignore_index]

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str = "prediction", gt_name: str | None = None):
        """Add one image: pred and gt are (H, W) integer arrays of class indices (255 allowed in both);
        `name` / `gt_name` label them in error messages."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"{name}: prediction shape {pred.shape} differs from ground truth {gt.shape}")
        pred, gt = _as_uint8(pred, name), _as_uint8(gt, gt_name or f"{name} (ground truth)")
        # One pass over the pixels: a (256, 256) joint histogram of (gt value, pred value); validation and the
        # mapping to the (C, C + 1) matrix then work on the histogram, not the pixels.
        joint = np.bincount((gt.astype(np.intp) << 8 | pred).ravel(), minlength=65536).reshape(256, 256)
        self._check_values(joint.sum(axis=1), gt_name or f"{name} (ground truth)")
        self._check_values(joint.sum(axis=0), name)
        self.matrix += joint[: self.num_classes][:, self._columns]  # gt 255 (row 255) is never scored
        self.n_images += 1

    def _check_values(self, counts: np.ndarray, name: str) -> None:
        """counts: (256,) pixels per value; values >= C other than 255 are an error naming `name`."""
        invalid = np.flatnonzero(counts[self.num_classes :]) + self.num_classes
        invalid = invalid[invalid != self.ignore_index]
        if invalid.size:
            raise ValueError(
                f"{name}: label value(s) {invalid.tolist()} >= num_classes={self.num_classes} (and "
                f"not {self.ignore_index} = ignore)"
            )

    def merge(self, other: ConfusionMatrix) -> None:
        if other.matrix.shape != self.matrix.shape:
            raise ValueError("cannot merge confusion matrices of different num_classes")
        self.matrix += other.matrix
        self.n_images += other.n_images

    def effective_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(C, C) counts under `pred_ignore` and the (C,) per-gt-class count of predicted-255 misses."""
        m = self.matrix[:, :-1].copy()
        no_decision = self.matrix[:, -1]
        if self.pred_ignore == "background":
            m[:, 0] += no_decision
        missed = no_decision if self.pred_ignore == "miss" else np.zeros_like(no_decision)
        return m, missed

    def compute(self, class_names: list[str] | None = None) -> dict:
        m, missed = self.effective_matrix()
        tp = np.diag(m).astype(np.float64)
        fn = m.sum(axis=1) - tp + missed  # gt class c predicted as something else (or not at all, "miss")
        fp = m.sum(axis=0) - tp  # predicted c where gt is another class
        union = tp + fp + fn
        occurs = union > 0
        occurs[list(self.exclude_classes)] = False
        iou = _ratio(tp, union, occurs)
        scored = self.matrix.sum()
        decided = scored - self.matrix[:, -1].sum()
        ious = [v for v in iou if v is not None]
        result = {
            "miou": float(np.mean(ious)) if ious else None,
            "iou": iou,
            "precision": _ratio(tp, tp + fp, occurs),
            "recall": _ratio(tp, tp + fn, occurs),
            "fp": _ratio(fp, union, occurs),
            "fn": _ratio(fn, union, occurs),
            "pixel_accuracy": float(tp.sum() / (m.sum() + missed.sum())) if m.sum() + missed.sum() else None,
            "coverage": float(decided / scored) if scored else None,
            "n_images": self.n_images,
            "n_pixels": int(scored),
            "num_classes": self.num_classes,
            "n_classes_scored": len(ious),
            "pred_ignore": self.pred_ignore,
        }
        if self.exclude_classes:
            result["exclude_classes"] = list(self.exclude_classes)
        if class_names is not None:
            if len(class_names) != self.num_classes:
                raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
            result["class_names"] = list(class_names)
        return result


def _as_uint8(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    if values.dtype.kind not in "iub":  # a probability or score map, not labels: casting would truncate it
        raise ValueError(f"{name}: labels must be integers, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"{name}: label values outside 0..255")
    return values.astype(np.uint8)


def _ratio(num: np.ndarray, den: np.ndarray, occurs: np.ndarray) -> list:
    """num / den per class as floats; None where the class does not occur or den is 0."""
    return [float(n / d) if ok and d > 0 else None for n, d, ok in zip(num, den, occurs)]


def cam_to_mask(scores: np.ndarray, bg_threshold: float) -> np.ndarray:
    """(K, H, W) class scores (channel 0 = background) -> (H, W) uint8 argmax after setting channel 0 to the
    constant `bg_threshold` (PSA/IRN's rule: a pixel is background unless some class score exceeds it)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[0] = bg_threshold
    return np.argmax(scores, axis=0).astype(np.uint8)


def threshold_sweep(
    items,
    thresholds,
    chosen_threshold: float,
    num_classes: int,
    pred_ignore="background",
    exclude_classes=(),
    to_mask=cam_to_mask,
) -> dict:
    """Score CAMs at several background thresholds in one pass.

    items: iterable of (id, scores (K, H, W), gt (H, W)). The reported number is the mIoU at
    `chosen_threshold`, which the caller must have chosen WITHOUT this split's ground truth (e.g. on a
    held-out split, or the method's published value). The sweep is returned for plots only; the best
    threshold on this split is reported as `oracle_threshold` / `oracle_miou` (an optimistic reference,
    never the reported score).

    Returns {"sweep": [{"threshold", "miou"}...], "chosen_threshold", "chosen_miou", "chosen": metrics dict
    at the chosen threshold, "oracle_threshold", "oracle_miou"}.
    """
    grid = sorted({float(t) for t in thresholds} | {float(chosen_threshold)})
    cms = {t: ConfusionMatrix(num_classes, pred_ignore, exclude_classes) for t in grid}
    n = 0
    for image_id, scores, gt in items:
        scores = np.asarray(scores, dtype=np.float32)
        if scores.ndim != 3 or scores.shape[0] != num_classes or scores.shape[1:] != np.shape(gt):
            raise ValueError(
                f"{image_id}: scores of shape {scores.shape} do not match (num_classes={num_classes}, "
                f"H, W) = (.., {np.shape(gt)})"
            )
        for t, cm in cms.items():
            cm.update(to_mask(scores, t), gt, name=str(image_id))
        n += 1
    if n == 0:
        raise ValueError("threshold_sweep: no images")
    results = {t: cm.compute() for t, cm in cms.items()}
    requested = sorted({float(t) for t in thresholds})
    sweep = [{"threshold": t, "miou": results[t]["miou"]} for t in requested]
    oracle = max(sweep, key=lambda row: -1.0 if row["miou"] is None else row["miou"])
    chosen = results[float(chosen_threshold)]
    return {
        "sweep": sweep,
        "chosen_threshold": float(chosen_threshold),
        "chosen_miou": chosen["miou"],
        "chosen": chosen,
        "oracle_threshold": oracle["threshold"],
        "oracle_miou": oracle["miou"],
    }


def evaluate_masks(
    pred_dir,
    gt_dir,
    ids,
    num_classes: int,
    pred_ignore: str = "background",
    exclude_classes=(),
    class_names=None,
    progress: bool = False,
) -> dict:
    """Score `<pred_dir>/<id>.png` against `<gt_dir>/<id>.png` for every id; see the module docstring.

    Errors name the file: a missing prediction or ground truth, a size mismatch, a label >= num_classes that
    is not 255, a non-index (e.g. RGB) or corrupt PNG; an empty id list is an error too.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    ids = list(ids)
    if not ids:
        raise ValueError("evaluate_masks: the id list is empty")
    for folder, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {folder}")
    cm = ConfusionMatrix(num_classes, pred_ignore, exclude_classes)
    for image_id in tqdm(ids, desc="evaluate", disable=not progress, unit="img"):
        gt_path, pred_path = gt_dir / f"{image_id}.png", pred_dir / f"{image_id}.png"
        if not gt_path.is_file():
            raise FileNotFoundError(f"no ground truth for list id {image_id!r}: {gt_path} not found")
        if not pred_path.is_file():
            raise FileNotFoundError(f"missing prediction for {image_id!r}: {pred_path} not found")
        gt, pred = load_mask(gt_path), load_mask(pred_path)
        if pred.shape != gt.shape:
            raise ValueError(
                f"{pred_path}: size {pred.shape[::-1]} (W, H) differs from the ground truth "
                f"{gt_path} {gt.shape[::-1]}"
            )
        cm.update(pred, gt, name=str(pred_path), gt_name=str(gt_path))
    return cm.compute(class_names)


def iter_cams(cam_dir, gt_dir, ids):
    """Yield (id, scores (K, H, W) float32, gt (H, W) uint8) from `<cam_dir>/<id>.npy` and
    `<gt_dir>/<id>.png`: the input `threshold_sweep` takes."""
    cam_dir, gt_dir = Path(cam_dir), Path(gt_dir)
    for image_id in ids:
        path = cam_dir / f"{image_id}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"missing CAM for {image_id!r}: {path} not found")
        try:
            scores = np.load(path).astype(np.float32)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path}: cannot read CAM ({exc})") from exc
        yield image_id, scores, load_mask(gt_dir / f"{image_id}.png")
