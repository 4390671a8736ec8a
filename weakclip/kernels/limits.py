"""Limits and launch heuristics of the Triton co-attention kernels: what they accept, how they tile and split.

Kept apart from triton.py so that the input checks and tile choices read on their own; `INTERPRET` is
read from the environment when this module is first imported (together with triton.py).
"""
from __future__ import annotations

import functools
import math
import os

import torch
import triton

#: True when the kernels in triton.py are defined under the Triton interpreter (TRITON_INTERPRET=1 at import).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")

SUPPORTED_D = (32, 64, 128)
MAX_K = 128
MAX_N = 65536
MAX_FP32_BLOCK = 64 * 128  # fp32 text blocks of 128 x 128 overflow shared memory (262 KB needed on an H200)
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def block_k(K: int) -> int:
    """Text rows padded to a power of two >= 16 (the smallest tl.dot size NVIDIA accepts for 16-bit types)."""
    return max(16, triton.next_power_of_2(K))


# Tile choices: from one sweep on an H200 (bf16, VOC/COCO/N=4097 shapes, do_bench with host overhead in the
# time, so noisy); sensible defaults rather than tuned optima (see NOTES.md).
def fwd_config(K: int, d: int, dtype: torch.dtype) -> dict:
    """Tile and launch parameters of the forward kernel: BLOCK_N, num_warps, num_stages."""
    work = block_k(K) * d * (2 if dtype == torch.float32 else 1)  # register/shared footprint of a text block
    if work <= 32 * 64:
        return {"BLOCK_N": 32, "num_warps": 4, "num_stages": 3}
    if work <= 64 * 128:
        return {"BLOCK_N": 64, "num_warps": 8, "num_stages": 2}
    return {"BLOCK_N": 32, "num_warps": 8, "num_stages": 2}


def bwd_config(K: int, d: int, dtype: torch.dtype) -> dict:
    """Backward: BLOCK_N, warps, stages, and whether both directions share one launch (fused)."""
    work = block_k(K) * d * (2 if dtype == torch.float32 else 1)
    if work <= 32 * 64:
        return {"BLOCK_N": 64, "num_warps": 4, "num_stages": 2, "fused": True}
    if work <= 64 * 128:
        return {"BLOCK_N": 64, "num_warps": 4, "num_stages": 1, "fused": True}
    return {"BLOCK_N": 32, "num_warps": 8, "num_stages": 1, "fused": False}


#: Fewest visual tokens per program before N is split (a split costs a second, combining launch).
MIN_TOKENS_PER_SPLIT = {"fwd": 4096, "bwd": 1024}


@functools.lru_cache(maxsize=8)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def choose_splits(BH: int, N: int, device: torch.device, pass_: str = "fwd") -> int:
    """Programs per (b, h) along N: enough to fill the SMs when B·H cannot, never below MIN_TOKENS_PER_SPLIT
    tokens each; 1 on the interpreter."""
    if device.type != "cuda" or INTERPRET:
        return 1
    sms = _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return max(1, min(triton.cdiv(sms, BH), N // MIN_TOKENS_PER_SPLIT[pass_]))


def chunking(N: int, block_n: int, splits: int) -> tuple[int, int]:
    """(chunk, splits): each split covers `chunk` tokens (a multiple of block_n) and starts below N."""
    n_tiles = triton.cdiv(N, block_n)
    splits = max(1, min(int(splits), n_tiles))
    tiles_per = triton.cdiv(n_tiles, splits)
    return tiles_per * block_n, triton.cdiv(n_tiles, tiles_per)


def _max_offset(x: torch.Tensor) -> int:
    return sum((s - 1) * st for s, st in zip(x.shape, x.stride()))


def check_shapes(qt, kt, vt, qv, kv, vv) -> dict:
    """The six inputs are 4-d, text (B, H, K, d) and visual (B, H, N, d) with one B, H and d; raises a
    ValueError naming the input otherwise (matmul broadcasting would silently accept a batch of 1)."""
    named = {"qt": qt, "kt": kt, "vt": vt, "qv": qv, "kv": kv, "vv": vv}
    for name, x in named.items():
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"co_attention: {name} must be a 4-d tensor (B, H, rows, d), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
    B, H, _, d = qt.shape
    N = qv.shape[2]
    for name in ("kt", "vt"):
        if named[name].shape != qt.shape:
            raise ValueError(f"co_attention: {name} has shape {tuple(named[name].shape)}, expected qt's "
                             f"{tuple(qt.shape)} (B, H, K, d)")
    for name in ("qv", "kv", "vv"):
        if named[name].shape != (B, H, N, d):
            raise ValueError(f"co_attention: {name} has shape {tuple(named[name].shape)}, expected "
                             f"{(B, H, N, d)} (B, H, N, d) matching qt's B, H, d")
    return named


def check_inputs(qt, kt, vt, qv, kv, vv, scale=None) -> tuple[int, int, int, int, int, float]:
    """Validate the six inputs for the Triton path; returns (B, H, K, N, d, scale) or raises ValueError."""
    named = check_shapes(qt, kt, vt, qv, kv, vv)
    B, H, K, d = qt.shape
    N = qv.shape[2]
    dtypes = {x.dtype for x in named.values()}
    devices = {x.device for x in named.values()}
    if len(dtypes) != 1 or len(devices) != 1:
        raise ValueError(f"co_attention: all six inputs must share one dtype and device, got dtypes "
                         f"{sorted(map(str, dtypes))} on {sorted(map(str, devices))}")
    dtype, device = qt.dtype, qt.device
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"co_attention[triton]: dtype {dtype} unsupported (float32, float16, bfloat16)")
    if device.type != "cuda" and not INTERPRET:
        raise ValueError(f"co_attention[triton]: inputs on {device} need CUDA, or TRITON_INTERPRET=1 set before "
                         "weakclip.kernels.triton is imported (the Triton interpreter runs on CPU tensors)")
    if INTERPRET and dtype == torch.bfloat16:
        raise ValueError("co_attention[triton]: bfloat16 is wrong under the Triton interpreter (its tl.dot "
                         "mishandles bf16); use float16/float32 there or run on a GPU")
    if not 1 <= K <= MAX_K:
        raise ValueError(f"co_attention[triton]: K (text tokens, dim 2 of qt) = {K} outside 1..{MAX_K}")
    if not 1 <= N <= MAX_N:
        raise ValueError(f"co_attention[triton]: N (visual tokens, dim 2 of qv) = {N} outside 1..{MAX_N}")
    if d not in SUPPORTED_D:
        raise ValueError(f"co_attention[triton]: head dim d = {d} unsupported, expected one of {SUPPORTED_D}")
    if dtype == torch.float32 and block_k(K) * d > MAX_FP32_BLOCK:
        raise ValueError(f"co_attention[triton]: float32 with K = {K} (padded to {block_k(K)}) and d = {d} needs more "
                         f"shared memory than a GPU has (padded K·d must be <= {MAX_FP32_BLOCK}); use float16/"
                         "bfloat16 or impl='torch'")
    if B < 1 or H < 1:
        raise ValueError(f"co_attention[triton]: empty batch or heads (B={B}, H={H})")
    for name, x in named.items():
        if x.stride(-1) != 1:
            raise ValueError(f"co_attention[triton]: {name} must have unit stride in its last dim, got "
                             f"strides {x.stride()}")
        if _max_offset(x) >= 2**31 or B * H * max(K, N) * d >= 2**31:
            raise ValueError(f"co_attention[triton]: {name} is too large for 32-bit offsets")
    scale = d ** -0.5 if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"co_attention: scale must be finite, got {scale}")
    return B, H, K, N, d, scale
