"""Small, dependency-light I/O helpers shared by the library, the baselines and the harness.

Every writer here is atomic: it writes to a temporary file in the destination folder and
renames it into place, so an interrupted run never leaves a half-written file that a later
stage could consume.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IGNORE_INDEX = 255


def _voc_palette() -> list[int]:
    """The PASCAL VOC colour map: 256 RGB triples from the bits of the label index."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.extend((r, g, b))
    return palette


VOC_PALETTE: list[int] = _voc_palette()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Save an index mask (H, W) uint8 as a VOC palette PNG, atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{path}: a mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != np.uint8:
        if mask.min(initial=0) < 0 or mask.max(initial=0) > 255:
            raise ValueError(f"{path}: mask values must lie in 0..255")
        mask = mask.astype(np.uint8)
    img = Image.fromarray(mask, mode="P")
    img.putpalette(VOC_PALETTE)
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Load an index PNG (palette 'P' or grey 'L') as (H, W) uint8; anything else is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise ValueError(
                    f"{path}: not an index mask (PNG mode {img.mode!r}; expected a palette 'P' or grey 'L' PNG "
                    "whose pixel values are class indices)"
                )
            return np.array(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: cannot read mask ({exc})") from exc


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Load an RGB image as (H, W, 3) uint8; a missing or corrupt file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{path}: corrupt or unreadable image ({exc})") from exc


def save_probs(path: str | os.PathLike, probs: np.ndarray) -> None:
    """Save class probabilities (K, H, W) as float16 .npy, atomically."""
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(probs, dtype=np.float16))
