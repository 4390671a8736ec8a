"""Shared pieces of the baselines: config dataclasses from kwargs, the CAM file contract, samples.

The CAM/seed contract (team-wide): `<id>.npy`, float16 (K, H, W), K = num_classes, channel 0 the
background score, foreground channels in [0, 1] (each class normalised by its max), channels of classes
absent from the image-level labels exactly 0, at image resolution. Every reader here validates a file
against that contract and raises an error naming the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from weakclip.core.io import atomic_path

T = TypeVar("T")


def iter_samples(samples: Iterable[dict] | Any) -> Iterator[dict]:
    """Iterate a list/iterable of sample dicts or a dataset with __len__/__getitem__."""
    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__") and not isinstance(samples, dict):
        for i in range(len(samples)):
            yield samples[i]
    else:
        yield from samples


def check_sample(sample: dict, num_classes: int | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(id, image uint8 (H,W,3), labels float32 (K-1,)) from a sample dict, with clear errors."""
    for key in ("id", "image", "labels"):
        if key not in sample:
            raise KeyError(f"sample is missing {key!r} (has {sorted(sample)})")
    sid, image = str(sample["id"]), np.asarray(sample["image"])
    labels = np.asarray(sample["labels"], dtype=np.float32).reshape(-1)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sample {sid}: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if num_classes is not None and labels.shape[0] != num_classes - 1:
        raise ValueError(f"sample {sid}: labels have {labels.shape[0]} entries, expected num_classes-1 = "
                         f"{num_classes - 1}")
    return sid, image, labels


def present_mask(labels: np.ndarray) -> np.ndarray:
    """(K,) bool: background (always) plus the classes of the multi-hot (K-1,) labels."""
    return np.concatenate([[True], np.asarray(labels).reshape(-1) > 0.5])


def normalise_by_max(cams: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Each channel (C, H, W) divided by its own max (ReLU first); all-zero channels stay zero."""
    cams = np.maximum(cams, 0)
    return cams / np.maximum(cams.reshape(cams.shape[0], -1).max(1), eps)[:, None, None]


def background_score(fg: np.ndarray, power: float = 1.0) -> np.ndarray:
    """CLIP-ES background (1 - max_c fg_c)^t over foreground channels (C, H, W) -> (H, W)."""
    top = fg.max(0) if fg.shape[0] else np.zeros(fg.shape[1:], fg.dtype)
    return np.power(np.clip(1.0 - top, 0.0, 1.0), power)


def assemble_cams(fg: np.ndarray, labels: np.ndarray, bg: np.ndarray | float) -> np.ndarray:
    """Contract CAMs (K, H, W) float32 from foreground scores of all K-1 classes, zeroing absent ones."""
    keep = present_mask(labels)
    out = np.zeros((len(keep),) + fg.shape[1:], np.float32)
    out[1:] = np.where(keep[1:, None, None], fg, 0.0)
    out[0] = bg
    return out


def validate_cams(cams: np.ndarray, *, name: str, num_classes: int | None = None,
                  size: tuple[int, int] | None = None, labels: np.ndarray | None = None,
                  check_range: bool = True) -> np.ndarray:
    """Check an array against the CAM contract; return it as float32. Errors name `name` (the file)."""
    if not isinstance(cams, np.ndarray) or cams.dtype.kind != "f":
        raise ValueError(f"{name}: CAMs must be a floating-point array, got "
                         f"{getattr(cams, 'dtype', type(cams).__name__)}")
    if cams.ndim != 3:
        raise ValueError(f"{name}: CAMs must be (K, H, W), got shape {cams.shape}")
    if num_classes is not None and cams.shape[0] != num_classes:
        raise ValueError(f"{name}: {cams.shape[0]} channels, expected K = num_classes = {num_classes}")
    if size is not None and tuple(cams.shape[1:]) != tuple(size):
        raise ValueError(f"{name}: CAM size {tuple(cams.shape[1:])} differs from the image size {tuple(size)}")
    cams = cams.astype(np.float32)
    if not np.isfinite(cams).all():
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    if check_range and (cams.min() < 0.0 or cams.max() > 1.0 + 1e-3):
        raise ValueError(f"{name}: values outside [0, 1] (min {cams.min():.4g}, max {cams.max():.4g})")
    if labels is not None:
        absent = ~present_mask(labels)
        if absent.shape[0] != cams.shape[0]:
            raise ValueError(f"{name}: labels give {absent.shape[0]} classes, CAMs have {cams.shape[0]}")
        if np.abs(cams[absent]).max(initial=0.0) > 0:
            bad = [int(c) for c in np.flatnonzero(absent) if np.abs(cams[c]).max() > 0]
            raise ValueError(f"{name}: non-zero scores for classes {bad} absent from the image-level labels")
    return np.minimum(cams, 1.0)


def load_cams(path: str | os.PathLike, **checks) -> np.ndarray:
    """Load and validate one `<id>.npy` CAM file (see validate_cams for the checks)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CAM file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: corrupt or unreadable .npy ({exc})") from exc
    return validate_cams(arr, name=str(path), **checks)


def save_cams(path: str | os.PathLike, cams: np.ndarray) -> None:
    """Write contract CAMs as float16 .npy atomically (validated first: a bad writer fails here)."""
    cams = validate_cams(np.asarray(cams, dtype=np.float32), name=str(path))
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, cams.astype(np.float16))


def scores_with_background(cams: np.ndarray, labels: np.ndarray, bg_threshold: float | None = None,
                           bg_power: float | None = None) -> np.ndarray:
    """(K, H, W) scores: channel 0 replaced by a constant threshold or (1 - max fg)^t if asked, else kept.

    Absent classes are set to -inf so that no argmax can pick them.
    """
    scores = np.array(cams, dtype=np.float32, copy=True)
    scores[~present_mask(labels)] = 0.0  # absent classes never count, not even towards (1 - max)^t
    if bg_threshold is not None and bg_power is not None:
        raise ValueError("give bg_threshold or bg_power, not both")
    if bg_threshold is not None:
        scores[0] = float(bg_threshold)
    elif bg_power is not None:
        scores[0] = background_score(scores[1:], bg_power)
    scores[~present_mask(labels)] = -np.inf
    return scores


def probs_from_scores(scores: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Scores (K, H, W) with -inf for absent classes -> per-pixel normalised probabilities (float32).

    Absent classes get probability 0; a pixel whose present scores are all ~0 becomes uniform.
    """
    s = np.where(np.isfinite(scores), np.maximum(scores, 0.0) + eps, 0.0).astype(np.float32)
    return s / s.sum(0, keepdims=True)
