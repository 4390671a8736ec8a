"""`folder` seed source: seeds supplied as files (e.g. published MCTformer-V2 masks), validated and converted.

Accepted per id in `src_dir`: `<id>.png` index masks (one-hot CAMs; 255 -> uniform over background and the
image's classes, i.e. unsure) or `<id>.npy` CAMs, either full (K, H, W) or foreground-only (K-1, H, W)
(background then (1 - max)^bg_power). Checks, each an error naming the file: the file exists, masks are
index PNGs with labels < K (or 255) and only classes of the image-level labels, sizes match the image,
CAMs are finite floats in [0, 1]. Foreground CAM channels of absent classes are zeroed (the contract).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from weakclip.core.io import IGNORE_INDEX, load_mask

from .common import (
    assemble_cams,
    background_score,
    check_sample,
    iter_samples,
    load_cams,
    present_mask,
    save_cams,
)


def mask_to_cams(mask: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Index mask (H, W) -> one-hot contract CAMs (K, H, W); 255 -> uniform over the present classes."""
    k = labels.shape[0] + 1
    bad = (mask >= k) & (mask != IGNORE_INDEX)
    if bad.any():
        raise ValueError(f"{name}: labels {sorted(np.unique(mask[bad]).tolist())} >= num_classes {k} "
                         f"(255 is the only allowed value outside 0..{k - 1})")
    keep = present_mask(labels)
    used = np.unique(mask[mask != IGNORE_INDEX])
    stray = [int(c) for c in used if not keep[c]]
    if stray:
        raise ValueError(f"{name}: mask uses classes {stray} that are absent from the image-level labels "
                         f"(a label-space mismatch?)")
    cams = np.zeros((k,) + mask.shape, np.float32)
    valid = mask != IGNORE_INDEX
    cams[mask[valid], np.nonzero(valid)[0], np.nonzero(valid)[1]] = 1.0
    cams[:, ~valid] = keep[:, None] / keep.sum()
    return cams


def read_seed(src_dir: Path, sid: str, image_hw: tuple, labels: np.ndarray, bg_power: float = 1.0) -> np.ndarray:
    """Read and validate `<id>.png` or `<id>.npy` from src_dir as contract CAMs (K, H, W)."""
    png, npy = src_dir / f"{sid}.png", src_dir / f"{sid}.npy"
    k = labels.shape[0] + 1
    if png.is_file():
        mask = load_mask(png)
        if mask.shape != tuple(image_hw):
            raise ValueError(f"{png}: mask size {mask.shape} differs from the image size {tuple(image_hw)}")
        return mask_to_cams(mask, labels, str(png))
    if npy.is_file():
        cams = load_cams(npy, size=image_hw)
        if cams.shape[0] == k - 1:
            fg = cams * present_mask(labels)[1:, None, None]
            return assemble_cams(fg, labels, background_score(fg, bg_power))
        if cams.shape[0] != k:
            raise ValueError(f"{npy}: {cams.shape[0]} channels, expected K = {k} or K-1 = {k - 1}")
        return cams * present_mask(labels)[:, None, None]
    raise FileNotFoundError(f"no seed for id {sid!r}: neither {png} nor {npy} exists")


def generate(sample_iter: Iterable[dict], out_dir: str, src_dir: str | None = None, num_classes: int | None = None,
             bg_power: float = 1.0, progress: bool = True) -> dict:
    """Validate the seeds in src_dir against the samples and write contract CAMs to out_dir."""
    if src_dir is None:
        raise ValueError("folder.generate: src_dir= (the folder of <id>.png / <id>.npy seeds) is required")
    src, out, t0 = Path(src_dir), Path(out_dir), time.perf_counter()
    if not src.is_dir():
        raise FileNotFoundError(f"seed folder not found: {src}")
    counts = {"png": 0, "npy": 0}
    for sample in tqdm(iter_samples(sample_iter), desc="folder", disable=not progress):
        sid, image, labels = check_sample(sample, num_classes)
        cams = read_seed(src, sid, image.shape[:2], labels, bg_power)
        counts["png" if (src / f"{sid}.png").is_file() else "npy"] += 1
        save_cams(out / f"{sid}.npy", cams)
    n = sum(counts.values())
    dt = time.perf_counter() - t0
    return {"source": "folder", "src_dir": str(src), "n_images": n, "from_png": counts["png"],
            "from_npy": counts["npy"], "seconds": dt, "config": {"bg_power": bg_power}}
