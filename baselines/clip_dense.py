"""Dense, instrumented forward of an open_clip ViT image tower for CLIP-ES-style Grad-CAM and CAA.

What weakclip.clip_towers.encode_patch_tokens does not give: the head-averaged attention map of every
block, and a leaf tensor at the last block's input so that Grad-CAM can take its gradient there.
Why there (docs/baselines.md): the class token after the last block does not depend on its patch outputs,
so a gradient taken after the last block is zero; CLIP-ES hooks the last block's first LayerNorm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transformer import ResidualAttentionBlock

from weakclip.clip_towers import build_clip, get_tokenizer, resize_pos_embed
from weakclip.core.device import resolve_device

_MODELS: dict = {}  # per-process cache: (arch, weights, overrides, device) -> (model, tokenizer)


def load_clip(arch: str, weights: str | None, overrides: dict | None, device: str = "auto"):
    """(model, tokenizer), built once per process (frozen, eval, fp32)."""
    dev = resolve_device(device)
    key = (arch, weights, tuple(sorted((overrides or {}).items())), str(dev))
    if key not in _MODELS:
        model = build_clip(arch, weights, **(overrides or {})).to(dev).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        _MODELS[key] = (model, get_tokenizer(model))
    return _MODELS[key]


@torch.no_grad()
def text_embeddings(model, tokenizer, names, template: str) -> torch.Tensor:
    """(C, E) L2-normalised embeddings of template.format(name)."""
    dev = next(model.parameters()).device
    return F.normalize(model.encode_text(tokenizer([template.format(n) for n in names]).to(dev)), dim=-1)


def preprocess(image: np.ndarray, patch: int, short_side: int | None, scale: float, device) -> torch.Tensor:
    """uint8 (H, W, 3) -> CLIP-normalised (1, 3, H', W'), sides rounded up to multiples of the patch size.

    short_side: resize so the shorter side is this (keeping the aspect ratio) before `scale`; None keeps
    the image size (CLIP-ES runs at the original resolution).
    """
    h, w = image.shape[:2]
    f = (short_side / min(h, w) if short_side else 1.0) * scale
    th, tw = (max(patch, int(np.ceil(s * f / patch)) * patch) for s in (h, w))
    x = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float()  # (1, 3, H, W) in 0..255
    if (th, tw) != (h, w):
        x = F.interpolate(x, size=(th, tw), mode="bicubic", align_corners=False, antialias=True)
    x = x.clamp(0, 255) / 255.0
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class DenseOut:
    image_embed: torch.Tensor  # (B, E) pooled, projected image embedding (not normalised)
    activation: torch.Tensor  # (B, 1+N, width) where Grad-CAM reads activations and gradients
    attentions: list  # per block: (B, 1+N, 1+N) head-averaged attention probabilities (detached)
    grid: tuple  # (h, w) token grid, N = h*w


def _block_forward(blk: ResidualAttentionBlock, x: torch.Tensor, batch_first: bool, tap_ln1: bool = False):
    """One pre-LN residual block (= ResidualAttentionBlock.forward) that also returns its attention map.

    x: (B, L, width). Returns (out (B, L, width), attn (B, L, L), ln_1 output or None).
    """
    y = blk.ln_1(x)
    yy = y if batch_first else y.transpose(0, 1)
    out, attn = blk.attn(yy, yy, yy, need_weights=True, average_attn_weights=True)  # attn (B, L, L)
    out = out if batch_first else out.transpose(0, 1)
    x = x + blk.ls_1(out)
    x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
    return x, attn, (y if tap_ln1 else None)


def dense_forward(model, images: torch.Tensor, pool: str = "mean", grad_at: str = "block_input",
                  with_grad: bool = True) -> DenseOut:
    """Image tower at any size (positional embedding resized bicubically to the token grid).

    pool: "mean" = mean of the final patch tokens (CLIP-ES's global feature) or "cls" = class token.
    grad_at: "block_input" (the input of the last block's first LayerNorm; spec) or "ln_1" (its output,
    the module CLIP-ES hooks). Blocks before the last run without autograd.
    """
    visual = model.visual
    blocks = visual.transformer.resblocks
    if not all(isinstance(b, ResidualAttentionBlock) and not hasattr(b, "ln_1_kv") for b in blocks):
        raise ValueError("dense_forward needs open_clip ResidualAttentionBlock self-attention blocks")
    if pool not in ("mean", "cls") or grad_at not in ("block_input", "ln_1"):
        raise ValueError(f"pool must be mean|cls and grad_at block_input|ln_1, got {pool!r}, {grad_at!r}")
    batch_first = getattr(visual.transformer, "batch_first", True)
    B, _, H, W = images.shape
    ph, pw = visual.patch_size
    h, w = H // ph, W // pw
    attentions = []
    with torch.no_grad():
        x = visual.conv1(images).flatten(2).transpose(1, 2)  # (B, N, width)
        cls = visual.class_embedding.view(1, 1, -1).expand(B, -1, -1).to(x.dtype)
        x = torch.cat([cls, x], 1) + resize_pos_embed(visual.positional_embedding, visual.grid_size, (h, w))
        x = visual.ln_pre(x)  # (B, 1+N, width)
        for blk in blocks[:-1]:
            x, attn, _ = _block_forward(blk, x, batch_first)
            attentions.append(attn)
    with torch.set_grad_enabled(with_grad):
        x = x.detach().requires_grad_(with_grad)
        act = x
        x, attn, y = _block_forward(blocks[-1], x, batch_first, tap_ln1=grad_at == "ln_1")
        if y is not None:
            act = y  # a non-leaf tensor: autograd.grad reaches it directly
        attentions.append(attn.detach())
        x = visual.ln_post(x)
        pooled = x[:, 1:].mean(1) if pool == "mean" else x[:, 0]
        embed = pooled @ visual.proj
    return DenseOut(embed, act, attentions, (h, w))


def grad_cam(score: torch.Tensor, activation: torch.Tensor, grid: tuple, retain_graph: bool) -> torch.Tensor:
    """Grad-CAM of a scalar score on patch tokens: ReLU(sum_c mean_n(dS/dA_nc) * A_nc), shape (h, w).

    activation: (1, 1+N, width) with the class token first (dropped here).
    """
    (g,) = torch.autograd.grad(score, activation, retain_graph=retain_graph)
    a, g = activation[0, 1:].detach(), g[0, 1:]  # (N, width)
    weights = g.mean(0)  # (width,) spatial mean of the gradient
    return torch.relu(a @ weights).reshape(grid)  # (h, w)
