"""Text-guided decoder (spec "Text-guided decoder"): score map S concatenated to every pyramid level,
an FPN neck, a Semantic-FPN head summing the levels at stride 4, dropout and a 1x1 conv to K logits.

- text guidance: S (B, K, h, w) is resized (bilinear, align_corners=True as in the release) to each level
  and concatenated, so level i has width + K channels. With ``text_guided=False`` (ablation) S is NOT
  concatenated: the same FPN neck and head run on the visual features alone (width channels per level).
- FPN neck (as mmseg's FPN with no extra outputs): per level a 1x1 lateral conv to ``fpn_channels``, a
  top-down pathway adding the nearest-upsampled coarser lateral, then a 3x3 output conv; no norm/activation.
- Semantic-FPN head (Kirillov et al. 2019): a level at stride s gets max(1, log2(s/4)) stages of
  conv3x3 -> norm (BN or GN) -> ReLU, each followed by a 2x bilinear upsample while s > 4; levels are summed
  at stride 4, then Dropout2d(p) and a 1x1 conv give the K logits at stride 4.
Bilinear resizes go through weakclip.core.resize (matrix products in training: a much faster backward).
The levels need not be four: with the pyramid adapter off a single level at the patch stride is decoded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from weakclip.core.resize import Upsample2x, resize_bilinear

OUTPUT_STRIDE = 4


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(32, channels), channels)
    raise ValueError(f"decoder norm must be 'bn' or 'gn', got {kind!r}")


class FPNNeck(nn.Module):
    """list of (B, C_i, H_i, W_i), finest first -> list of (B, out, H_i, W_i)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(lat) - 1, 0, -1):  # top-down: coarse -> fine
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
        return [conv(x) for conv, x in zip(self.output, lat, strict=True)]


class SemanticFPNHead(nn.Module):
    """Levels at ``strides`` (B, C, H/s, W/s) -> logits (B, K, H/4, W/4)."""

    def __init__(
        self, strides: Sequence[int], channels: int, num_classes: int, dropout: float = 0.1, norm: str = "bn"
    ):
        super().__init__()
        self.scale_heads = nn.ModuleList()
        for s in strides:
            if s < OUTPUT_STRIDE or s & (s - 1):
                raise ValueError(f"SemanticFPNHead: stride {s} must be a power of two >= {OUTPUT_STRIDE}")
            stages: list[nn.Module] = []
            for _ in range(max(1, int(math.log2(s // OUTPUT_STRIDE)))):
                stages += [
                    nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                    _norm(norm, channels),
                    nn.ReLU(inplace=True),
                ]
                if s > OUTPUT_STRIDE:
                    stages.append(Upsample2x())
            self.scale_heads.append(nn.Sequential(*stages))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        out = None
        for head, f in zip(self.scale_heads, feats, strict=True):
            y = head(f)
            if tuple(y.shape[-2:]) != tuple(out_size):  # odd grids: a max-pooled level loses a row
                y = resize_bilinear(y, out_size)
            out = y if out is None else out + y
        return self.classifier(self.dropout(out))


class TextGuidedDecoder(nn.Module):
    """(levels [(B, C_i, H/s_i, W/s_i)], score map (B, K, h, w), out_size) -> logits (B, K, H/4, W/4)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        strides: Sequence[int],
        num_classes: int,
        fpn_channels: int = 256,
        text_guided: bool = True,
        dropout: float = 0.1,
        norm: str = "bn",
    ):
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError("TextGuidedDecoder: in_channels and strides differ in length")
        self.text_guided = text_guided
        self.strides = tuple(strides)
        extra = num_classes if text_guided else 0
        self.neck = FPNNeck([c + extra for c in in_channels], fpn_channels)
        self.head = SemanticFPNHead(strides, fpn_channels, num_classes, dropout, norm)

    def forward(
        self, feats: Sequence[torch.Tensor], score_map: torch.Tensor, out_size: tuple[int, int]
    ) -> torch.Tensor:
        if self.text_guided:
            feats = [
                torch.cat(
                    [f, resize_bilinear(score_map, f.shape[-2:], align_corners=True)], 1
                )
                for f in feats
            ]
        return self.head(self.neck(feats), out_size)
