"""Stage `profile`: WeakCLIP throughput and memory on whatever device is present, plus the kernel benchmark.

    python -m bench.stages.profile                      # the DVC stage: the active profile's model, CPU rows
    python -m bench.stages.profile --voc-gpu --out-dir results/perf/gpu
                                                        # the VOC schedule's shape (ViT-B/16, 512², batch 16)

Measured per step configuration (`StepConfig`): training step (forward, losses including the CRF
boundary loss, backward, AdamW step) in images/s, pseudo-mask inference forward in images/s, and peak
memory. Rows are labelled with the device and the configuration; GPU rows exist only where a GPU
measured them. `--voc-gpu` measures the VOC recipe's step at random CLIP weights (speed does not depend
on the weights): the release-faithful configuration (fp32, torch co-attention, pydensecrf on the CPU)
beside the fast ones (bf16 autocast, Triton co-attention, the exact CRF on the GPU, cuDNN autotuning,
NHWC convolutions, a bf16 image tower), each change added one at a time so that the table says what
each one buys.
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from weakclip.losses import WeakCLIPLoss
from weakclip.model import WeakCLIP, WeakCLIPConfig
from weakclip.optim import adamw

from ..data import VOC_CLASSES, build_dataset
from ..results import make_row, write_rows
from .common import REPO_ROOT, RESULTS, run_stage

VOC_SCHEDULE_IMAGES = 20_000 * 16  # 20k iterations x batch 16 (spec/weakclip.md)
VOC_RECIPE_SHAPE = ("ViT-B-16", 16, 512)  # (CLIP arch, batch, crop side) of the VOC recipe's training step


def voc_schedule_minutes(arch: str, batch: int, size: int, train_images_per_s: float) -> float | None:
    """Minutes the VOC schedule would take at this throughput; None unless the step timed is the VOC
    recipe's own (another shape's speed says nothing about it: a tiny CLIP at 64² is not ViT-B/16 at 512²)."""
    if (arch, batch, size) != VOC_RECIPE_SHAPE:
        return None
    return VOC_SCHEDULE_IMAGES / train_images_per_s / 60


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """One way to run the training step. ``name`` labels its rows (column ``config``)."""

    name: str
    impl: str = "torch"  # co-attention: torch | triton
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    crf_backend: str = "pydensecrf"  # boundary-loss CRF: pydensecrf (CPU) | exact (logits' device)
    cudnn_benchmark: bool = False  # cuDNN picks its convolution algorithms by timing them
    channels_last: bool = False  # convolution weights (adapter, decoder) in NHWC, so cuDNN runs NHWC kernels
    bf16_image_tower: bool = False  # the frozen image tower stored in bf16 and run outside autocast

    @property
    def release_faithful(self) -> bool:
        return (self.impl, self.precision, self.crf_backend) == ("torch", "fp32", "pydensecrf") and not (
            self.cudnn_benchmark or self.channels_last or self.bf16_image_tower)


# The GPU ladder: each configuration adds one change to the one before it.
VOC_GPU_CONFIGS = (
    StepConfig("release-faithful"),
    StepConfig("bf16+triton", impl="triton", precision="bf16"),
    StepConfig("bf16+triton+exact-crf", impl="triton", precision="bf16", crf_backend="exact"),
    StepConfig("fast", impl="triton", precision="bf16", crf_backend="exact", cudnn_benchmark=True),
    StepConfig("fast+channels-last", impl="triton", precision="bf16", crf_backend="exact", cudnn_benchmark=True,
               channels_last=True),
    StepConfig("fast+channels-last+bf16-tower", impl="triton", precision="bf16", crf_backend="exact",
               cudnn_benchmark=True, channels_last=True, bf16_image_tower=True),
)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB -> MiB)


def synthetic_batch(batch: int, size: int, num_classes: int, device: torch.device, seed: int = 0) -> dict:
    """A random batch with the shapes of a training batch (speed does not depend on pixel values)."""
    gen = torch.Generator().manual_seed(seed)
    images_uint8 = torch.randint(0, 256, (batch, size, size, 3), generator=gen, dtype=torch.uint8)
    mask = torch.randint(0, num_classes, (batch, size, size), generator=gen)
    mask[:, : size // 8] = 255
    image = (images_uint8.permute(0, 3, 1, 2).float() / 255 - 0.45) / 0.25
    if device.type == "cuda":  # as the trainer's loader (pin_memory) hands it over; it stays on the host
        images_uint8 = images_uint8.pin_memory()
    return {"image": image.to(device), "mask": mask.to(device), "image_uint8": images_uint8}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loop(step, iters: int, warmup: int, device) -> list[float]:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def measure(cfg: WeakCLIPConfig, class_names, step: StepConfig, batch: int, size: int, iters: int, warmup: int,
            device: torch.device, crf_workers: int | None) -> dict:
    """Training-step and inference throughput of one step configuration."""
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = step.cudnn_benchmark
    model = WeakCLIP(dataclasses.replace(cfg, impl=step.impl), class_names).to(device)
    if step.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if step.bf16_image_tower:
        model.store_image_tower_in(torch.bfloat16)
    groups = [g for g in model.param_groups(1e-4, 3e-5) if g.get("lr", 1e-4) > 0]
    optimizer = adamw(groups, lr=1e-4)
    loss_fn = WeakCLIPLoss(crf_workers=crf_workers, crf_backend=step.crf_backend)
    data = synthetic_batch(batch, size, len(class_names), device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.precision == "bf16")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def train_step():
        with autocast:
            out = model(data["image"])
        loss = loss_fn(out, data)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad(), autocast:
            model(data["image"])

    try:
        model.train()
        train_times = time_loop(train_step, iters, warmup, device)
        train_mem = peak_memory_mb(device)
        model.eval()
        infer_times = time_loop(infer_step, iters, warmup, device)
    finally:
        loss_fn.close()
        torch.backends.cudnn.benchmark = False
    p50_train, p50_infer = float(np.median(train_times)), float(np.median(infer_times))
    res = {"train_images_per_s": batch / p50_train, "train_step_ms_p50": 1e3 * p50_train,
           "train_step_ms_p20": 1e3 * float(np.quantile(train_times, 0.2)),
           "train_step_ms_p80": 1e3 * float(np.quantile(train_times, 0.8)),
           "infer_images_per_s": batch / p50_infer, "peak_mem_mb": train_mem}
    minutes = voc_schedule_minutes(cfg.arch, batch, size, batch / p50_train)
    if minutes is not None:
        res["voc_schedule_minutes"] = minutes
    return res


def profile_configs(perf: dict, device: torch.device) -> list[StepConfig]:
    """The stage's configurations: every (impl, precision) of params `perf` (triton on CUDA only)."""
    impls = perf["impls"] if device.type == "cuda" else [i for i in perf["impls"] if i == "torch"]
    configs = []
    for impl in impls:
        for precision in perf["precisions"]:
            step = StepConfig("", impl=impl, precision=precision)
            configs.append(dataclasses.replace(step, name="release-faithful" if step.release_faithful else "fast"))
    return configs


