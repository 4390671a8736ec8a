"""Stage `profile`: WeakCLIP throughput and memory on whatever device is present, plus the kernel benchmark.

    python -m bench.stages.profile                      # the DVC stage: the active profile's model, CPU rows
    python -m bench.stages.profile --voc-gpu --out-dir results/perf/gpu
                                                        # the VOC schedule's shape (ViT-B/16, 512², batch 16)

Measured per step configuration (`StepConfig`, bench/step_harness.py): training step (forward, losses
including the CRF boundary loss, backward, AdamW step) in images/s, pseudo-mask inference forward in
images/s, and peak memory. Rows are labelled with the device, the configuration, the precision it asked for
and the precision that ran (bf16 only where the device has it natively). An absolute speed means something
only next to another speed from the same device; the speed of each configuration *relative to the
release-faithful one*, timed interleaved in the same run (`train_speed_vs_release_faithful`), means the same
on any host, and is what `bench.check` gates everywhere. GPU rows exist only where a GPU measured them. `--voc-gpu` measures the VOC recipe's step at random CLIP weights (speed does not depend
on the weights): the release-faithful configuration (fp32, torch co-attention, pydensecrf on the CPU)
beside the fast ones (bf16 autocast, Triton co-attention, the exact CRF on the GPU, cuDNN autotuning,
NHWC convolutions, a bf16 image tower), each change added one at a time so that the table says what
each one buys.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from weakclip.core.config import config_from
from weakclip.core.device import resolve_device
from weakclip.model import WeakCLIP, WeakCLIPConfig
from weakclip.train import TrainConfig

from ..data import VOC_CLASSES, build_dataset
from ..params import get, load_params
from ..results import make_row, write_rows
from ..step_harness import StepConfig, measure_configs
from .common import REPO_ROOT, RESULTS, run_stage

VOC_SCHEDULE_IMAGES = 20_000 * 16  # 20k iterations x batch 16 (docs/method.md)
VOC_RECIPE_SHAPE = ("ViT-B-16", 16, 512)  # (CLIP arch, batch, crop side) of the VOC recipe's training step


def voc_schedule_minutes(arch: str, batch: int, size: int, train_images_per_s: float) -> float | None:
    """Minutes the VOC schedule would take at this throughput; None unless the step timed is the VOC
    recipe's own (another shape's speed says nothing about it: a tiny CLIP at 64² is not ViT-B/16 at 512²)."""
    if (arch, batch, size) != VOC_RECIPE_SHAPE:
        return None
    return VOC_SCHEDULE_IMAGES / train_images_per_s / 60


# The GPU ladder: each configuration adds one change to the one before it. The base is the VOC recipe's
# training config (TrainConfig's defaults are profiles/voc.yaml's weakclip.train: tests/test_profile_stage.py).
VOC_GPU_CONFIGS = (
    StepConfig.of("release-faithful"),
    StepConfig.of("bf16+triton", impl="triton", precision="bf16"),
    StepConfig.of("bf16+triton+exact-crf", impl="triton", precision="bf16", crf_backend="exact"),
    StepConfig.of("fast", impl="triton", precision="bf16", crf_backend="exact", cudnn_benchmark=True),
    StepConfig.of("fast+channels-last", impl="triton", precision="bf16", crf_backend="exact", cudnn_benchmark=True,
                  channels_last=True),
    StepConfig.of("fast+channels-last+bf16-tower", impl="triton", precision="bf16", crf_backend="exact",
                  cudnn_benchmark=True, channels_last=True, bf16_image_tower=True),
)


def measure(cfg: WeakCLIPConfig, class_names, step: StepConfig, batch: int, size: int, iters: int, warmup: int,
            device: torch.device, crf_workers: int | None, loss_params: dict | None = None) -> dict:
    """Training-step and inference throughput of one step configuration."""
    res = measure_configs(cfg, class_names, [step], batch, size, iters, warmup, device, crf_workers,
                          loss_params=loss_params)[step.name]
    minutes = voc_schedule_minutes(cfg.arch, batch, size, res["train_images_per_s"])
    if minutes is not None:
        res["voc_schedule_minutes"] = minutes
    return res


def config_name(step: StepConfig) -> str:
    """'release-faithful', or what the configuration changes: 'bf16', 'triton', 'triton+bf16'."""
    if step.release_faithful:
        return "release-faithful"
    return "+".join(part for part, changed in ((step.impl, step.impl != "torch"),
                                               (step.precision, step.precision != "fp32")) if changed)


def profile_configs(perf: dict, device: torch.device, base: TrainConfig | None = None) -> list[StepConfig]:
    """The stage's configurations: every (impl, precision) of params `perf` (triton on CUDA only) on the
    profile's own training config `base`, the release-faithful one (torch, fp32) first: every other one's
    speed is also given relative to it."""
    impls = perf["impls"] if device.type == "cuda" else [i for i in perf["impls"] if i == "torch"]
    steps = [StepConfig.of("", impl=impl, precision=precision, base=base)
             for impl in impls for precision in perf["precisions"]]
    steps.sort(key=lambda s: not s.release_faithful)
    return [dataclasses.replace(s, name=config_name(s)) for s in steps]


UNITS = {"images_per_s": "img/s", "_ms_": "ms", "mem_mb": "MiB", "minutes": "min", "_speed_vs_": "x"}


def throughput_rows(profile: str, dataset: str, cfg: WeakCLIPConfig, class_names, perf: dict,
                    device: torch.device, configs: list[StepConfig], loss_params: dict | None = None) -> list[dict]:
    """One row per (configuration, metric). `precision` is what the configuration asked for and
    `precision_used` what ran (bf16 only where the device has it natively); `switches` names the params a
    user sets to train with the configuration."""
    results = measure_configs(cfg, class_names, configs, perf["batch_size"], perf["image_size"], perf["iters"],
                              perf["warmup"], device, perf.get("crf_workers"), rounds=perf.get("rounds", 1),
                              loss_params=loss_params)
    rows = []
    for step in configs:
        res = dict(results[step.name])
        precision = res.pop("precision_used")
        minutes = voc_schedule_minutes(cfg.arch, perf["batch_size"], perf["image_size"], res["train_images_per_s"])
        if minutes is not None:
            res["voc_schedule_minutes"] = minutes
        spreads = {k.removesuffix("_spread"): res.pop(k) for k in list(res) if k.endswith("_spread")}
        for metric, value in res.items():
            rows.append(make_row(profile, dataset, f"weakclip[{cfg.fidelity}]", "profile", "", metric, value,
                                 unit=next((u for k, u in UNITS.items() if k in metric), ""), impl=step.impl,
                                 precision=step.precision, precision_used=precision, config=step.name,
                                 spread=spreads.get(metric), crf_backend=step.crf_backend,
                                 cudnn_benchmark=step.cudnn_benchmark, channels_last=step.channels_last,
                                 bf16_image_tower=step.bf16_image_tower, arch=cfg.arch,
                                 switches=" ".join(f"{k}={v}" for k, v in step.switches().items()),
                                 batch_size=perf["batch_size"], image_size=perf["image_size"],
                                 device_type=device.type))
        ratios = "".join(f"  {k} {v:.2f}x" for k, v in res.items() if "_speed_vs_" in k)
        print(f"{step.name:24s} ({precision}) train {res['train_images_per_s']:8.1f} img/s  infer "
              f"{res['infer_images_per_s']:8.1f} img/s  peak {res['peak_mem_mb']:8.0f} MiB{ratios}", flush=True)
    return rows


def parameter_rows(profile: str, dataset: str, cfg: WeakCLIPConfig, class_names) -> list[dict]:
    """Trainable/total parameters in both fidelity modes (the paper: 12.4% trained)."""
    rows = []
    for fidelity in ("release", "paper"):
        counts = WeakCLIP(dataclasses.replace(cfg, fidelity=fidelity), class_names).count_parameters()
        for metric in ("trainable", "total", "share"):
            rows.append(make_row(profile, dataset, f"weakclip[{fidelity}]", "model", "", f"params_{metric}",
                                 counts[metric], arch=cfg.arch))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voc-gpu", action="store_true", help="the VOC recipe's shape with ViT-B/16 (needs CUDA)")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    if args.voc_gpu:
        return voc_gpu(Path(args.out_dir or RESULTS / "perf" / "gpu"))
    from ..kernel_bench import CPU_SHAPES, run_kernel_bench, write_csv

    with run_stage("profile") as stage:
        perf = stage.get("perf")
        device = resolve_device("auto")
        section = dict(stage.get("weakclip.model"))
        section.update(arch=stage.get("clip.arch"), weights=str(REPO_ROOT / stage.get("clip.weights")))
        cfg = WeakCLIPConfig.from_dict(section)
        names = build_dataset({**stage.data_cfg, "with_masks": False}, stage.data_cfg["fit_split"]).class_names
        # the step train_weakclip runs: the profile's training config and loss, one switch changed at a time
        base = config_from(TrainConfig, stage.get("weakclip.train"))
        rows = throughput_rows(stage.profile, stage.dataset_name, cfg, names, perf, device,
                               profile_configs(perf, device, base), loss_params=stage.get("weakclip.loss"))
        rows += parameter_rows(stage.profile, stage.dataset_name, cfg, names)
        # The paper's "12.4% trained" refers to ViT-B/16 with the paper's decoder widths (the config
        # defaults), not to this profile's decoder: count that architecture as well (random weights).
        rows += parameter_rows(stage.profile, "voc", WeakCLIPConfig(arch="ViT-B-16", weights=None),
                               list(VOC_CLASSES))
        write_rows(RESULTS / "perf" / "throughput.csv", rows)
        shapes = CPU_SHAPES if device.type == "cpu" else None
        frame = run_kernel_bench(shapes or ["voc"], ["fp32"] if device.type == "cpu" else ["bf16"],
                                 providers=("torch_eager", "sdpa"))
        frame["profile"] = stage.profile
        write_csv(frame, RESULTS / "perf" / "kernel_cpu.csv")
    return 0


def voc_gpu(out_dir: Path, configs: tuple[StepConfig, ...] = VOC_GPU_CONFIGS) -> int:
    """The VOC schedule's training step on one GPU, release-faithful beside the fast configurations."""
    if not torch.cuda.is_available():
        raise SystemExit("--voc-gpu needs a CUDA device")
    device = torch.device("cuda")
    cfg = WeakCLIPConfig(arch="ViT-B-16", weights=None, fidelity="release")
    perf = {"batch_size": 16, "image_size": 512, "iters": 20, "warmup": 5, "crf_workers": None, "rounds": 1}
    loss = get(load_params(REPO_ROOT / "profiles" / "voc.yaml"), "weakclip.loss")
    rows = throughput_rows("voc", "voc", cfg, list(VOC_CLASSES), perf, device, list(configs), loss_params=loss)
    rows += parameter_rows("voc", "voc", cfg, list(VOC_CLASSES))
    write_rows(out_dir / "throughput_voc_gpu.csv", rows)
    for r in rows:
        if r["metric"] in ("train_images_per_s", "voc_schedule_minutes", "peak_mem_mb"):
            print(f'{r.get("config", ""):24s} {r["metric"]:24s} {r["value"]:.2f}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
