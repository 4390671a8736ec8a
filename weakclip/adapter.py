"""Pyramid adapter: four tapped ViT maps (stride = patch size) -> feature maps at strides 4, 8, 16, 32.

Spec "Pyramid adapter". Each branch starts with GroupNorm(1, width) (a LayerNorm over C, H, W) and then
resamples by factor r = patch / stride:
- r > 1 (upsample, r a power of two): log2(r) 2x transposed convolutions with BatchNorm + GELU between them;
- r = 1: nothing more;
- r < 1 (downsample): one max-pool with kernel = stride = 1 / r.

For patch 16 (ViT-B/16) this is exactly the release: (GN, ConvT, BN, GELU, ConvT), (GN, ConvT), (GN),
(GN, MaxPool 2). For patch 8 (the tiny tower) it gives (GN, ConvT), (GN), (GN, MaxPool 2), (GN, MaxPool 4),
which is also the release's patch-8 layout. Patch sizes that are not powers of two are rejected.

``PyramidAdapter`` takes the tapped maps in order (shallowest first); map i feeds the branch for
``strides[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_STRIDES = (4, 8, 16, 32)


def _is_pow2(x: int) -> bool:
    return x >= 1 and (x & (x - 1)) == 0


def adapter_branch(width: int, patch_size: int, stride: int) -> nn.Sequential:
    """GroupNorm then resampling from stride ``patch_size`` to ``stride`` (both powers of two)."""
    if not (_is_pow2(patch_size) and _is_pow2(stride)):
        raise ValueError(
            f"pyramid adapter: patch size {patch_size} and stride {stride} must be powers of two"
        )
    layers: list[nn.Module] = [nn.GroupNorm(1, width)]
    if patch_size > stride:
        n_up = (patch_size // stride).bit_length() - 1
        for i in range(n_up):
            if i > 0:
                layers += [nn.BatchNorm2d(width), nn.GELU()]
            layers.append(nn.ConvTranspose2d(width, width, kernel_size=2, stride=2))
    elif patch_size < stride:
        factor = stride // patch_size
        layers.append(nn.MaxPool2d(kernel_size=factor, stride=factor))
    return nn.Sequential(*layers)


class PyramidAdapter(nn.Module):
    """(B, width, h, w) maps at stride ``patch_size`` -> list of (B, width, H/s, W/s) for s in strides."""

    def __init__(self, width: int, patch_size: int, strides: Sequence[int] = DEFAULT_STRIDES):
        super().__init__()
        self.strides = tuple(strides)
        self.patch_size = patch_size
        self.branches = nn.ModuleList(adapter_branch(width, patch_size, s) for s in self.strides)

    def forward(self, taps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(taps) != len(self.branches):
            raise ValueError(f"PyramidAdapter: expected {len(self.branches)} tapped maps, got {len(taps)}")
        return [branch(x) for branch, x in zip(self.branches, taps, strict=True)]
