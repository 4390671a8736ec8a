"""Bilinear resizing of feature maps as two matrix products, for the training paths.

Bilinear resizing is separable and linear: resized = A_h @ x @ A_w^T, with A_h (H, h) and A_w (W, w) holding
F.interpolate's two-tap weights. The values are interpolate's up to float rounding; the backward is what
differs. interpolate's backward scatters every output gradient onto its input pixels (atomics on CUDA, a
serial scatter on the CPU), which is slow where a small map is upsampled a lot; a matrix product's backward
is two more matrix products. Measured, forward + backward:
- (16, 21, 8, 8) -> 64x64 on one CPU thread (the synthetic aux loss): interpolate 18.3 ms, matrices 1.6 ms;
- (16, 21, 32, 32) -> 512x512 on an H200 (the VOC aux loss): interpolate's backward alone 18 ms.

Without a gradient (inference) the matrix form does several times more arithmetic than interpolate's
forward, so `resize_bilinear` only takes it for tensors that require grad, and leaves channels-last tensors
(the fast GPU configuration's decoder) to interpolate, which keeps their memory format.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)  # a cached matrix made under inference_mode could not be saved for backward
@torch.no_grad()
def _bilinear_weights(src: int, dst: int, align_corners: bool, device: torch.device) -> torch.Tensor:
    dst_index = torch.arange(dst, device=device, dtype=torch.float64)
    if align_corners:
        x = dst_index * ((src - 1) / (dst - 1)) if dst > 1 else torch.zeros_like(dst_index)
    else:
        x = ((dst_index + 0.5) * (src / dst) - 0.5).clamp_min(0.0)
    lo = x.floor().long().clamp(max=src - 1)
    hi = (lo + 1).clamp(max=src - 1)
    frac = x - lo
    rows = torch.arange(dst, device=device)
    weights = torch.zeros(dst, src, device=device, dtype=torch.float64)
    weights.index_put_((rows, lo), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, hi), frac, accumulate=True)
    return weights.float()


def bilinear_matrix(src: int, dst: int, device=None, align_corners: bool = False) -> torch.Tensor:
    """(dst, src) float32 rows of F.interpolate's bilinear weights along one axis (shared; do not modify)."""
    return _bilinear_weights(int(src), int(dst), bool(align_corners), torch.device(device or "cpu"))


def resize_bilinear_mm(x: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, H, W) bilinear, as A_h @ x @ A_w^T, on any device."""
    rows = bilinear_matrix(x.shape[-2], size[0], x.device, align_corners).to(x.dtype)
    cols = bilinear_matrix(x.shape[-1], size[1], x.device, align_corners).to(x.dtype)
    return rows @ x @ cols.T  # (H, h) @ (B, C, h, w) @ (w, W) -> (B, C, H, W)


def resize_bilinear(x: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    """F.interpolate(x, size, mode="bilinear", align_corners=...), through the matrix form when x requires
    grad and is not channels-last (see the module docstring)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if x.requires_grad and torch.is_grad_enabled() and not channels_last:
        return resize_bilinear_mm(x, size, align_corners)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


class Upsample2x(nn.Module):
    """nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) through `resize_bilinear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_bilinear(x, (2 * x.shape[-2], 2 * x.shape[-1]))
