"""`threshold` refiner: a background score (constant threshold, power rule, or the stored channel 0) + argmax.

The background rule must be chosen without the evaluated split's ground truth (docs/baselines.md):
pick it on a held-out split with `threshold_sweep` + the harness's evaluator, or use a published value
(IRN 0.15 for plain CAMs, CLIP-ES power t = 1). This module only maps (CAMs, rule) -> mask.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from weakclip.core.io import IGNORE_INDEX

from .common import present_mask, probs_from_scores, scores_with_background


def threshold_mask(cams: np.ndarray, bg_threshold: float, labels: np.ndarray | None = None) -> np.ndarray:
    """(K, H, W) CAMs + constant background score -> uint8 (H, W) argmax mask (ties go to the lower index)."""
    scores = np.array(cams, dtype=np.float32, copy=True)
    scores[0] = float(bg_threshold)
    if labels is not None:
        scores[~present_mask(labels)] = -np.inf
    return scores.argmax(0).astype(np.uint8)


def threshold_sweep(cams: np.ndarray, thresholds: Iterable[float],
                    labels: np.ndarray | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(threshold, mask) for each background threshold: feed these to the evaluator on a held-out split."""
    for t in thresholds:
        yield float(t), threshold_mask(cams, t, labels)


def refine(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, bg_threshold: float | None = None,
           bg_power: float | None = None, confidence: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mask = argmax over (background, present classes).

    bg_threshold: constant background score; bg_power t: background (1 - max fg)^t; neither: the stored
    channel 0. confidence: pixels whose normalised top probability is below it -> 255 (default off).
    """
    scores = scores_with_background(cams, labels, bg_threshold, bg_power)
    mask = scores.argmax(0).astype(np.uint8)
    probs = probs_from_scores(scores)
    if confidence is not None:
        mask[probs.max(0) < confidence] = IGNORE_INDEX
    return probs, mask
