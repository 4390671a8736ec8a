"""One WeakCLIP training step, built the way a configuration asks, and timed like a benchmark.

A `StepConfig` names one way to run the step (co-attention implementation, precision, boundary-loss CRF,
cuDNN autotuning, NHWC convolutions, a bf16 image tower). A `StepHarness` holds the model, optimizer, loss and
a random batch for one configuration; `measure_configs` times several of them:

- on the CPU they are timed *interleaved*: round after round, each configuration runs a few steps in turn, so
  a drift in the machine's speed (another tenant, a clock change) hits all of them alike, and the ratio of two
  configurations measured side by side is a number that means the same on any host;
- on a GPU (stable clocks, large models) one configuration at a time, so that each one's peak memory is its own.

Precision: a configuration that asks for bf16 gets it only where the device computes bf16 natively
(weakclip.core.precision); every result says which precision ran.
"""
from __future__ import annotations

import dataclasses
import resource
import time

import numpy as np
import torch

from weakclip.core.optim import adamw
from weakclip.core.precision import autocast, precision_used
from weakclip.losses import WeakCLIPLoss
from weakclip.model import WeakCLIP, WeakCLIPConfig


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """One way to run the training step. ``name`` labels its rows (column ``config``)."""

    name: str
    impl: str = "torch"  # co-attention: torch | triton
    precision: str = "fp32"  # requested: fp32 | bf16 (autocast, where the device has native bf16)
    crf_backend: str = "pydensecrf"  # boundary-loss CRF: pydensecrf (CPU) | exact (logits' device)
    cudnn_benchmark: bool = False  # cuDNN picks its convolution algorithms by timing them
    channels_last: bool = False  # convolution weights (adapter, decoder) in NHWC, so cuDNN runs NHWC kernels
    bf16_image_tower: bool = False  # the frozen image tower stored in bf16 and run outside autocast

    @property
    def release_faithful(self) -> bool:
        return (self.impl, self.precision, self.crf_backend) == ("torch", "fp32", "pydensecrf") and not (
            self.cudnn_benchmark or self.channels_last or self.bf16_image_tower)


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepHarness:
    """The model, optimizer, loss and batch of one StepConfig; `train_step()` / `infer_step()` run one step."""

    def __init__(self, cfg: WeakCLIPConfig, class_names, step: StepConfig, batch: int, size: int,
                 device: torch.device, crf_workers: int | None):
        self.step, self.device, self.batch = step, device, batch
        self.precision = precision_used(step.precision, device)
        torch.manual_seed(0)
        model = WeakCLIP(dataclasses.replace(cfg, impl=step.impl), class_names).to(device)
        if step.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if step.bf16_image_tower:
            model.store_image_tower_in(torch.bfloat16)
        self.model = model
        groups = [g for g in model.param_groups(1e-4, 3e-5) if g.get("lr", 1e-4) > 0]
        self.optimizer = adamw(groups, lr=1e-4)
        self.loss_fn = WeakCLIPLoss(crf_workers=crf_workers, crf_backend=step.crf_backend)
        self.data = synthetic_batch(batch, size, len(class_names), device)

    def _autocast(self):
        return autocast(self.precision, self.device)

    def train_step(self) -> None:
        torch.backends.cudnn.benchmark = self.step.cudnn_benchmark  # a global switch: set per step
        self.model.train()
        with self._autocast():
            out = self.model(self.data["image"])
        loss = self.loss_fn(out, self.data)["total"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def infer_step(self) -> None:
        torch.backends.cudnn.benchmark = self.step.cudnn_benchmark
        self.model.eval()
        with torch.no_grad(), self._autocast():
            self.model(self.data["image"])

    def close(self) -> None:
        self.loss_fn.close()
        torch.backends.cudnn.benchmark = False


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB -> MiB)


