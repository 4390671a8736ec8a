"""Co-attention in plain PyTorch: the specification the Triton kernel is tested against.

Text tensors are (B, H, K, d) for K class tokens, visual tensors (B, H, N, d) for N visual tokens.
  text_out   = softmax(scale · qt · kvᵀ) · vv    (B, H, K, d): each text token attends over the N visual tokens
  visual_out = softmax(scale · qv · ktᵀ) · vt    (B, H, N, d): each visual token attends over the K text tokens
"""
from __future__ import annotations

import torch

from .limits import check_shapes


def co_attention_reference(qt, kt, vt, qv, kv, vv, scale: float | None = None, impl: str = "torch"):
    check_shapes(qt, kt, vt, qv, kv, vv)
    scale = qt.shape[-1] ** -0.5 if scale is None else scale
    text_attn = torch.softmax((qt @ kv.transpose(-1, -2)).float() * scale, dim=-1)  # (B, H, K, N)
    text_out = (text_attn.to(vv.dtype) @ vv)  # (B, H, K, d)
    visual_attn = torch.softmax((qv @ kt.transpose(-1, -2)).float() * scale, dim=-1)  # (B, H, N, K)
    visual_out = (visual_attn.to(vt.dtype) @ vt)  # (B, H, N, d)
    return text_out, visual_out
