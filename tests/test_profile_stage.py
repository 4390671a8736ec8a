"""The profile stage's step configurations: which ones run where, and that each one trains the model."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses
import itertools

import pytest
import torch

from bench.stages.profile import (
    VOC_GPU_CONFIGS,
    StepConfig,
    measure,
    profile_configs,
    throughput_rows,
    voc_schedule_minutes,
)
from weakclip.model import tiny_config

CLASSES = ["background", "square", "disc"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cpu_runs_torch_configs_only_and_names_them():
    perf = {"impls": ["torch", "triton"], "precisions": ["fp32", "bf16"]}
    configs = profile_configs(perf, torch.device("cpu"))
    assert [(c.name, c.impl, c.precision) for c in configs] == [
        ("release-faithful", "torch", "fp32"), ("bf16", "torch", "bf16")]


def test_gpu_configs_have_one_name_each_release_faithful_first():
    perf = {"impls": ["triton", "torch"], "precisions": ["bf16", "fp32"]}
    names = [c.name for c in profile_configs(perf, torch.device("cuda"))]
    assert names[0] == "release-faithful" and sorted(names[1:]) == ["bf16", "triton", "triton+bf16"]


def test_gpu_ladder_starts_release_faithful_and_adds_one_change_at_a_time():
    first, *rest = VOC_GPU_CONFIGS
    assert first.release_faithful and not any(c.release_faithful for c in rest)
    fields = [f.name for f in dataclasses.fields(StepConfig) if f.name != "name"]
    for before, after in itertools.pairwise(VOC_GPU_CONFIGS[1:]):  # after bf16+triton: one change per rung
        changed = [f for f in fields if getattr(before, f) != getattr(after, f)]
        assert len(changed) == 1, (before.name, after.name, changed)
    assert len({c.name for c in VOC_GPU_CONFIGS}) == len(VOC_GPU_CONFIGS)


@pytest.mark.parametrize("step", [StepConfig("release-faithful"), StepConfig("exact", crf_backend="exact"),
                                  StepConfig("nhwc", channels_last=True)], ids=lambda s: s.name)
def test_measure_times_a_real_training_step(step):
    res = measure(tiny_config(weights=None), CLASSES, step, batch=2, size=64, iters=2, warmup=1,
                  device=torch.device("cpu"), crf_workers=1)
    assert res["train_images_per_s"] > 0 and res["infer_images_per_s"] > 0
    assert res["train_step_ms_p20"] <= res["train_step_ms_p50"] <= res["train_step_ms_p80"]
    assert "voc_schedule_minutes" not in res  # a tiny CLIP at 64² is not the VOC recipe's step


def test_voc_schedule_minutes_only_for_the_voc_recipes_step():
    assert voc_schedule_minutes("ViT-B-16", 16, 512, 160.0) == pytest.approx(20_000 * 16 / 160.0 / 60)
    assert voc_schedule_minutes("ViT-B-16", 16, 512, 180.0) == pytest.approx(29.63, abs=0.01)  # the GPU target
    for arch, batch, size in [("tiny", 16, 512), ("ViT-B-16", 8, 512), ("ViT-B-16", 16, 64)]:
        assert voc_schedule_minutes(arch, batch, size, 160.0) is None


def test_rows_record_the_precision_that_ran_and_the_ratio_to_release_faithful(monkeypatch):
    monkeypatch.setattr("weakclip.core.precision._cpu_has_native_bf16", lambda: False)
    perf = {"impls": ["torch"], "precisions": ["fp32", "bf16"], "batch_size": 2, "image_size": 64, "iters": 4,
            "warmup": 1, "rounds": 2, "crf_workers": 1}
    configs = profile_configs(perf, torch.device("cpu"))
    rows = throughput_rows("unit", "synthetic", tiny_config(weights=None), CLASSES, perf, torch.device("cpu"),
                           configs)
    bf16 = [r for r in rows if r["config"] == "bf16"]
    assert {r["precision"] for r in bf16} == {"bf16"} and {r["precision_used"] for r in bf16} == {"fp32"}
    ratio = next(r for r in bf16 if r["metric"] == "train_speed_vs_release_faithful")
    assert ratio["unit"] == "x" and ratio["value"] > 0 and ratio["spread"] >= 0
    faithful = {r["metric"] for r in rows if r["config"] == "release-faithful"}
    assert "train_speed_vs_release_faithful" not in faithful  # the baseline has no ratio to itself