def time_calls(fn, iters: int, device: torch.device) -> list[float]:
    """Seconds of each of `iters` calls of fn, the device synchronised around each."""
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _timed_rounds(harnesses: list[StepHarness], kind: str, iters: int, warmup: int, rounds: int,
                  device: torch.device) -> list[list[list[float]]]:
    """times[h][r] = step seconds of harness h in round r; the harnesses take turns within each round."""
    for h in harnesses:
        for _ in range(warmup):
            getattr(h, kind)()
    per_round = max(1, iters // rounds)
    return [[time_calls(getattr(h, kind), per_round, device) for h in harnesses] for _ in range(rounds)]


def summarise(times: list[list[float]], batch: int) -> dict:
    """Images/s and step-time quantiles of one configuration's rounds of step times."""
    flat = np.concatenate(times)
    p50 = float(np.median(flat))
    return {"images_per_s": batch / p50, "step_ms_p50": 1e3 * p50, "step_ms_p20": 1e3 * float(np.quantile(flat, 0.2)),
            "step_ms_p80": 1e3 * float(np.quantile(flat, 0.8))}


def speed_ratio(times: list[list[float]], baseline: list[list[float]]) -> tuple[float, float]:
    """(speed of a configuration relative to the baseline's, half the range of that ratio over the rounds):
    per round the ratio of median step times, then the median over the rounds."""
    ratios = [float(np.median(b) / np.median(t)) for t, b in zip(times, baseline, strict=True)]
    return float(np.median(ratios)), (max(ratios) - min(ratios)) / 2


def ratio_metric(kind: str, baseline: str) -> str:
    """'train_speed_vs_release_faithful': the speed of a configuration over the baseline's, same run."""
    return f"{kind}_speed_vs_{baseline.replace('-', '_')}"


def measure_configs(cfg: WeakCLIPConfig, class_names, steps: list[StepConfig], batch: int, size: int, iters: int,
                    warmup: int, device: torch.device, crf_workers: int | None, rounds: int = 1) -> dict[str, dict]:
    """{config name: results} for every StepConfig; the first one is the baseline every ratio refers to.

    Results: train_images_per_s, train_step_ms_p20/p50/p80, infer_images_per_s, peak_mem_mb, precision_used,
    and for every configuration after the first: train/infer_speed_vs_<first> with its spread over the rounds."""
    if device.type == "cuda":  # one at a time: each configuration's peak memory is its own
        out = {}
        for step in steps:
            torch.cuda.reset_peak_memory_stats(device)
            out.update(_measure_group(cfg, class_names, [step], batch, size, iters, warmup, device, crf_workers, 1))
        if len(steps) > 1:  # ratios from the separate runs (no spread)
            base = out[steps[0].name]
            for step in steps[1:]:
                for kind in ("train", "infer"):
                    ratio = out[step.name][f"{kind}_images_per_s"] / base[f"{kind}_images_per_s"]
                    out[step.name][ratio_metric(kind, steps[0].name)] = ratio
        return out
    return _measure_group(cfg, class_names, steps, batch, size, iters, warmup, device, crf_workers, rounds)


def _measure_group(cfg, class_names, steps, batch, size, iters, warmup, device, crf_workers, rounds) -> dict:
    harnesses = [StepHarness(cfg, class_names, s, batch, size, device, crf_workers) for s in steps]
    try:
        train = _timed_rounds(harnesses, "train_step", iters, warmup, rounds, device)
        memory = peak_memory_mb(device)
        infer = _timed_rounds(harnesses, "infer_step", iters, warmup, rounds, device)
    finally:
        for h in harnesses:
            h.close()
    out = {}
    for i, h in enumerate(harnesses):
        train_i, infer_i = [r[i] for r in train], [r[i] for r in infer]
        res = {f"train_{k}": v for k, v in summarise(train_i, batch).items()}
        res["infer_images_per_s"] = summarise(infer_i, batch)["images_per_s"]
        res["peak_mem_mb"] = memory
        res["precision_used"] = h.precision
        if i > 0:
            for kind, times in (("train", train), ("infer", infer)):
                ratio, spread = speed_ratio([r[i] for r in times], [r[0] for r in times])
                res[ratio_metric(kind, steps[0].name)] = ratio
                res[ratio_metric(kind, steps[0].name) + "_spread"] = spread
        out[h.step.name] = res
    return out
