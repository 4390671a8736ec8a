"""Pseudo-mask inference (docs/method.md "Pseudo-mask inference").

predict_probs: resize the short side to `short_side`, then for every scale ratio (and its
horizontal flip) slide a window over the scaled image, average the window logits where windows
overlap, resize them to the original size, softmax, and average the probabilities over the
scales and flips (the mmseg slide + aug-test semantics the WeakCLIP release uses).
pseudo_masks: predict_probs on every image, dense CRF on the full image, argmax, palette PNGs;
the CRFs run in a process pool while the model works on the next images.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from weakclip.core.crf import CRFParams, crf_params, default_workers, dense_crf
from weakclip.core.device import resolve_device
from weakclip.core.io import save_mask
from weakclip.core.io import save_probs as _save_probs_file
from weakclip.core.precision import autocast, precision_used

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class InferConfig:
    short_side: int | None = 512  # resize so the short side is this (None: keep the size)
    max_long_side: int | None = 2048  # ... unless the long side would exceed this (mmseg (2048, 512))
    scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    flip: bool = True
    window: int = 512  # square sliding window
    stride: int = 341
    window_batch: int = 8  # windows per forward pass
    # A view smaller than the window is decoded at its own size, as mmseg's slide inference does (the
    # release feeds such crops unpadded), rounded up to a multiple of this: the model's coarsest feature
    # stride (the pyramid's 1/32), so its feature maps line up.
    size_divisor: int = 32
    mean: tuple[float, float, float] = IMAGENET_MEAN  # the release normalises with ImageNet statistics
    std: tuple[float, float, float] = IMAGENET_STD
    output_key: str = "logits"  # which entry of the model's output dict holds (B, K, h, w) logits
    device: str = "auto"
    amp: str = "bf16"  # bf16 autocast where the device has native bf16 (weakclip.core.precision) | "none"
    # Zero the probabilities of classes absent from the image-level labels before the CRF. WeakCLIP
    # itself does not use labels at inference (the paper's pseudo masks come from the model alone),
    # so this is off by default; it exists to measure how much the labels would add.
    restrict_to_labels: bool = False

    def __post_init__(self):
        if self.stride <= 0 or self.stride > self.window:
            raise ValueError(f"InferConfig: stride must lie in 1..window ({self.window}), got {self.stride}")
        if not self.scales:
            raise ValueError("InferConfig: scales must not be empty")
        if self.size_divisor <= 0:
            raise ValueError(f"InferConfig: size_divisor must be positive, got {self.size_divisor}")


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis of `length` >= window (last one flush with the end)."""
    n = max(length - window + stride - 1, 0) // stride + 1
    return [min(i * stride, length - window) for i in range(n)]


def _model_logits(model, x: torch.Tensor, key: str) -> torch.Tensor:
    out = model(x)
    return (out[key] if isinstance(out, dict) else out).float()


def slide_logits(model, images: torch.Tensor, cfg: InferConfig) -> torch.Tensor:
    """Window-averaged logits (n, K, h, w) for `images` (n, 3, h, w) of one size, already normalised.

    The windows of all n views (e.g. an image and its flip) go through the model together, up to
    `window_batch` crops per forward pass. In a dimension where the view is smaller than the window, the
    window shrinks to the view (mmseg: the small crop is decoded without padding up to the window), rounded
    up to a multiple of `size_divisor`; that remainder is padded (bottom/right, value 0 = the mean colour
    after normalisation) and cropped off the logits.
    """
    n, _, h, w = images.shape
    win_h, win_w = (min(cfg.window, _round_up(side, cfg.size_divisor)) for side in (h, w))
    ph, pw = max(h, win_h), max(w, win_w)
    if (ph, pw) != (h, w):
        images = F.pad(images, (0, pw - w, 0, ph - h))
    boxes = [
        (v, y, x)
        for v in range(n)
        for y in window_starts(ph, win_h, cfg.stride)
        for x in window_starts(pw, win_w, cfg.stride)
    ]
    acc, count = None, torch.zeros(1, ph, pw, device=images.device)
    for i in range(0, len(boxes), cfg.window_batch):
        chunk = boxes[i : i + cfg.window_batch]
        crops = torch.stack([images[v, :, y : y + win_h, x : x + win_w] for v, y, x in chunk])
        logits = _model_logits(model, crops, cfg.output_key)  # (b, K, win_h/4, win_w/4)
        logits = F.interpolate(logits, size=(win_h, win_w), mode="bilinear", align_corners=False)
        if acc is None:
            acc = torch.zeros(n, logits.shape[1], ph, pw, device=images.device)
        for (v, y, x), lg in zip(chunk, logits):
            acc[v, :, y : y + win_h, x : x + win_w] += lg
            if v == 0:  # every view has the same windows
                count[:, y : y + win_h, x : x + win_w] += 1
    return (acc / count)[..., :h, :w]


