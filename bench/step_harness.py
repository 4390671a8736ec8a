"""One WeakCLIP training step, built the way a configuration asks, and timed like a benchmark.

A `StepConfig` names one way to run the step as a user sets it in params: a `TrainConfig` (precision, cuDNN
autotuning, NHWC convolutions, a bf16 image tower), the co-attention implementation and the boundary-loss CRF.
A `StepHarness` holds the model, optimizer, loss and a random batch for one configuration and runs the
trainer's own step function on it (weakclip.train.train_step); `measure_configs` times several of them:

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

from weakclip.core.precision import autocast
from weakclip.losses import WeakCLIPLoss
from weakclip.model import WeakCLIP, WeakCLIPConfig
from weakclip.train import TrainConfig, build_optimizer, prepare_model, step_precision, train_step


def _fp32_train_config() -> TrainConfig:
    return TrainConfig(amp="none")


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """One way to run the training step, as a user would set it in params: the TrainConfig the trainer runs
    with (precision and speed switches, params `weakclip.train`) and the two switches that belong to the
    model and the loss (`weakclip.model.impl`, `weakclip.loss.crf_backend`). ``name`` labels its rows."""

    name: str
    train: TrainConfig = dataclasses.field(default_factory=_fp32_train_config)
    impl: str = "torch"  # co-attention: torch | triton
    crf_backend: str = "pydensecrf"  # boundary-loss CRF: pydensecrf (CPU) | exact (logits' device)

    @classmethod
    def of(cls, name: str, impl: str = "torch", precision: str = "fp32", crf_backend: str = "pydensecrf",
           base: TrainConfig | None = None, **switches) -> StepConfig:
        """A configuration from `base` (the profile's training config) with a precision and speed switches
        (TrainConfig fields: cudnn_benchmark, channels_last, bf16_image_tower)."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"StepConfig {name!r}: precision must be fp32 or bf16, got {precision!r}")
        amp = "bf16" if precision == "bf16" else "none"
        train = dataclasses.replace(base or _fp32_train_config(), amp=amp, **switches)
        return cls(name, train, impl, crf_backend)

    @property
    def precision(self) -> str:  # requested: bf16 autocast where the device has native bf16, else fp32
        return "bf16" if self.train.amp == "bf16" else "fp32"

    @property
    def cudnn_benchmark(self) -> bool:
        return self.train.cudnn_benchmark

    @property
    def channels_last(self) -> bool:
        return self.train.channels_last

    @property
    def bf16_image_tower(self) -> bool:
        return self.train.bf16_image_tower

    def switches(self) -> dict[str, object]:
        """The params keys this configuration sets, with their values (recorded in every row it produces)."""
        return {"weakclip.model.impl": self.impl, "weakclip.train.amp": self.train.amp,
                "weakclip.loss.crf_backend": self.crf_backend,
                "weakclip.train.cudnn_benchmark": self.cudnn_benchmark,
                "weakclip.train.channels_last": self.channels_last,
                "weakclip.train.bf16_image_tower": self.bf16_image_tower}

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
    """The model, optimizer, loss and batch of one StepConfig; `train_step()` runs the trainer's own step
    (weakclip.train.train_step) with the configuration's TrainConfig, `infer_step()` one inference forward."""

    def __init__(self, cfg: WeakCLIPConfig, class_names, step: StepConfig, batch: int, size: int,
                 device: torch.device, crf_workers: int | None, loss_params: dict | None = None):
        self.step, self.device, self.batch = step, device, batch
        self.precision = step_precision(step.train, device)
        torch.manual_seed(0)
        self.model = prepare_model(WeakCLIP(dataclasses.replace(cfg, impl=step.impl), class_names), step.train,
                                   device)
        self.optimizer, self.trainable = build_optimizer(self.model, step.train)
        # the profile's loss (params weakclip.loss) with this configuration's CRF backend
        self.loss_fn = WeakCLIPLoss(**{**(loss_params or {}), "crf_workers": crf_workers,
                                       "crf_backend": step.crf_backend})
        self.data = synthetic_batch(batch, size, len(class_names), device)

    def train_step(self) -> None:
        self.model.train()
        train_step(self.model, self.loss_fn, self.optimizer, self.data, self.step.train, self.precision,
                   self.trainable)

    def infer_step(self) -> None:
        torch.backends.cudnn.benchmark = self.step.cudnn_benchmark
        self.model.eval()
        with torch.no_grad(), autocast(self.precision, self.device):
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
                    warmup: int, device: torch.device, crf_workers: int | None, rounds: int = 1,
                    loss_params: dict | None = None) -> dict[str, dict]:
    """{config name: results} for every StepConfig; the first one is the baseline every ratio refers to.

    Results: train_images_per_s, train_step_ms_p20/p50/p80, infer_images_per_s, peak_mem_mb, precision_used,
    and for every configuration after the first: train/infer_speed_vs_<first> with its spread over the rounds."""
    if device.type == "cuda":  # one at a time: each configuration's peak memory is its own
        out = {}
        for step in steps:
            torch.cuda.reset_peak_memory_stats(device)
            out.update(_measure_group(cfg, class_names, [step], batch, size, iters, warmup, device, crf_workers, 1,
                                      loss_params))
        if len(steps) > 1:  # ratios from the separate runs (no spread)
            base = out[steps[0].name]
            for step in steps[1:]:
                for kind in ("train", "infer"):
                    ratio = out[step.name][f"{kind}_images_per_s"] / base[f"{kind}_images_per_s"]
                    out[step.name][ratio_metric(kind, steps[0].name)] = ratio
        return out
    return _measure_group(cfg, class_names, steps, batch, size, iters, warmup, device, crf_workers, rounds,
                          loss_params)


def _measure_group(cfg, class_names, steps, batch, size, iters, warmup, device, crf_workers, rounds,
                   loss_params) -> dict:
    harnesses = [StepHarness(cfg, class_names, s, batch, size, device, crf_workers, loss_params) for s in steps]
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
