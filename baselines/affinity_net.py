"""The affinity network of the random-walk refiner: stride-4 embeddings whose L1 distances give affinities.

"tiny": a few convolutions on the image (two stride-2 stages, then dilated 3x3 convolutions for context),
enough for the synthetic profile. Any timm model name: its first three feature stages (features_only),
each projected by a 1x1 convolution, resized to stride 4, concatenated and projected (AffinityNet/IRN
also combine several backbone stages).
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from weakclip.core.config import config_from

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _cbr(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AffinityNet(nn.Module):
    def __init__(self, backbone: str = "tiny", embed_dim: int = 32, backbone_weights: str | None = None):
        super().__init__()
        self.kind = backbone
        if backbone == "tiny":
            self.body = nn.Sequential(_cbr(3, 32, 2), _cbr(32, 64, 2), _cbr(64, 64, 1, 2), _cbr(64, 64, 1, 4),
                                      _cbr(64, 64, 1, 8))
            self.head = nn.Conv2d(64 + 32, embed_dim, 1)  # (stride-4 context, stride-4 pooled stem)
        else:
            kw = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(backbone_weights)}} if backbone_weights else {}
            self.body = timm.create_model(backbone, features_only=True, out_indices=(1, 2, 3), **kw)
            chans = self.body.feature_info.channels()
            self.proj = nn.ModuleList(nn.Conv2d(ch, 64, 1) for ch in chans)
            self.head = nn.Conv2d(64 * len(chans), embed_dim, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> embeddings (B, E, ceil(H/4), ceil(W/4))."""
        x = (images.to(self.mean.device).permute(0, 3, 1, 2).float() - self.mean) / self.std
        H, W = x.shape[-2:]
        h, w = -(-H // 4), -(-W // 4)
        if self.kind == "tiny":
            stem = self.body[0](x)  # (B, 32, H/2, W/2)
            f = self.body[1:](stem)  # (B, 64, H/4, W/4)
            return self.head(torch.cat([f, F.adaptive_avg_pool2d(stem, (h, w))], 1))
        x = F.pad(x, (0, -W % 32, 0, -H % 32))
        feats = [F.interpolate(p(f), size=(-(-x.shape[-2] // 4), -(-x.shape[-1] // 4)), mode="bilinear",
                               align_corners=False) for p, f in zip(self.proj, self.body(x))]
        return self.head(torch.cat(feats, 1))[..., :h, :w]


def pair_affinity(feats: torch.Tensor, offsets) -> torch.Tensor:
    """(B, E, h, w) -> (B, P, h, w): a(j, j+o) = exp(-mean_e |f_j - f_{j+o}|) (AffinityNet).

    Out-of-grid partners use a clamped index: callers mask those pairs out.
    """
    h, w = feats.shape[-2:]
    rows, cols = torch.arange(h, device=feats.device), torch.arange(w, device=feats.device)
    out = []
    for dy, dx in offsets:
        other = feats[:, :, (rows + dy).clamp(0, h - 1)][:, :, :, (cols + dx).clamp(0, w - 1)]
        out.append(torch.exp(-(feats - other).abs().mean(1)))
    return torch.stack(out, 1)


def load_affinity_net(checkpoint: str, cfg_cls):
    """(model in eval mode on CPU, config) from a random_walk.fit checkpoint."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"random_walk checkpoint not found: {checkpoint} (run baselines.random_walk.fit)")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    c = config_from(cfg_cls, ckpt["cfg"])
    model = AffinityNet(c.backbone, c.embed_dim, None)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), c
