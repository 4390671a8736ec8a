"""The optimizers every trainer here builds: torch's fused AdamW, or SGD with momentum (the recipes of the
ImageNet-initialised networks: DeepLab, IRN).

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


OPTIMIZERS = ("adamw", "sgd")


def make_optimizer(params, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                   what: str = "optimizer") -> torch.optim.Optimizer:
    """`name` "sgd" (momentum, as DeepLab and IRN) or "adamw" (fused); `what` names the setting in errors."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return adamw(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"{what} must be one of {OPTIMIZERS}, got {name!r}")
