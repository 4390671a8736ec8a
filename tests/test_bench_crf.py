"""CRF throughput on real VOC photos (voc-mini): one process vs a process pool over all cores.

Run with timings: .venv/bin/python -m pytest tests/test_bench_crf.py --benchmark-enable
Probabilities: 21 classes, 0.5 on the ground-truth class and the rest spread evenly (255 -> uniform), so the
CRF does real work at the real class count.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from weakclip.core.crf import dense_crf, dense_crf_many
from weakclip.core.io import IGNORE_INDEX, load_image, load_mask

N_IMAGES, K = 8, 21


@pytest.fixture(scope="module")
def crf_inputs(voc_mini_root):
    voc = voc_mini_root / "VOC2012"
    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:N_IMAGES]
    images, probs = [], []
    for i in ids:
        images.append(load_image(voc / "JPEGImages" / f"{i}.jpg"))
        gt = load_mask(voc / "SegmentationClass" / f"{i}.png")
        p = np.full((K,) + gt.shape, 0.5 / (K - 1), np.float32)
        valid = gt != IGNORE_INDEX
        p[gt[valid], np.nonzero(valid)[0], np.nonzero(valid)[1]] = 0.5
        p[:, ~valid] = 1.0 / K
        probs.append(p)
    return images, probs


def workers():
    return len(os.sched_getaffinity(0))


def test_crf_single_process(benchmark, crf_inputs):
    images, probs = crf_inputs
    out = benchmark.pedantic(lambda: [dense_crf(im, p, "psa") for im, p in zip(images, probs)],
                             rounds=2, iterations=1)
    assert len(out) == N_IMAGES and out[0].shape == probs[0].shape
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = N_IMAGES / benchmark.stats.stats.mean
    benchmark.extra_info.update(n_images=N_IMAGES, num_classes=K, workers=1, preset="psa")


def test_crf_process_pool(benchmark, crf_inputs):
    images, probs = crf_inputs
    n = workers()
    with ProcessPoolExecutor(n) as pool:  # warm pool: start-up is not part of the throughput
        list(pool.map(int, range(n)))
        out = benchmark.pedantic(lambda: dense_crf_many(images, probs, "psa", pool=pool), rounds=2, iterations=1)
    ref = dense_crf(images[0], probs[0], "psa")
    np.testing.assert_allclose(out[0], ref, atol=1e-6)  # the pool computes the same marginals
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = N_IMAGES / benchmark.stats.stats.mean
    benchmark.extra_info.update(n_images=N_IMAGES, num_classes=K, workers=n, preset="psa")
