"""Class-aware attention affinity (CAA, CLIP-ES, Lin et al. CVPR 2023), as a function and as a refiner.

Affinity: the head-averaged attention of the last `blocks` transformer blocks (patch-to-patch part),
averaged, Sinkhorn-normalised (columns then rows, `sinkhorn_iters` times), symmetrised and squared.
Class awareness: for each class only source patches inside the boxes of the class's CAM above
0.4·max (one box per 8-connected region, as CLIP-ES's multi-contour scoremap2bbox) propagate:
refined = (T ⊙ box_mask_columns) · cam.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from weakclip.core.config import config_from

from .clip_dense import dense_forward, load_clip, preprocess
from .common import background_score, present_mask, probs_from_scores


def attention_affinity(attentions: list, blocks: int = 8, sinkhorn_iters: int = 3) -> torch.Tensor:
    """(N, N) CAA transition matrix from per-block attentions [(1+N, 1+N) or (1, 1+N, 1+N)].

    Uses the last `blocks` maps (all of them when the model is shallower, e.g. the 4-block tiny CLIP).
    """
    maps = [a.reshape(a.shape[-2:])[1:, 1:].float() for a in attentions[-blocks:]]  # drop the class token
    t = torch.stack(maps).mean(0)  # (N, N)
    for _ in range(sinkhorn_iters):
        t = t / t.sum(0, keepdim=True).clamp_min(1e-12)
        t = t / t.sum(1, keepdim=True).clamp_min(1e-12)
    t = (t + t.T) / 2
    return t @ t


def _components(binary: np.ndarray) -> np.ndarray:
    """8-connected component labels of a small boolean grid (0 = off), by iterated 3x3 max propagation."""
    h, w = binary.shape
    lab = np.where(binary, np.arange(1, h * w + 1).reshape(h, w), 0)
    while True:
        p = np.pad(lab, 1)
        nb = np.max([p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
        new = np.where(binary, nb, 0)
        if np.array_equal(new, lab):
            return lab
        lab = new


def box_mask(cam: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """(h, w) float mask: union of the bounding boxes of the regions where cam > threshold·max(cam)."""
    mask = np.zeros(cam.shape, np.float32)
    if cam.max() <= 0:
        return mask
    lab = _components(cam > threshold * cam.max())
    for k in np.unique(lab[lab > 0]):
        ys, xs = np.nonzero(lab == k)
        mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 1.0
    return mask


def apply_caa(cam: np.ndarray, trans: torch.Tensor, box_threshold: float = 0.4) -> np.ndarray:
    """Refine one class's grid CAM (h, w) with transition matrix (h*w, h*w); returns (h, w) float32."""
    m = torch.from_numpy(box_mask(cam, box_threshold)).reshape(1, -1).to(trans)
    c = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32)).reshape(-1, 1).to(trans)
    return ((trans * m) @ c).reshape(cam.shape).cpu().numpy()


def upsample_minmax(grid_maps: np.ndarray, size: tuple) -> np.ndarray:
    """(C, h, w) -> (C, H, W): per-channel min-max normalisation then bilinear resize (CLIP-ES order)."""
    x = torch.from_numpy(np.ascontiguousarray(grid_maps, dtype=np.float32))
    flat = x.reshape(x.shape[0], -1)
    x = (x - flat.min(1)[0][:, None, None]) / (flat.max(1)[0] - flat.min(1)[0] + 1e-7)[:, None, None]
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    return x.clamp(0, 1).numpy()


@dataclass
class CAAConfig:
    arch: str = "tiny"  # CLIP architecture for the attention maps (weakclip.clip_towers.build_clip)
    weights: str | None = None  # local CLIP weights (None = random init: only for tests)
    clip_overrides: dict = field(default_factory=dict)  # tiny-CLIP config overrides
    short_side: int | None = None  # resize the image's short side before CLIP (None = native size)
    blocks: int = 8  # attention of the last `blocks` blocks (all when the tower is shallower)
    sinkhorn_iters: int = 3  # column/row normalisation rounds
    box_threshold: float = 0.4  # boxes of the CAM above this fraction of its max
    bg_power: float = 1.0  # background (1 - max fg)^t after refinement
    device: str = "auto"


def clip_attentions(image: np.ndarray, cfg: CAAConfig) -> tuple[list, tuple]:
    """Per-block head-averaged attentions of the CLIP image tower on `image`, and the token grid."""
    model, _ = load_clip(cfg.arch, cfg.weights, cfg.clip_overrides, cfg.device)
    x = preprocess(image, model.visual.patch_size[0], cfg.short_side, 1.0, next(model.parameters()).device)
    out = dense_forward(model, x, with_grad=False)
    return out.attentions, out.grid


def refine(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, attention: torch.Tensor | None = None,
           **cfg) -> tuple[np.ndarray, np.ndarray]:
    """CAA applied to any seed CAM (K, H, W): foreground channels are pooled to the CLIP token grid and
    min-max normalised there (as CLIP-ES does its own CAMs), refined, min-max normalised and upsampled;
    background (1 - max)^t. `attention`: an optional precomputed (N, N) transition matrix on a grid that
    divides the image (skips the CLIP forward; used in tests)."""
    c = config_from(CAAConfig, cfg)
    H, W = image.shape[:2]
    if attention is None:
        atts, grid = clip_attentions(image, c)
        trans = attention_affinity(atts, c.blocks, c.sinkhorn_iters)
    else:
        trans = torch.as_tensor(attention, dtype=torch.float32)
        n = trans.shape[0]
        s = round((H * W / n) ** 0.5)
        grid = (H // s, W // s)
        if grid[0] * grid[1] != n:
            raise ValueError(f"attention of {n} tokens does not tile a {H}x{W} image")
    keep = present_mask(labels)
    fg = torch.from_numpy(np.ascontiguousarray(cams[1:], dtype=np.float32))
    fg_grid = F.adaptive_avg_pool2d(fg[None], grid)[0].numpy()  # (K-1, h, w)
    refined = np.zeros((cams.shape[0] - 1,) + tuple(grid), np.float32)
    for k in np.flatnonzero(keep[1:]):
        # Min-max on the token grid first, as CLIP-ES scales its Grad-CAM before CAA (scale_cam_image):
        # the box threshold (box_threshold x max) then cuts the same share of the map for any seed CAM.
        cam = fg_grid[k]
        refined[k] = apply_caa((cam - cam.min()) / (cam.max() - cam.min() + 1e-7), trans, c.box_threshold)
    out = np.zeros(cams.shape, np.float32)
    out[1:] = upsample_minmax(refined, (H, W)) * keep[1:, None, None]
    out[0] = background_score(out[1:], c.bg_power)
    scores = np.where(keep[:, None, None], out, -np.inf)
    return probs_from_scores(scores), scores.argmax(0).astype(np.uint8)
