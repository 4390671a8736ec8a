"""Which floating-point precision a device computes natively, and the autocast that follows from it.

bf16 autocast pays off only where the hardware has bf16 arithmetic: CUDA GPUs of compute capability 8.0 or
newer (Ampere, Hopper), and CPUs with AVX512-BF16 or AMX. Elsewhere torch emulates it: on an AVX2 CPU the
profile stage's bf16 training step ran about 7x slower than fp32, and on an AVX-512 CPU without the BF16
extension inference ran 2.5x slower. So a configuration that asks for bf16 gets it only where it is native
and falls back to fp32 everywhere else; what actually ran is recorded beside every number
(`precision_used`).

    requested   device                               used
    "bf16"      CUDA sm80+, CPU with AVX512-BF16/AMX  bf16
    "bf16"      anything else                        fp32
    "fp32"      any                                  fp32
"""
from __future__ import annotations

import contextlib
import functools

import torch

PRECISIONS = ("fp32", "bf16")
# Spellings the configs have used for "no autocast".
_FP32_ALIASES = {"fp32", "none", "float32", False, None}


@functools.cache
def _cpu_has_native_bf16() -> bool:
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def native_bf16(device: torch.device | str) -> bool:
    """True where bf16 matrix arithmetic runs in hardware on this device."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_capability(index) >= (8, 0)
    if device.type == "cpu":
        return _cpu_has_native_bf16()
    return False


def normalise_request(requested) -> str:
    """'fp32' or 'bf16' from a config value ('bf16', 'fp32', 'none', True/False for bf16 on/off)."""
    if requested is True or requested == "bf16":
        return "bf16"
    if requested in _FP32_ALIASES:
        return "fp32"
    raise ValueError(f"precision must be one of {PRECISIONS} (or 'none'), got {requested!r}")


def precision_used(requested, device: torch.device | str) -> str:
    """The precision a request resolves to on `device`: bf16 only where it is native, else fp32."""
    want = normalise_request(requested)
    return "bf16" if want == "bf16" and native_bf16(device) else "fp32"


def autocast(requested, device: torch.device | str) -> contextlib.AbstractContextManager:
    """torch.autocast in bf16 when the request resolves to bf16 on `device`, else a disabled autocast."""
    device = torch.device(device)
    enabled = precision_used(requested, device) == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)
