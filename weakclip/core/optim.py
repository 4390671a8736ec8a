"""The one AdamW every trainer here builds: torch's fused implementation.

torch.optim.AdamW defaults to a per-tensor loop on the CPU. The fused kernel updates every parameter in one
pass over memory; same update rule, float rounding aside. Measured with the tiny CLIP's 98 tensors (7.8 M
parameters, 6.3 M of them the token embedding), 2 CPU threads: 23.4 ms per step looped, 11.5 ms foreach,
3.5 ms fused.
"""

from __future__ import annotations

import torch


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """torch.optim.AdamW(params, fused=True, **kwargs)."""
    return torch.optim.AdamW(params, fused=True, **kwargs)
