"""Which device a config's `device` setting means: one rule for every trainer, inference loop and stage."""
from __future__ import annotations

import torch


def resolve_device(pref: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; 'cuda' -> cuda:<local_rank>; any other
    torch device string ('cpu', 'cuda:1') as given. Asking for CUDA where there is none is an error."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(pref)  # a malformed string is torch's error, naming it
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {pref!r} was requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device
