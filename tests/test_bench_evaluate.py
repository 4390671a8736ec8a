"""Benchmark: the evaluator scoring voc-mini val (346 real VOC masks) against itself.

Run with `pytest tests/test_bench_evaluate.py --benchmark-enable` (benchmarks are disabled by default,
in which case the body runs once as a smoke test).
"""

from __future__ import annotations

from bench.data import build_dataset
from bench.metrics import evaluate_masks


def test_bench_evaluate_voc_mini_val(benchmark, voc_mini_root):
    ds = build_dataset({"kind": "voc", "root": str(voc_mini_root)}, "val")
    result = benchmark.pedantic(
        evaluate_masks, args=(ds.mask_dir, ds.mask_dir, ds.ids, 21), rounds=5, warmup_rounds=1, iterations=1
    )
    assert result["miou"] == 1.0 and result["n_images"] == 346
    benchmark.extra_info["n_images"] = len(ds)
    if benchmark.stats is not None:  # None when benchmarks are disabled
        mean_s = benchmark.stats.stats.mean
        benchmark.extra_info["images_per_s"] = len(ds) / mean_s
