"""Stage-3 inference: multi-scale + flip probabilities, optional dense CRF, palette PNG masks."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from baselines.segnet.model import SegNetConfig
from weakclip.core.crf import crf_params, default_workers, dense_crf_many
from weakclip.core.io import save_mask
from weakclip.core.precision import autocast as precision_autocast


@torch.no_grad()
def predict_segnet(model: torch.nn.Module, image: np.ndarray, cfg: SegNetConfig) -> np.ndarray:
    """image (H, W, 3) uint8 -> class probabilities (K, H, W) float32, averaged over cfg.test_scales
    (and their horizontal flips when cfg.test_flip)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"predict_segnet: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    model.eval()
    device = next(model.parameters()).device
    h, w = image.shape[:2]
    x = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
    mean = torch.tensor(cfg.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    autocast = precision_autocast(cfg.amp, device)
    total = None
    for scale in cfg.test_scales:
        size = (max(8, round(h * scale)), max(8, round(w * scale)))
        xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        batch = torch.cat([xs, xs.flip(-1)]) if cfg.test_flip else xs  # (1 or 2, 3, h', w')
        with autocast:
            logits = model(batch).float()  # (1 or 2, K, h', w')
        if cfg.test_flip:
            logits = torch.stack([logits[0], logits[1].flip(-1)])
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        probs = logits.softmax(dim=1).sum(dim=0)  # (K, H, W)
        total = probs if total is None else total + probs
    total /= len(cfg.test_scales) * (2 if cfg.test_flip else 1)
    return total.cpu().numpy().astype(np.float32)


def predict_folder(
    model: torch.nn.Module, dataset, out_dir: str | Path, cfg: SegNetConfig, chunk: int = 16,
    progress: bool = True, on_image: Callable[[], None] | None = None,
) -> dict:
    """Write out_dir/<id>.png (VOC palette, 0..K-1) for every item of a SegDataset (dict(id, image
    uint8 (H, W, 3), ...)): multi-scale + flip, then the cfg.crf preset (if any) in a process pool,
    then argmax; on_image() after each image's network pass. Returns dict(n_images, crf)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = crf_params(cfg.crf) if cfg.crf else None
    workers = cfg.crf_workers or default_workers()
    pool = ProcessPoolExecutor(max_workers=workers) if params is not None and workers > 1 else None
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        ids, images, probs = zip(*pending)
        if params is not None:
            probs = dense_crf_many(images, probs, params, workers=workers, pool=pool)
        for image_id, p in zip(ids, probs):
            save_mask(out_dir / f"{image_id}.png", p.argmax(axis=0).astype(np.uint8))
        pending.clear()

    try:
        for i in tqdm(range(len(dataset)), desc="predict_seg", dynamic_ncols=True, disable=not progress):
            item = dataset[i]
            pending.append((item["id"], item["image"], predict_segnet(model, item["image"], cfg)))
            if on_image is not None:
                on_image()
            if len(pending) >= chunk:
                flush()
        if pending:
            flush()
    finally:
        if pool is not None:
            pool.shutdown()
    return {
        "n_images": len(dataset),
        "crf": None if params is None else {"preset": cfg.crf, **params.as_dict()},
    }
