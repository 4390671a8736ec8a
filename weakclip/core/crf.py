"""Dense CRF (Krähenbühl & Koltun, NeurIPS 2011) through pydensecrf2, plus a process pool.

One function, `dense_crf`, serves the WeakCLIP boundary loss, pseudo-mask inference, the `crf`
baseline refiner and stage-3 test-time refinement; the presets name the parameter sets that the
papers use, so a result can say which one produced it.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CRFParams:
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    iterations: int = 10

    def as_dict(self) -> dict:
        return asdict(self)


# Gaussian sxy/compat, bilateral sxy/srgb/compat (docs/baselines.md, docs/method.md).
CRF_PRESETS: dict[str, CRFParams] = {
    "psa": CRFParams(3, 3, 80, 13, 10),
    "deeplab": CRFParams(1, 3, 67, 3, 4),
    "weakclip_voc": CRFParams(3, 3, 83, 5, 3),
    "weakclip_coco": CRFParams(1, 3, 67, 3, 4),
    "weakclip_loss": CRFParams(3, 3, 80, 13, 10),  # boundary loss at 64x64
    "deeplab_voc_test": CRFParams(1, 3, 112, 2, 3),  # stage-3 test-time CRF
}


def crf_params(preset_or_params: str | CRFParams | dict) -> CRFParams:
    """Resolve a preset name, a dict of fields or a CRFParams into CRFParams (clear error on a bad name)."""
    if isinstance(preset_or_params, CRFParams):
        return preset_or_params
    if isinstance(preset_or_params, dict):
        fields = [f.name for f in dataclasses.fields(CRFParams)]
        unknown = sorted(set(preset_or_params) - set(fields))
        if unknown:
            raise ValueError(f"CRF params: unknown keys {unknown}; known: {fields}")
        return CRFParams(**preset_or_params)
    try:
        return CRF_PRESETS[preset_or_params]
    except KeyError:
        raise ValueError(f"unknown CRF preset {preset_or_params!r}; known: {sorted(CRF_PRESETS)}") from None


def dense_crf(image: np.ndarray, probs: np.ndarray, params: str | CRFParams | dict = "psa") -> np.ndarray:
    """Refine class probabilities with a fully connected CRF.

    image: (H, W, 3) uint8 RGB.  probs: (K, H, W) non-negative, summing to 1 over K.
    Returns (K, H, W) float32 marginals Q.
    """
    import pydensecrf.densecrf as dcrf  # imported lazily: worker processes and CPU-only callers

    p = crf_params(params)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"dense_crf: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    k, h, w = probs.shape
    if (h, w) != image.shape[:2]:
        raise ValueError(f"dense_crf: probs {probs.shape} and image {image.shape} differ in size")
    crf = dcrf.DenseCRF2D(w, h, k)
    unary = -np.log(np.clip(probs.astype(np.float32), 1e-8, 1.0)).reshape(k, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=p.gauss_sxy, compat=p.gauss_compat)
    crf.addPairwiseBilateral(
        sxy=p.bilateral_sxy, srgb=p.bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=p.bilateral_compat
    )
    q = np.array(crf.inference(p.iterations), dtype=np.float32).reshape(k, h, w)
    return q


def _crf_job(args):
    image, probs, params = args
    return dense_crf(image, probs, params)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def dense_crf_many(
    images: Sequence[np.ndarray],
    probs: Sequence[np.ndarray],
    params: str | CRFParams | dict = "psa",
    workers: int | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> list[np.ndarray]:
    """dense_crf over many images, in a process pool over all cores (workers=1 runs in-process)."""
    p = crf_params(params)
    jobs: Iterable = [(im, pr, p) for im, pr in zip(images, probs, strict=True)]
    workers = workers or default_workers()
    if pool is not None:
        return list(pool.map(_crf_job, jobs))
    if workers == 1 or len(images) <= 1:
        return [_crf_job(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(_crf_job, jobs, chunksize=max(1, len(images) // (4 * workers))))