def throughput_rows(profile: str, dataset: str, cfg: WeakCLIPConfig, class_names, perf: dict,
                    device: torch.device, configs: list[StepConfig]) -> list[dict]:
    rows = []
    for step in configs:
        res = measure(cfg, class_names, step, perf["batch_size"], perf["image_size"], perf["iters"],
                      perf["warmup"], device, perf.get("crf_workers"))
        unit = {"images_per_s": "img/s", "_ms_": "ms", "mem_mb": "MiB", "minutes": "min"}
        for metric, value in res.items():
            rows.append(make_row(profile, dataset, f"weakclip[{cfg.fidelity}]", "profile", "", metric, value,
                                 unit=next((u for k, u in unit.items() if k in metric), ""), impl=step.impl,
                                 precision=step.precision, config=step.name, crf_backend=step.crf_backend,
                                 cudnn_benchmark=step.cudnn_benchmark, channels_last=step.channels_last,
                                 bf16_image_tower=step.bf16_image_tower,
                                 arch=cfg.arch,
                                 batch_size=perf["batch_size"], image_size=perf["image_size"],
                                 device_type=device.type))
        print(f"{step.name:24s} train {res['train_images_per_s']:8.1f} img/s  infer "
              f"{res['infer_images_per_s']:8.1f} img/s  peak {res['peak_mem_mb']:8.0f} MiB", flush=True)
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
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        section = dict(stage.get("weakclip.model"))
        section.update(arch=stage.get("clip.arch"), weights=str(REPO_ROOT / stage.get("clip.weights")))
        cfg = WeakCLIPConfig.from_dict(section)
        names = build_dataset(stage.data_cfg, stage.data_cfg["train_split"]).class_names
        rows = throughput_rows(stage.profile, stage.dataset_name, cfg, names, perf, device,
                               profile_configs(perf, device))
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
    perf = {"batch_size": 16, "image_size": 512, "iters": 20, "warmup": 5, "crf_workers": None}
    rows = throughput_rows("voc", "voc", cfg, list(VOC_CLASSES), perf, device, list(configs))
    rows += parameter_rows("voc", "voc", cfg, list(VOC_CLASSES))
    write_rows(out_dir / "throughput_voc_gpu.csv", rows)
    for r in rows:
        if r["metric"] in ("train_images_per_s", "voc_schedule_minutes", "peak_mem_mb"):
            print(f'{r.get("config", ""):24s} {r["metric"]:24s} {r["value"]:.2f}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
