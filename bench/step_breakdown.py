"""Where a WeakCLIP training step's time goes, at the VOC recipe's shape on one GPU.

    python -m bench.step_breakdown [--config fast] [--out results/perf/gpu/step_breakdown.csv]
                                   [--kernels results/perf/gpu/step_kernels.txt]

Times each phase of the step of one of the profile stage's GPU configurations (VOC_GPU_CONFIGS) with a
device sync around it (CLIP image tower, the whole forward, the loss with its boundary-loss CRFs,
backward, optimizer), p50 over the timed steps, then writes the top CUDA kernels of two steps from
torch.profiler. Random CLIP weights: speed does not depend on them.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from weakclip.core.precision import autocast as precision_autocast
from weakclip.model import WeakCLIPConfig

from .data import VOC_CLASSES
from .results import make_row, write_rows
from .stages.profile import VOC_GPU_CONFIGS
from .step_harness import StepHarness


def phase_times(model, loss_fn, optimizer, data, autocast, iters: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}

    def timed(name, fn, record):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        if record:
            times.setdefault(name, []).append(1e3 * (time.perf_counter() - t0))
        return out

    for step in range(warmup + iters):
        record = step >= warmup
        with autocast, torch.no_grad():
            timed("clip_image_tower", lambda: model.image_features(data["image"]), record)
        with autocast:
            out = timed("forward_total", lambda: model(data["image"]), record)
        loss = timed("loss_with_crf", lambda out=out: loss_fn(out, data)["total"], record)
        optimizer.zero_grad(set_to_none=True)
        timed("backward", loss.backward, record)
        timed("optimizer", optimizer.step, record)
    return times


def main(argv=None) -> int:
    configs = {c.name: c for c in VOC_GPU_CONFIGS}
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="fast", choices=sorted(configs))
    ap.add_argument("--out", default="results/perf/gpu/step_breakdown.csv")
    ap.add_argument("--kernels", default=None, help="where to write torch.profiler's kernel table (text)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.step_breakdown needs a CUDA device")
    step = configs[args.config]
    device = torch.device("cuda")
    cfg = WeakCLIPConfig(arch="ViT-B-16", weights=None, fidelity="release")
    h = StepHarness(cfg, list(VOC_CLASSES), step, args.batch, args.size, device, crf_workers=None)
    torch.backends.cudnn.benchmark = step.cudnn_benchmark
    h.model.train()
    autocast = precision_autocast(h.precision, device)
    try:
        times = phase_times(h.model, h.loss_fn, h.optimizer, h.data, autocast, args.iters, warmup=3)
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
            phase_times(h.model, h.loss_fn, h.optimizer, h.data, autocast, 2, warmup=0)
    finally:
        h.close()
    rows = []
    for phase, values in times.items():
        p50 = float(np.median(values))
        print(f"{phase:18s} p50 {p50:8.2f} ms")
        rows.append(make_row("voc", "voc", "weakclip[release]", "profile", "", f"step_ms:{phase}", p50, unit="ms",
                             impl=step.impl, precision=step.precision, precision_used=h.precision, config=step.name,
                             crf_backend=step.crf_backend, batch_size=args.batch, image_size=args.size,
                             device_type="cuda"))
    write_rows(args.out, rows)
    events = prof.key_averages()
    kernels = events.table(sort_by="self_device_time_total", row_limit=40, max_name_column_width=80)
    ops = prof.key_averages(group_by_input_shape=True).table(
        sort_by="device_time_total", row_limit=60, max_name_column_width=50, max_shapes_column_width=90)
    print(kernels)
    if args.kernels:
        Path(args.kernels).write_text(
            f"bench.step_breakdown --config {step.name}: 2 steps\n\n## by kernel / op (self device time)\n"
            f"{kernels}\n\n## by op and input shapes (device time incl. children)\n{ops}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