def _round_up(length: int, divisor: int) -> int:
    return -(-length // divisor) * divisor


def scaled_size(h: int, w: int, cfg: InferConfig, ratio: float) -> tuple[int, int]:
    """(H, W) after the short-side resize and a scale ratio (mmcv rounding: int(x + 0.5))."""
    f = 1.0
    if cfg.short_side:
        f = cfg.short_side / min(h, w)
        if cfg.max_long_side:
            f = min(f, cfg.max_long_side / max(h, w))
    f *= ratio
    return max(1, int(h * f + 0.5)), max(1, int(w * f + 0.5))


@torch.no_grad()
def predict_probs(
    model, image_uint8: np.ndarray, cfg: InferConfig, device: torch.device | None = None
) -> np.ndarray:
    """Class probabilities (K, H, W) float32 for one (H, W, 3) uint8 RGB image."""
    if image_uint8.ndim != 3 or image_uint8.shape[2] != 3:
        raise ValueError(f"predict_probs: image must be (H, W, 3), got {image_uint8.shape}")
    if device is None:  # where the model lives; cfg.device for a model without parameters
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else resolve_device(cfg.device)
    model.eval()
    h, w = image_uint8.shape[:2]
    img = torch.from_numpy(np.ascontiguousarray(image_uint8)).to(device).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(cfg.mean, device=device).view(3, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(3, 1, 1)
    probs = None
    for ratio in cfg.scales:
        sh, sw = scaled_size(h, w, cfg, ratio)
        x = (
            F.interpolate(img[None], size=(sh, sw), mode="bilinear", align_corners=False)[0]
            if (sh, sw) != (h, w)
            else img
        )
        x = (x - mean) / std  # (3, sh, sw)
        views = torch.stack([x, x.flip(-1)]) if cfg.flip else x[None]  # (n, 3, sh, sw)
        with autocast(cfg.amp, device):
            logits = slide_logits(model, views, cfg)  # (n, K, sh, sw)
        if cfg.flip:
            logits = torch.stack([logits[0], logits[1].flip(-1)])
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        p = logits.softmax(1).sum(0)  # (K, h, w), summed over the views
        probs = p if probs is None else probs + p
    n = len(cfg.scales) * (2 if cfg.flip else 1)
    return (probs / n).float().cpu().numpy()


def restrict_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Zero the channels of foreground classes absent from the multi-hot `labels` (K-1,), keep
    background (channel 0), renormalise over K."""
    keep = np.concatenate([[1.0], (np.asarray(labels) > 0).astype(np.float32)])
    if keep.shape[0] != probs.shape[0]:
        raise ValueError(
            f"restrict_probs: {probs.shape[0]} classes but {keep.shape[0] - 1} image-level labels + background"
        )
    p = probs * keep[:, None, None]
    return p / np.clip(p.sum(0, keepdims=True), 1e-12, None)


def _item_image(item: dict) -> np.ndarray:
    img = item.get("image_uint8", item.get("image"))
    if torch.is_tensor(img):
        img = img.numpy()
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(
            f"pseudo_masks: item {item.get('id')!r} needs an (H, W, 3) uint8 image "
            f"('image_uint8' or 'image'), got {img.dtype} {img.shape}"
        )
    return img


def _finish(q_or_p: np.ndarray, path: Path) -> None:
    save_mask(path, q_or_p.argmax(0).astype(np.uint8))


def _crf_argmax_job(image, probs, params: CRFParams, path: str) -> float:
    """Run in a pool worker: CRF + argmax + save; returns its own seconds."""
    t = time.perf_counter()
    _finish(dense_crf(image, probs, params), Path(path))
    return time.perf_counter() - t


def pseudo_masks(
    model,
    dataset,
    out_dir,
    cfg: InferConfig,
    crf: str | CRFParams | dict | None = "weakclip_voc",
    save_probs: bool = False,
    workers: int | None = None,
    skip_existing: bool = False,
    progress: bool = True,
) -> dict:
    """Write `<id>.png` pseudo masks (and `<id>.npy` float16 model probabilities before the CRF, if
    save_probs) for every item of `dataset` (dicts with id, image uint8 (H, W, 3) or
    image_uint8, and labels when cfg.restrict_to_labels). crf=None: argmax of the probabilities.
    workers: CRF processes (0 = in this process; default all cores). Returns a summary dict.
    A bf16 inference on the CPU stores the model's frozen image tower in bf16, in place
    (WeakCLIP.store_image_tower_for)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    model.to(device).eval()
    if hasattr(model, "store_image_tower_for"):  # bf16 inference on the CPU: the frozen tower in bf16
        model.store_image_tower_for(precision_used(cfg.amp, device), device)
    params = crf_params(crf) if crf is not None else None
    workers = default_workers() if workers is None else workers
    pool = ProcessPoolExecutor(max_workers=workers) if (params is not None and workers > 0) else None
    pending: deque[Future] = deque()
    n_done = n_skipped = 0
    t_model = t_crf = 0.0
    t0 = time.perf_counter()
    try:
        for i in tqdm(range(len(dataset)), desc="pseudo masks", disable=not progress, dynamic_ncols=True):
            item = None if hasattr(dataset, "ids") else dataset[i]
            item_id = str(dataset.ids[i]) if item is None else str(item["id"])
            if (
                skip_existing
                and (out_dir / f"{item_id}.png").exists()
                and (not save_probs or (out_dir / f"{item_id}.npy").exists())
            ):
                n_skipped += 1
                continue
            item = dataset[i] if item is None else item
            image = _item_image(item)
            t = time.perf_counter()
            probs = predict_probs(model, image, cfg, device)
            t_model += time.perf_counter() - t
            if cfg.restrict_to_labels:
                if item.get("labels") is None:
                    raise ValueError(
                        f"restrict_to_labels needs image-level labels; item {item_id!r} has none"
                    )
                probs = restrict_probs(probs, item["labels"])
            if save_probs:
                _save_probs_file(out_dir / f"{item_id}.npy", probs)
            path = out_dir / f"{item_id}.png"
            if params is None:
                _finish(probs, path)
            elif pool is None:
                t_crf += _crf_argmax_job(image, probs, params, str(path))
            else:
                pending.append(pool.submit(_crf_argmax_job, image, probs, params, str(path)))
                while len(pending) > 2 * workers:  # bound the memory held by queued jobs
                    t_crf += pending.popleft().result()
            n_done += 1
        while pending:
            t_crf += pending.popleft().result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    wall = time.perf_counter() - t0
    return {
        "n_images": n_done,
        "n_skipped": n_skipped,
        "wall_s": wall,
        "model_s_per_image": t_model / max(n_done, 1),
        "crf_s_per_image": t_crf / max(n_done, 1),
        "crf": params.as_dict() if params else None,
        "precision": precision_used(cfg.amp, device),
        "infer_config": asdict(cfg),
        "out_dir": str(out_dir),
    }
