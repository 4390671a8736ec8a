"""`crf` refiner: dense CRF (Krähenbühl & Koltun 2011) of the seed probabilities via weakclip.core.crf.

Presets (weakclip.core.crf.CRF_PRESETS): psa (Gaussian 3/3, bilateral 80/13/10), deeplab (1/3, 67/3/4),
weakclip_voc (3/3, 83/5/3); 10 mean-field iterations. The CRF sees the real RGB image (never a
mean-subtracted one cast to uint8). Parallelism: `refine_folder(..., "crf", ...)` runs one image per
process over all cores; `weakclip.core.crf.dense_crf_many` does the same for in-memory batches.
"""
from __future__ import annotations

import numpy as np

from weakclip.core.crf import dense_crf
from weakclip.core.io import IGNORE_INDEX

from .common import present_mask, probs_from_scores, scores_with_background


def refine(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, preset: str | dict = "psa",
           bg_threshold: float | None = None, bg_power: float | None = None,
           confidence: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CRF marginals and argmax mask; absent classes stay at probability 0.

    Background: channel 0 as stored unless bg_threshold (constant) or bg_power (1 - max fg)^t is given.
    confidence: pixels whose top marginal is below it -> 255 (the optional unsure band; default off).
    """
    probs = probs_from_scores(scores_with_background(cams, labels, bg_threshold, bg_power))
    keep = present_mask(labels)
    # Only present classes enter the CRF: absent ones have zero unary mass and would only cost time.
    q = np.zeros_like(probs)
    q[keep] = dense_crf(np.ascontiguousarray(image), probs[keep], preset)
    mask = q.argmax(0).astype(np.uint8)
    if confidence is not None:
        mask[q.max(0) < confidence] = IGNORE_INDEX
    return q, mask
