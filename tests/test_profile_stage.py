"""The profile stage's step configurations: which ones run where, and that each one trains the model."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses
import itertools

import pytest
import torch
import yaml

from bench.stages.profile import (
    VOC_GPU_CONFIGS,
    StepConfig,
    measure,
    profile_configs,
    throughput_rows,
    voc_schedule_minutes,
)
from weakclip.model import tiny_config
from weakclip.train import TrainConfig

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
    for before, after in itertools.pairwise(VOC_GPU_CONFIGS[1:]):  # after bf16+triton: one change per rung
        changed = [k for k, v in before.switches().items() if after.switches()[k] != v]
        assert len(changed) == 1, (before.name, after.name, changed)
    # apart from the switches, every rung trains with the VOC recipe's config
    base = {f.name for f in dataclasses.fields(TrainConfig)} - {"amp", "cudnn_benchmark", "channels_last",
                                                               "bf16_image_tower"}
    assert all(getattr(c.train, f) == getattr(TrainConfig(), f) for c in VOC_GPU_CONFIGS for f in base)
    assert len({c.name for c in VOC_GPU_CONFIGS}) == len(VOC_GPU_CONFIGS)


@pytest.mark.parametrize("step", [StepConfig.of("release-faithful"), StepConfig.of("exact", crf_backend="exact"),
                                  StepConfig.of("nhwc", channels_last=True)], ids=lambda s: s.name)
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


def test_the_voc_ladders_base_is_the_voc_profiles_training_config():
    from bench.profiles import PROFILES_DIR
    from weakclip.core.config import config_from

    voc = yaml.safe_load((PROFILES_DIR / "voc.yaml").read_text())["weakclip"]["train"]
    recipe = config_from(TrainConfig, voc)
    for key in ("batch_size", "lr", "min_lr", "weight_decay", "warmup_iters", "seed", "betas", "grad_clip"):
        assert getattr(TrainConfig(), key) == getattr(recipe, key), key


def test_a_configuration_names_the_params_a_user_sets_for_it():
    fast = next(c for c in VOC_GPU_CONFIGS if c.name == "fast+channels-last")
    assert fast.switches() == {"weakclip.model.impl": "triton", "weakclip.train.amp": "bf16",
                               "weakclip.loss.crf_backend": "exact", "weakclip.train.cudnn_benchmark": True,
                               "weakclip.train.channels_last": True, "weakclip.train.bf16_image_tower": False}
    with pytest.raises(ValueError, match="precision"):
        StepConfig.of("x", precision="fp16")


def test_the_step_the_profile_times_is_the_step_training_runs(tmp_path):
    """One timed step of the profile stage's release-faithful configuration, built from the synthetic
    profile's training config and loss, moves the weights exactly as one iteration of weakclip.train.train()
    with that config does, from the same weights on the same batch."""
    from bench.profiles import PROFILES_DIR
    from bench.step_harness import StepHarness
    from weakclip.core.config import config_from
    from weakclip.losses import WeakCLIPLoss
    from weakclip.model import WeakCLIP
    from weakclip.train import seed_iteration, train

    params = yaml.safe_load((PROFILES_DIR / "synthetic.yaml").read_text())["weakclip"]
    base = config_from(TrainConfig, params["train"])
    step = profile_configs({"impls": ["torch"], "precisions": ["fp32"]}, torch.device("cpu"), base)[0]
    assert step.release_faithful and step.train == base  # the profile's own config, nothing changed
    # one iteration at the base rate (no warm-up), no checkpoints, no bar
    one = dataclasses.replace(base, iterations=1, warmup_iters=0, batch_size=2, progress=False)
    step = dataclasses.replace(step, train=one)
    loss_params = {**params["loss"], "crf_workers": None}
    cfg = tiny_config(weights=None)

    harness = StepHarness(cfg, CLASSES, step, batch=2, size=64, device=torch.device("cpu"), crf_workers=None,
                          loss_params=loss_params)
    item = {k: v[0] for k, v in harness.data.items()}  # both rows the same: the loader's order cannot matter
    harness.data = {k: torch.stack([v, v]) for k, v in item.items()}
    seed_iteration(one.seed, 0, 0, 1)  # the trainer seeds every iteration's randomness (dropout) so
    try:
        harness.train_step()
    finally:
        harness.close()

    torch.manual_seed(0)  # as StepHarness builds its model
    model = WeakCLIP(dataclasses.replace(cfg, impl="torch"), CLASSES)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    loss = WeakCLIPLoss(**loss_params)
    try:
        train(model, loss, [item, item], one, tmp_path, resume=False)
    finally:
        loss.close()
    timed, trained = harness.model.state_dict(), model.state_dict()
    moved = [k for k in trained if not torch.equal(trained[k], initial[k])]
    assert moved, "the step changed no weight"
    for key, value in trained.items():
        torch.testing.assert_close(timed[key], value, rtol=0, atol=0, msg=key)
