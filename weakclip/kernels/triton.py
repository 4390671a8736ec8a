"""Triton co-attention: one fused forward launch over the visual tokens, a Triton backward for all six inputs.

Shapes: text tensors qt, kt, vt are (B, H, K, d), visual tensors qv, kv, vv are (B, H, N, d).
  text_out   = softmax(scale · qt · kvᵀ) · vv    (B, H, K, d), softmax over N
  visual_out = softmax(scale · qv · ktᵀ) · vt    (B, H, N, d), softmax over K

Design (trade-offs):
- K is small (<= 128), so a program holds all K text rows in one block (padded to BLOCK_K, a power of two
  >= 16, the smallest legal `tl.dot` size for 16-bit types on NVIDIA) and streams N in tiles of BLOCK_N.
  Per visual tile it finishes the visual direction (softmax over K fits in the tile) and advances the
  text direction's online softmax (running max m, sum l, accumulator acc over N). Each visual tile is read
  once; both directions come out of one launch.
- When B·H programs cannot fill the GPU, N is split across `num_splits` programs per (b, h); each writes its
  text partials (m, l, acc) and a small combine kernel merges them (log-sum-exp merge).
- Exponentials are base 2 (`exp2` of scores pre-multiplied by scale·log2 e); the saved log-sum-exps are in
  that base too and are an internal detail between forward and backward.
- Backward recomputes the probabilities from the saved log-sum-exps (flash-attention style). The text and
  visual directions share no N-side input (text uses kv, vv; visual uses qv), so for large K·d, where three
  (BLOCK_K, d) fp32 accumulators would spill registers, the two directions run as two launches of the same
  kernel; otherwise one launch does both. Per-split partial sums of dqt, dkt, dvt are summed by a reduction
  kernel.
- fp32 inputs use IEEE fp32 dots (no tf32) so the fp32 path is as accurate as PyTorch's default matmul;
  16-bit inputs use 16-bit operands with fp32 accumulation, probabilities rounded to the input dtype before
  the second product (as the reference does).
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .limits import (  # noqa: F401 - re-exported: tests and callers read the limits through this module
    INTERPRET,
    MAX_FP32_BLOCK,
    MAX_K,
    MAX_N,
    SUPPORTED_D,
    SUPPORTED_DTYPES,
    block_k,
    bwd_config,
    check_inputs,
    choose_splits,
    chunking,
    fwd_config,
)

_LOG2E = 1.4426950408889634

#: Debug flag: allocate every output and scratch buffer filled with NaN, so an element the kernels fail to
#: write shows up as NaN in tests (set by tests via `set_poison(True)` or WEAKCLIP_KERNEL_POISON=1).
_POISON = os.environ.get("WEAKCLIP_KERNEL_POISON", "0") == "1"


def set_poison(flag: bool) -> bool:
    """Turn NaN-poisoned allocation on or off; returns the previous setting."""
    global _POISON
    previous, _POISON = _POISON, bool(flag)
    return previous


def _alloc(shape, dtype, device):
    if _POISON:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


# ----------------------------------------------------------------------------------------------- kernels
@triton.jit
def _co_attention_fwd_kernel(
    qt_ptr, kt_ptr, vt_ptr, qv_ptr, kv_ptr, vv_ptr,
    ot_ptr, ov_ptr, lse_t_ptr, lse_v_ptr, part_acc_ptr, part_ml_ptr,
    s_qt_b, s_qt_h, s_qt_k, s_kt_b, s_kt_h, s_kt_k, s_vt_b, s_vt_h, s_vt_k,
    s_qv_b, s_qv_h, s_qv_n, s_kv_b, s_kv_h, s_kv_n, s_vv_b, s_vv_h, s_vv_n,
    H, K, N, chunk, qk_scale,
    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr, SPLIT: tl.constexpr,
    PREC: tl.constexpr,
):
    tl.static_assert(BLOCK_K >= 16, "BLOCK_K must be >= 16 (tl.dot minimum on NVIDIA)")
    tl.static_assert(BLOCK_N >= 16, "BLOCK_N must be >= 16 (tl.dot minimum on NVIDIA)")
    tl.static_assert(D >= 16, "head dim must be >= 16 (tl.dot minimum on NVIDIA)")
    pid_s = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    offs_k = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, D)
    k_mask = offs_k < K
    # Text rows, (BLOCK_K, D); padded rows are zero so their scores are finite and never stored.
    qt = tl.load(qt_ptr + b * s_qt_b + h * s_qt_h + offs_k[:, None] * s_qt_k + offs_d[None, :],
                 mask=k_mask[:, None], other=0.0)
    kt = tl.load(kt_ptr + b * s_kt_b + h * s_kt_h + offs_k[:, None] * s_kt_k + offs_d[None, :],
                 mask=k_mask[:, None], other=0.0)
    vt = tl.load(vt_ptr + b * s_vt_b + h * s_vt_h + offs_k[:, None] * s_vt_k + offs_d[None, :],
                 mask=k_mask[:, None], other=0.0)
    qv_base = qv_ptr + b * s_qv_b + h * s_qv_h
    kv_base = kv_ptr + b * s_kv_b + h * s_kv_h
    vv_base = vv_ptr + b * s_vv_b + h * s_vv_h
    ov_base = ov_ptr + bh * N * D
    # Text direction's online-softmax state over N (base-2 units).
    m_t = tl.full([BLOCK_K], float("-inf"), tl.float32)
    l_t = tl.zeros([BLOCK_K], tl.float32)
    acc_t = tl.zeros([BLOCK_K, D], tl.float32)
    n_begin = pid_s * chunk  # chunk is a multiple of BLOCK_N and every split starts below N
    n_end = tl.minimum(n_begin + chunk, N)
    for n0 in range(n_begin, n_end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        qv = tl.load(qv_base + offs_n[:, None] * s_qv_n + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        kv = tl.load(kv_base + offs_n[:, None] * s_kv_n + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        vv = tl.load(vv_base + offs_n[:, None] * s_vv_n + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        # Visual direction: the whole softmax over K is inside this tile.
        s_v = tl.dot(qv, tl.trans(kt), input_precision=PREC) * qk_scale  # (BLOCK_N, BLOCK_K)
        s_v = tl.where(k_mask[None, :], s_v, float("-inf"))
        m_v = tl.max(s_v, 1)
        p_v = tl.exp2(s_v - m_v[:, None])
        l_v = tl.sum(p_v, 1)
        o_v = tl.dot(p_v.to(vt.dtype), vt, input_precision=PREC) / l_v[:, None]  # (BLOCK_N, D)
        tl.store(ov_base + offs_n[:, None] * D + offs_d[None, :], o_v.to(ov_ptr.dtype.element_ty),
                 mask=n_mask[:, None])
        tl.store(lse_v_ptr + bh * N + offs_n, m_v + tl.log2(l_v), mask=n_mask)
        # Text direction: one online-softmax step over this tile's N columns.
        s_t = tl.dot(qt, tl.trans(kv), input_precision=PREC) * qk_scale  # (BLOCK_K, BLOCK_N)
        s_t = tl.where(n_mask[None, :], s_t, float("-inf"))
        m_new = tl.maximum(m_t, tl.max(s_t, 1))
        alpha = tl.exp2(m_t - m_new)
        p_t = tl.exp2(s_t - m_new[:, None])
        l_t = l_t * alpha + tl.sum(p_t, 1)
        acc_t = tl.dot(p_t.to(vv.dtype), vv, acc_t * alpha[:, None], input_precision=PREC)
        m_t = m_new
    if SPLIT:
        # Partials (num_splits, B·H, BLOCK_K, D) and (num_splits, B·H, 2, BLOCK_K), merged by the combine kernel.
        row = pid_s * tl.num_programs(1) + bh
        tl.store(part_acc_ptr + row * BLOCK_K * D + offs_k[:, None] * D + offs_d[None, :], acc_t)
        tl.store(part_ml_ptr + row * 2 * BLOCK_K + offs_k, m_t)
        tl.store(part_ml_ptr + row * 2 * BLOCK_K + BLOCK_K + offs_k, l_t)
    else:
        o_t = acc_t / l_t[:, None]
        tl.store(ot_ptr + bh * K * D + offs_k[:, None] * D + offs_d[None, :], o_t.to(ot_ptr.dtype.element_ty),
                 mask=k_mask[:, None])
        tl.store(lse_t_ptr + bh * K + offs_k, m_t + tl.log2(l_t), mask=k_mask)


@triton.jit
def _combine_text_kernel(part_acc_ptr, part_ml_ptr, ot_ptr, lse_t_ptr, num_splits, BH, K,
                         BLOCK_K: tl.constexpr, D: tl.constexpr):
    """Merge the per-split (m, l, acc) of the text direction: one program per (b, h)."""
    bh = tl.program_id(0)
    offs_k = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, D)
    m = tl.full([BLOCK_K], float("-inf"), tl.float32)
    l = tl.zeros([BLOCK_K], tl.float32)
    acc = tl.zeros([BLOCK_K, D], tl.float32)
    for s in range(num_splits):
        row = s * BH + bh
        m_s = tl.load(part_ml_ptr + row * 2 * BLOCK_K + offs_k)
        l_s = tl.load(part_ml_ptr + row * 2 * BLOCK_K + BLOCK_K + offs_k)
        acc_s = tl.load(part_acc_ptr + row * BLOCK_K * D + offs_k[:, None] * D + offs_d[None, :])
        m_new = tl.maximum(m, m_s)  # every split saw at least one valid column, so m_s is finite
        a = tl.exp2(m - m_new)
        c = tl.exp2(m_s - m_new)
        l = l * a + l_s * c
        acc = acc * a[:, None] + acc_s * c[:, None]
        m = m_new
    k_mask = offs_k < K
    tl.store(ot_ptr + bh * K * D + offs_k[:, None] * D + offs_d[None, :],
             (acc / l[:, None]).to(ot_ptr.dtype.element_ty), mask=k_mask[:, None])
    tl.store(lse_t_ptr + bh * K + offs_k, m + tl.log2(l), mask=k_mask)


@triton.jit
def _co_attention_bwd_kernel(
    qt_ptr, kt_ptr, vt_ptr, qv_ptr, kv_ptr, vv_ptr, dot_ptr, dov_ptr,
    ot_ptr, ov_ptr, lse_t_ptr, lse_v_ptr,
    dqt_ptr, dkt_ptr, dvt_ptr, dqv_ptr, dkv_ptr, dvv_ptr, part_ptr,
    s_qt_b, s_qt_h, s_qt_k, s_kt_b, s_kt_h, s_kt_k, s_vt_b, s_vt_h, s_vt_k,
    s_qv_b, s_qv_h, s_qv_n, s_kv_b, s_kv_h, s_kv_n, s_vv_b, s_vv_h, s_vv_n,
    s_dot_b, s_dot_h, s_dot_k, s_dov_b, s_dov_h, s_dov_n,
    H, K, N, chunk, qk_scale, sm_scale,
    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr, SPLIT: tl.constexpr,
    TEXT: tl.constexpr, VISUAL: tl.constexpr, PREC: tl.constexpr,
):
    """Gradients of one or both directions over this program's N range.

    Text (queries qt over keys kv / values vv):   dS_t = P_t ∘ (dO_t·vvᵀ − rowsum(dO_t ∘ O_t))
      dvv = P_tᵀ·dO_t, dkv = scale·dS_tᵀ·qt (per tile), dqt = scale·Σ_tiles dS_t·kv (accumulated).
    Visual (queries qv over keys kt / values vt): dS_v = P_v ∘ (dO_v·vtᵀ − rowsum(dO_v ∘ O_v))
      dqv = scale·dS_v·kt (per tile), dkt = scale·Σ dS_vᵀ·qv, dvt = Σ P_vᵀ·dO_v (accumulated).
    """
    tl.static_assert(BLOCK_K >= 16, "BLOCK_K must be >= 16 (tl.dot minimum on NVIDIA)")
    tl.static_assert(BLOCK_N >= 16, "BLOCK_N must be >= 16 (tl.dot minimum on NVIDIA)")
    tl.static_assert(D >= 16, "head dim must be >= 16 (tl.dot minimum on NVIDIA)")
    tl.static_assert(TEXT or VISUAL, "nothing to compute")
    pid_s = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    offs_k = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, D)
    k_mask = offs_k < K
    text_off = bh * K * D + offs_k[:, None] * D + offs_d[None, :]  # contiguous (B, H, K, D) tensors
    n_begin = pid_s * chunk
    n_end = tl.minimum(n_begin + chunk, N)
    if TEXT:
        qt = tl.load(qt_ptr + b * s_qt_b + h * s_qt_h + offs_k[:, None] * s_qt_k + offs_d[None, :],
                     mask=k_mask[:, None], other=0.0)
        do_t = tl.load(dot_ptr + b * s_dot_b + h * s_dot_h + offs_k[:, None] * s_dot_k + offs_d[None, :],
                       mask=k_mask[:, None], other=0.0)
        o_t = tl.load(ot_ptr + text_off, mask=k_mask[:, None], other=0.0)
        delta_t = tl.sum(do_t.to(tl.float32) * o_t.to(tl.float32), 1)  # (BLOCK_K,), 0 on padded rows
        lse_t = tl.load(lse_t_ptr + bh * K + offs_k, mask=k_mask, other=0.0)
        dqt = tl.zeros([BLOCK_K, D], tl.float32)
    if VISUAL:
        kt = tl.load(kt_ptr + b * s_kt_b + h * s_kt_h + offs_k[:, None] * s_kt_k + offs_d[None, :],
                     mask=k_mask[:, None], other=0.0)
        vt = tl.load(vt_ptr + b * s_vt_b + h * s_vt_h + offs_k[:, None] * s_vt_k + offs_d[None, :],
                     mask=k_mask[:, None], other=0.0)
        dkt = tl.zeros([BLOCK_K, D], tl.float32)
        dvt = tl.zeros([BLOCK_K, D], tl.float32)
    for n0 in range(n_begin, n_end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        vis_off = bh * N * D + offs_n[:, None] * D + offs_d[None, :]  # contiguous (B, H, N, D) tensors
        if TEXT:
            kv = tl.load(kv_ptr + b * s_kv_b + h * s_kv_h + offs_n[:, None] * s_kv_n + offs_d[None, :],
                         mask=n_mask[:, None], other=0.0)
            vv = tl.load(vv_ptr + b * s_vv_b + h * s_vv_h + offs_n[:, None] * s_vv_n + offs_d[None, :],
                         mask=n_mask[:, None], other=0.0)
            s_t = tl.dot(qt, tl.trans(kv), input_precision=PREC) * qk_scale  # (BLOCK_K, BLOCK_N)
            p_t = tl.where(n_mask[None, :], tl.exp2(s_t - lse_t[:, None]), 0.0)
            dp_t = tl.dot(do_t, tl.trans(vv), input_precision=PREC)  # (BLOCK_K, BLOCK_N)
            ds_t = (p_t * (dp_t - delta_t[:, None])).to(qt.dtype)
            dvv = tl.dot(tl.trans(p_t.to(do_t.dtype)), do_t, input_precision=PREC)  # (BLOCK_N, D)
            dkv = tl.dot(tl.trans(ds_t), qt, input_precision=PREC) * sm_scale  # (BLOCK_N, D)
            dqt = tl.dot(ds_t, kv, dqt, input_precision=PREC)
            tl.store(dvv_ptr + vis_off, dvv.to(dvv_ptr.dtype.element_ty), mask=n_mask[:, None])
            tl.store(dkv_ptr + vis_off, dkv.to(dkv_ptr.dtype.element_ty), mask=n_mask[:, None])
        if VISUAL:
            qv = tl.load(qv_ptr + b * s_qv_b + h * s_qv_h + offs_n[:, None] * s_qv_n + offs_d[None, :],
                         mask=n_mask[:, None], other=0.0)
            do_v = tl.load(dov_ptr + b * s_dov_b + h * s_dov_h + offs_n[:, None] * s_dov_n + offs_d[None, :],
                           mask=n_mask[:, None], other=0.0)
            o_v = tl.load(ov_ptr + vis_off, mask=n_mask[:, None], other=0.0)
            delta_v = tl.sum(do_v.to(tl.float32) * o_v.to(tl.float32), 1)  # (BLOCK_N,)
            lse_v = tl.load(lse_v_ptr + bh * N + offs_n, mask=n_mask, other=0.0)
            s_v = tl.dot(qv, tl.trans(kt), input_precision=PREC) * qk_scale  # (BLOCK_N, BLOCK_K)
            keep = n_mask[:, None] & k_mask[None, :]
            p_v = tl.where(keep, tl.exp2(s_v - lse_v[:, None]), 0.0)
            dp_v = tl.dot(do_v, tl.trans(vt), input_precision=PREC)  # (BLOCK_N, BLOCK_K)
            ds_v = (p_v * (dp_v - delta_v[:, None])).to(qv.dtype)
            dqv = tl.dot(ds_v, kt, input_precision=PREC) * sm_scale  # (BLOCK_N, D)
            dkt = tl.dot(tl.trans(ds_v), qv, dkt, input_precision=PREC)
            dvt = tl.dot(tl.trans(p_v.to(do_v.dtype)), do_v, dvt, input_precision=PREC)
            tl.store(dqv_ptr + vis_off, dqv.to(dqv_ptr.dtype.element_ty), mask=n_mask[:, None])
    if SPLIT:
        # Partials (num_splits, B·H, 3, BLOCK_K, D) fp32: slots dqt, dkt, dvt; summed by _sum_splits_kernel.
        part = part_ptr + (pid_s * tl.num_programs(1) + bh) * 3 * BLOCK_K * D + offs_k[:, None] * D + offs_d[None, :]
        if TEXT:
            tl.store(part, dqt * sm_scale)
        if VISUAL:
            tl.store(part + BLOCK_K * D, dkt * sm_scale)
            tl.store(part + 2 * BLOCK_K * D, dvt)
    else:
        if TEXT:
            tl.store(dqt_ptr + text_off, (dqt * sm_scale).to(dqt_ptr.dtype.element_ty), mask=k_mask[:, None])
        if VISUAL:
            tl.store(dkt_ptr + text_off, (dkt * sm_scale).to(dkt_ptr.dtype.element_ty), mask=k_mask[:, None])
            tl.store(dvt_ptr + text_off, dvt.to(dvt_ptr.dtype.element_ty), mask=k_mask[:, None])


@triton.jit
def _sum_splits_kernel(part_ptr, dqt_ptr, dkt_ptr, dvt_ptr, num_splits, BH, K,
                       BLOCK_K: tl.constexpr, D: tl.constexpr):
    """dqt, dkt, dvt = Σ over splits of the backward partials: grid (B·H, 3), one slot per program."""
    bh = tl.program_id(0)
    slot = tl.program_id(1)
    offs_k = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, D)
    tile = offs_k[:, None] * D + offs_d[None, :]
    acc = tl.zeros([BLOCK_K, D], tl.float32)
    for s in range(num_splits):
        acc += tl.load(part_ptr + ((s * BH + bh) * 3 + slot) * BLOCK_K * D + tile)
    out = bh * K * D + tile
    k_mask = offs_k[:, None] < K
    if slot == 0:
        tl.store(dqt_ptr + out, acc.to(dqt_ptr.dtype.element_ty), mask=k_mask)
    elif slot == 1:
        tl.store(dkt_ptr + out, acc.to(dkt_ptr.dtype.element_ty), mask=k_mask)
    else:
        tl.store(dvt_ptr + out, acc.to(dvt_ptr.dtype.element_ty), mask=k_mask)


# --------------------------------------------------------------------------------------------- launchers
def _strides3(x: torch.Tensor) -> tuple[int, int, int]:
    return x.stride(0), x.stride(1), x.stride(2)


def _prec(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # the latter is ignored for 16-bit operands


def co_attention_fwd(qt, kt, vt, qv, kv, vv, scale=None, num_splits=None, config=None):
    """Forward launcher -> (text_out (B,H,K,d), visual_out (B,H,N,d), lse_t (B,H,K), lse_v (B,H,N) fp32, base 2)."""
    B, H, K, N, d, scale = check_inputs(qt, kt, vt, qv, kv, vv, scale)
    cfg = {**fwd_config(K, d, qt.dtype), **(config or {})}
    BK, BN, BH, dev = block_k(K), cfg["BLOCK_N"], B * H, qt.device
    splits = choose_splits(BH, N, dev, "fwd") if num_splits is None else num_splits
    chunk, splits = chunking(N, BN, splits)
    ot = _alloc((B, H, K, d), qt.dtype, dev)
    ov = _alloc((B, H, N, d), qt.dtype, dev)
    lse_t = _alloc((B, H, K), torch.float32, dev)
    lse_v = _alloc((B, H, N), torch.float32, dev)
    if splits > 1:
        part_acc = _alloc((splits, BH, BK, d), torch.float32, dev)
        part_ml = _alloc((splits, BH, 2, BK), torch.float32, dev)
    else:
        part_acc = part_ml = lse_t  # unused by the kernel when SPLIT is False
    _co_attention_fwd_kernel[(splits, BH)](
        qt, kt, vt, qv, kv, vv, ot, ov, lse_t, lse_v, part_acc, part_ml,
        *_strides3(qt), *_strides3(kt), *_strides3(vt), *_strides3(qv), *_strides3(kv), *_strides3(vv),
        H, K, N, chunk, scale * _LOG2E,
        BLOCK_K=BK, BLOCK_N=BN, D=d, SPLIT=splits > 1, PREC=_prec(qt.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    if splits > 1:
        _combine_text_kernel[(BH,)](part_acc, part_ml, ot, lse_t, splits, BH, K, BLOCK_K=BK, D=d, num_warps=4)
    return ot, ov, lse_t, lse_v


def co_attention_bwd(d_text, d_visual, qt, kt, vt, qv, kv, vv, ot, ov, lse_t, lse_v, scale=None,
                     num_splits=None, config=None):
    """Backward launcher -> (dqt, dkt, dvt, dqv, dkv, dvv), each contiguous in its input's shape and dtype."""
    B, H, K, N, d, scale = check_inputs(qt, kt, vt, qv, kv, vv, scale)
    for name, g, ref in (("d_text", d_text, ot), ("d_visual", d_visual, ov)):
        if g.shape != ref.shape or g.dtype != ref.dtype or g.device != ref.device or g.stride(-1) != 1:
            raise ValueError(f"co_attention backward: {name} must match its output's shape {tuple(ref.shape)}, "
                             f"dtype and device with unit last stride, got {tuple(g.shape)} {g.dtype} "
                             f"strides {g.stride()}")
    for name, x in (("ot", ot), ("ov", ov), ("lse_t", lse_t), ("lse_v", lse_v)):
        if not x.is_contiguous():
            raise ValueError(f"co_attention backward: saved {name} must be contiguous")
    cfg = {**bwd_config(K, d, qt.dtype), **(config or {})}
    BK, BN, BH, dev, dt = block_k(K), cfg["BLOCK_N"], B * H, qt.device, qt.dtype
    splits = choose_splits(BH, N, dev, "bwd") if num_splits is None else num_splits
    chunk, splits = chunking(N, BN, splits)
    dqt, dkt, dvt = (_alloc((B, H, K, d), dt, dev) for _ in range(3))
    dqv, dkv, dvv = (_alloc((B, H, N, d), dt, dev) for _ in range(3))
    part = _alloc((splits, BH, 3, BK, d), torch.float32, dev) if splits > 1 else dqt
    passes = [(True, True)] if cfg["fused"] else [(True, False), (False, True)]
    for text, visual in passes:
        _co_attention_bwd_kernel[(splits, BH)](
            qt, kt, vt, qv, kv, vv, d_text, d_visual, ot, ov, lse_t, lse_v,
            dqt, dkt, dvt, dqv, dkv, dvv, part,
            *_strides3(qt), *_strides3(kt), *_strides3(vt), *_strides3(qv), *_strides3(kv), *_strides3(vv),
            *_strides3(d_text), *_strides3(d_visual),
            H, K, N, chunk, scale * _LOG2E, scale,
            BLOCK_K=BK, BLOCK_N=BN, D=d, SPLIT=splits > 1, TEXT=text, VISUAL=visual, PREC=_prec(dt),
            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        )
    if splits > 1:
        _sum_splits_kernel[(BH, 3)](part, dqt, dkt, dvt, splits, BH, K, BLOCK_K=BK, D=d, num_warps=4)
    return dqt, dkt, dvt, dqv, dkv, dvv
