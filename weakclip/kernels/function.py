"""autograd.Function around the Triton launchers, and the `co_attention` entry with its impl switch.

impl="torch" runs the reference; impl="triton" runs the fused kernels (CUDA tensors, or CPU tensors when
TRITON_INTERPRET=1 was set before the kernels were imported) and raises a clear error otherwise;
impl="auto" uses Triton for supported CUDA inputs and otherwise falls back to the reference, logging the
reason once per reason.
"""
from __future__ import annotations

import logging
import os

import torch

from .reference import co_attention_reference

log = logging.getLogger(__name__)
IMPLS = ("torch", "triton", "auto")
_logged_fallbacks: set[str] = set()


def _triton_module():
    """Imported lazily: TRITON_INTERPRET must be decided before the kernels are defined."""
    from . import triton as tk

    return tk


def _unit_last_stride(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


class CoAttentionFunction(torch.autograd.Function):
    """Fused co-attention; backward recomputes the probabilities from the saved log-sum-exps."""

    @staticmethod
    def forward(ctx, qt, kt, vt, qv, kv, vv, scale, num_splits):
        tk = _triton_module()
        qt, kt, vt, qv, kv, vv = (_unit_last_stride(x) for x in (qt, kt, vt, qv, kv, vv))
        ot, ov, lse_t, lse_v = tk.co_attention_fwd(qt, kt, vt, qv, kv, vv, scale=scale, num_splits=num_splits)
        ctx.save_for_backward(qt, kt, vt, qv, kv, vv, ot, ov, lse_t, lse_v)
        ctx.scale, ctx.num_splits = scale, num_splits
        return ot, ov

    @staticmethod
    def backward(ctx, d_text, d_visual):
        tk = _triton_module()
        qt, kt, vt, qv, kv, vv, ot, ov, lse_t, lse_v = ctx.saved_tensors
        grads = tk.co_attention_bwd(_unit_last_stride(d_text), _unit_last_stride(d_visual),
                                    qt, kt, vt, qv, kv, vv, ot, ov, lse_t, lse_v,
                                    scale=ctx.scale, num_splits=ctx.num_splits)
        return (*grads, None, None)


def co_attention_triton(qt, kt, vt, qv, kv, vv, scale=None, num_splits=None):
    """The Triton path directly; `num_splits` overrides the N-split heuristic (testing and tuning)."""
    return CoAttentionFunction.apply(qt, kt, vt, qv, kv, vv, scale, num_splits)


def _fallback_reason(tensors, scale) -> str | None:
    """None when auto may take the Triton path, else why not."""
    if not all(t.is_cuda for t in tensors):
        return "inputs are not on a CUDA device"
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return "TRITON_INTERPRET=1 is set (the interpreter is for testing, far slower than PyTorch)"
    try:
        tk = _triton_module()
    except ImportError as exc:  # triton missing or broken on this machine
        return f"triton could not be imported ({exc})"
    try:
        tk.check_inputs(*tensors, scale)
    except ValueError as exc:
        return str(exc)
    return None


def co_attention(qt, kt, vt, qv, kv, vv, scale=None, impl: str = "auto"):
    """Both directions of the text–pixel cross-attention in one call.

    qt, kt, vt: (B, H, K, d) text tokens; qv, kv, vv: (B, H, N, d) visual tokens. Returns
    (text_out (B, H, K, d), visual_out (B, H, N, d)); see reference.py for the maths. scale defaults to d^-½.
    """
    if impl not in IMPLS:
        raise ValueError(f"co_attention: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return co_attention_reference(qt, kt, vt, qv, kv, vv, scale=scale)
    if impl == "triton":
        return co_attention_triton(qt, kt, vt, qv, kv, vv, scale=scale)
    reason = _fallback_reason((qt, kt, vt, qv, kv, vv), scale)
    if reason is None:
        return co_attention_triton(qt, kt, vt, qv, kv, vv, scale=scale)
    if reason not in _logged_fallbacks:
        _logged_fallbacks.add(reason)
        log.warning("co_attention(impl='auto'): using the PyTorch reference because %s", reason)
    return co_attention_reference(qt, kt, vt, qv, kv, vv, scale=scale)
