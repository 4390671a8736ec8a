"""Learning-rate schedules: linear warm-up then cosine annealing to a floor (WeakCLIP, the tiny CLIP), and
DeepLab's poly decay (stage 3, IRN's CAM and affinity networks).

This follows the mmcv/mmseg semantics used by the WeakCLIP release (`CosineAnnealing` with
`min_lr`, `warmup='linear'`): the cosine curve runs over *all* iterations from 0, and during the
first `warmup_iters` iterations it is multiplied by a factor that rises linearly from
`warmup_ratio` to 1. A pure function of the iteration number, so a resumed run needs no
scheduler state beyond the iteration counter.
"""

from __future__ import annotations

import math


def lr_at(
    it: int,
    base_lr: float,
    total_iters: int,
    min_lr: float = 0.0,
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-6,
) -> float:
    """Learning rate for the update that turns iteration `it` (0-based) into `it + 1`.

    it=0 .. total_iters-1.  Cosine: min_lr + (base_lr - min_lr)·(1 + cos(π·it/total))/2.
    Warm-up (it < warmup_iters): that value × (1 - (1 - it/warmup_iters)·(1 - warmup_ratio)).
    """
    if total_iters <= 0:
        raise ValueError(f"lr_at: total_iters must be positive, got {total_iters}")
    if it < 0:
        raise ValueError(f"lr_at: iteration must be >= 0, got {it}")
    progress = min(it, total_iters) / total_iters
    lr = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if warmup_iters > 0 and it < warmup_iters:
        k = (1.0 - it / warmup_iters) * (1.0 - warmup_ratio)
        lr *= 1.0 - k
    return lr


def lr_scale_at(
    it: int,
    base_lr: float,
    total_iters: int,
    min_lr: float = 0.0,
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-6,
) -> float:
    """lr_at(...) / base_lr: the factor applied to every parameter group's own base rate.

    A group with rate multiplier m thus follows m·lr_at(it) (its floor is m·min_lr), and a
    group with base rate 0 stays at 0.
    """
    if base_lr <= 0:
        raise ValueError(f"lr_scale_at: base_lr must be positive, got {base_lr}")
    return lr_at(it, base_lr, total_iters, min_lr, warmup_iters, warmup_ratio) / base_lr


def poly_factor(it: int, total_iters: int, power: float = 0.9) -> float:
    """DeepLab's poly decay: the factor (1 - it / total)^power applied to each group's base rate, it = 0..total-1."""
    if total_iters <= 0:
        raise ValueError(f"poly_factor: total_iters must be positive, got {total_iters}")
    return (1.0 - it / total_iters) ** power
