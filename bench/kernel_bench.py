"""Co-attention kernel benchmark: providers side by side, forward and forward+backward, long-format rows.

    python -m bench.kernel_bench --out results/perf/kernel_bench.csv [--quick]

Providers: `torch_eager` (the reference), `sdpa` (two F.scaled_dot_product_attention calls), `torch_compile`
(torch.compile of the reference) and `triton` (the fused kernel, CUDA only).

Formulas (B·H heads, K text tokens, N visual tokens, head dim d, e bytes per element):
  bytes, the fewest a kernel must move, each input read once and each output written once:
    forward   e·B·H·(4K + 4N)·d        read qt, kt, vt, qv, kv, vv; write text_out, visual_out
    backward  e·B·H·(7K + 7N)·d        read the six inputs and two output gradients; write six gradients
    fwd+bwd   e·B·H·(11K + 11N)·d
  FLOPs (matrix products only, 2 per multiply-add; softmax and the backward's recomputation not counted):
    forward   8·B·H·K·N·d              two directions × (scores + weighted sum)
    backward  16·B·H·K·N·d             two directions × (dP, dV, dQ, dK)
Achieved GB/s and TFLOP/s divide these by the p50 time; `pct_copy_bw` compares GB/s with a measured
device-to-device copy (bytes read + written) and `pct_matmul_peak` TFLOP/s with a measured large matmul.
Two timings per row set (column `timing`), both with CUDA events and the L2 flushed (256 MB written) before
every repetition:
  eager       triton.testing.do_bench on the Python call as a user makes it: host work (argument checks,
              allocation, kernel launches, autograd) that outlasts the flush shows up in the time;
  cuda_graph  the same call captured once in a CUDA graph and replayed: device time alone.
On CPU only `eager` exists, timed with a perf_counter loop.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench.provenance import device_label, environment
from weakclip.kernels import co_attention, co_attention_reference

log = logging.getLogger(__name__)

GPU_SHAPES = {
    "voc": {"B": 16, "H": 4, "K": 21, "N": 1025, "d": 64},
    "coco": {"B": 16, "H": 4, "K": 91, "N": 1025, "d": 64},
    "hires": {"B": 16, "H": 4, "K": 21, "N": 4097, "d": 64},
    "hires_coco": {"B": 16, "H": 4, "K": 91, "N": 4097, "d": 64},
}
CPU_SHAPES = {"voc_cpu": {"B": 2, "H": 4, "K": 21, "N": 1025, "d": 64}}
PROVIDERS = ("torch_eager", "sdpa", "torch_compile", "triton")
TORCH_PROVIDERS = ("torch_eager", "sdpa", "torch_compile")
MODES = ("fwd", "fwd_bwd")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
QUANTILES = (0.2, 0.5, 0.8)


def sdpa_pair(qt, kt, vt, qv, kv, vv, scale=None):
    """The two directions as two fused-attention calls (PyTorch's best generic kernel)."""
    text = F.scaled_dot_product_attention(qt, kv, vv, scale=scale)
    visual = F.scaled_dot_product_attention(qv, kt, vt, scale=scale)
    return text, visual


_compiled = None


def compiled_reference(*args):
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(co_attention_reference)
    return _compiled(*args)


def provider_fn(provider: str):
    if provider == "torch_eager":
        return co_attention_reference
    if provider == "sdpa":
        return sdpa_pair
    if provider == "torch_compile":
        return compiled_reference
    if provider == "triton":
        return lambda *x: co_attention(*x, impl="triton")
    raise ValueError(f"unknown provider {provider!r}, expected one of {PROVIDERS}")


def bytes_moved(s: dict, mode: str, elem: int) -> int:
    per = {"fwd": 4, "bwd": 7, "fwd_bwd": 11}[mode]
    return elem * s["B"] * s["H"] * per * (s["K"] + s["N"]) * s["d"]


def flops(s: dict, mode: str) -> int:
    per = {"fwd": 8, "bwd": 16, "fwd_bwd": 24}[mode]
    return per * s["B"] * s["H"] * s["K"] * s["N"] * s["d"]


def time_quantiles(fn, device: torch.device, grad_to_none=None) -> tuple[float, float, float]:
    """(p20, p50, p80) milliseconds."""
    if device.type == "cuda":
        import triton.testing

        return tuple(triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none,
                                             quantiles=list(QUANTILES)))
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < 5 or (len(times) < 50 and time.perf_counter() - start < 2.0):
        if grad_to_none:
            for x in grad_to_none:
                x.grad = None
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return tuple(float(q) for q in np.quantile(times, QUANTILES))


def graph_quantiles(step, grad_to_none=None, reps: int = 100) -> tuple[float, float, float]:
    """(p20, p50, p80) ms of `step` captured in a CUDA graph, L2 flushed before each replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as graph capture requires
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    for x in grad_to_none or ():
        x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for _ in range(5):
        graph.replay()
    for start, end in events:
        flush.zero_()
        start.record()
        graph.replay()
        end.record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) for s, e in events]
    return tuple(float(q) for q in np.quantile(times, QUANTILES))


def measure_peaks(device: torch.device) -> dict:
    """Measured ceilings: copy bandwidth (GB/s, read + write) and matmul TFLOP/s per dtype."""
    n_bytes = (1 << 30) if device.type == "cuda" else (64 << 20)
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    _, copy_ms, _ = time_quantiles(lambda: dst.copy_(src), device)
    src = dst = None  # free the 2 GiB before the matmuls
    peaks = {"copy_GBps": 2 * n_bytes / copy_ms / 1e6, "copy_ms": copy_ms}
    n = 8192 if device.type == "cuda" else 1024
    for name, dt in DTYPES.items():
        if device.type == "cpu" and dt != torch.float32:
            continue
        a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
        _, ms, _ = time_quantiles(lambda a=a, b=b: a @ b, device)
        peaks[f"matmul_{name}_TFLOPs"] = 2 * n**3 / ms / 1e9
    return peaks


def make_inputs(s: dict, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)

    def draw(rows):
        x = torch.randn(s["B"], s["H"], rows, s["d"], device=device, dtype=dtype, generator=g)
        return x.requires_grad_(requires_grad)

    return [draw(s["K"]) for _ in range(3)] + [draw(s["N"]) for _ in range(3)]


def _available(provider: str, device: torch.device) -> str | None:
    """None when the provider can run here, else why not."""
    if provider == "triton" and device.type != "cuda":
        return "the Triton provider needs CUDA (the interpreter's timings mean nothing)"
    return None


def _env_columns(env: dict) -> dict:
    dev = env["device"]
    git = env["git"]  # a copy of the tree without .git (a lent GPU machine) takes the revision from the caller
    sha = git["sha"] or os.environ.get("WEAKCLIP_GIT_SHA")
    dirty = git["dirty"] if git["sha"] else os.environ.get("WEAKCLIP_GIT_DIRTY")
    return {"device": device_label(dev), "git_sha": sha, "git_dirty": dirty,
            "torch": env["versions"].get("torch"), "triton": env["versions"].get("triton"),
            "host": env["host"], "timestamp": env["timestamp"]}


def run_kernel_bench(shapes, dtypes, modes=MODES, providers=PROVIDERS, device=None, peaks=None) -> pd.DataFrame:
    """Time every (shape, dtype, mode, provider); long-format rows with the environment in each.

    shapes: {name: dict(B, H, K, N, d)} or a list of names from GPU_SHAPES / CPU_SHAPES; dtypes: names
    ("bf16", ...) or torch dtypes; peaks: a `measure_peaks` result to reuse (measured here when None).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not isinstance(shapes, dict):
        shapes = {name: {**GPU_SHAPES, **CPU_SHAPES}[name] for name in shapes}
    dtype_names = {v: k for k, v in DTYPES.items()}
    dtypes = [dtype_names.get(dt, dt) for dt in dtypes]
    env_cols = _env_columns(environment())
    peaks = peaks or measure_peaks(device)
    rows = [{"kernel": "peak", "provider": "copy", "metric": "bandwidth", "value": peaks["copy_GBps"],
             "unit": "GB/s"}]
    rows += [{"kernel": "peak", "provider": "matmul", "dtype": k.split("_")[1], "metric": "throughput", "value": v,
              "unit": "TFLOP/s"} for k, v in peaks.items() if k.startswith("matmul")]
    try:
        from tqdm import tqdm
    except ImportError:  # the GPU machine has no tqdm guarantee
        def tqdm(x, **_):
            return x
    jobs = [(sn, dn, m, p) for sn in shapes for dn in dtypes for m in modes for p in providers]
    for shape_name, dtype_name, mode, provider in tqdm(jobs, desc="kernel bench"):
        s, dtype = shapes[shape_name], DTYPES[dtype_name]
        why = _available(provider, device) or (
            "bf16/fp16 matmul on CPU is not a meaningful timing" if device.type == "cpu" and dtype != torch.float32
            else None)
        if why:
            log.warning("skipping %s/%s/%s/%s: %s", provider, shape_name, dtype_name, mode, why)
            continue
        base = {"kernel": "co_attention", "provider": provider, "mode": mode, "dtype": dtype_name,
                "shape": shape_name, **s}
        rows += _bench_one(provider, s, dtype, mode, device, base)
    frame = pd.DataFrame(rows)
    frame = _add_speedups(frame)
    for k, v in env_cols.items():
        frame[k] = v
    frame["copy_GBps_measured"] = peaks["copy_GBps"]
    return frame


def _bench_one(provider, s, dtype, mode, device, base) -> list[dict]:
    fn = provider_fn(provider)
    train = mode == "fwd_bwd"
    x = make_inputs(s, dtype, device, requires_grad=train)
    # Accuracy guard: the provider's forward against the reference in float32 on the same inputs.
    with torch.no_grad():
        got = fn(*[t.detach() for t in x])
        ref = co_attention_reference(*[t.detach().float() for t in x])
    err = max((a.float() - b).abs().max().item() for a, b in zip(got, ref))
    if not math.isfinite(err) or err > 0.1:
        raise RuntimeError(f"{provider} {base['shape']} {base['dtype']}: output differs from the reference by {err}")
    if train:
        grads = [torch.randn_like(o) for o in got]

        def step():
            torch.autograd.backward(fn(*x), grads)
    else:
        def step():
            with torch.no_grad():
                fn(*x)
    timings = {"eager": time_quantiles(step, device, grad_to_none=x if train else None)}
    if device.type == "cuda":
        try:
            timings["cuda_graph"] = graph_quantiles(step, grad_to_none=x if train else None)
        except Exception as exc:  # noqa: BLE001 - a provider that cannot be captured keeps its eager rows
            log.warning("%s %s: CUDA graph capture failed (%s)", provider, base["shape"], exc)
    nbytes, nflops = bytes_moved(s, mode, torch.empty((), dtype=dtype).element_size()), flops(s, mode)
    rows = [dict(base, metric="max_abs_err_fwd_vs_fp32", value=err, unit="")]
    for timing, (p20, p50, p80) in timings.items():
        b = dict(base, timing=timing)
        rows += [
            dict(b, metric="time", value=p50, p20=p20, p50=p50, p80=p80, unit="ms"),
            dict(b, metric="bandwidth", value=nbytes / p50 / 1e6, p20=nbytes / p80 / 1e6, p50=nbytes / p50 / 1e6,
                 p80=nbytes / p20 / 1e6, unit="GB/s", formula_bytes=nbytes),
            dict(b, metric="throughput", value=nflops / p50 / 1e9, p20=nflops / p80 / 1e9, p50=nflops / p50 / 1e9,
                 p80=nflops / p20 / 1e9, unit="TFLOP/s", formula_flops=nflops),
        ]
    return rows


def _add_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """pct_copy_bw, pct_matmul_peak per row; speedup of each provider over the fastest PyTorch provider."""
    copy = frame.query("kernel == 'peak' and provider == 'copy'")["value"].iloc[0]
    mm = frame.query("kernel == 'peak' and provider == 'matmul'").set_index("dtype")["value"].to_dict()
    extra = []
    times = frame.query("kernel == 'co_attention' and metric == 'time'")
    for row in frame.query("kernel == 'co_attention' and metric == 'bandwidth'").to_dict("records"):
        extra.append({**_keys(row), "metric": "pct_copy_bw", "value": 100 * row["value"] / copy, "unit": "%"})
    for row in frame.query("kernel == 'co_attention' and metric == 'throughput'").to_dict("records"):
        if row["dtype"] in mm:
            extra.append({**_keys(row), "metric": "pct_matmul_peak", "value": 100 * row["value"] / mm[row["dtype"]],
                          "unit": "%"})
    for (shape, dtype, mode, timing), grp in times.groupby(["shape", "dtype", "mode", "timing"]):
        torch_best = grp[grp["provider"].isin(TORCH_PROVIDERS)]
        if torch_best.empty:
            continue
        best = torch_best.loc[torch_best["p50"].idxmin()]
        for row in grp.to_dict("records"):
            extra.append({**_keys(row), "metric": "speedup_vs_best_torch", "value": best["p50"] / row["p50"],
                          "unit": "x", "best_torch_provider": best["provider"]})
    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)


def _keys(row: dict) -> dict:
    return {k: row[k] for k in ("kernel", "provider", "mode", "dtype", "shape", "timing", "B", "H", "K", "N", "d")}


def write_csv(frame: pd.DataFrame, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, out)  # atomic: a reader never sees half a file


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """p50 ms per (shape, dtype, mode) × provider, for printing."""
    t = frame.query("kernel == 'co_attention' and metric == 'time'")
    return t.pivot_table(index=["shape", "dtype", "mode", "timing"], columns="provider", values="p50")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/perf/kernel_bench.csv")
    parser.add_argument("--quick", action="store_true", help="the VOC shape only (bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--providers", nargs="+", default=None, choices=PROVIDERS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cuda = torch.cuda.is_available()
    providers = args.providers or (PROVIDERS if cuda else ("torch_eager", "sdpa"))
    if cuda and args.quick:
        plan = [(["voc"], ["bf16"], providers)]
    elif cuda:  # torch.compile only where the targets are judged (bf16): each shape/dtype costs a compile
        plan = [(list(GPU_SHAPES), ["bf16"], providers),
                (["voc"], ["fp16", "fp32"], [p for p in providers if p != "torch_compile"])]
    else:
        plan = [(list(CPU_SHAPES), ["fp32"], providers)]
    peaks = measure_peaks(torch.device("cuda" if cuda else "cpu"))
    frames = []
    for shapes, dtypes, provs in plan:  # written after each part, so a cut-short run keeps what it measured
        frames.append(run_kernel_bench(shapes, dtypes, MODES, provs, peaks=peaks))
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[~(frame["kernel"].eq("peak") & frame.duplicated(["kernel", "provider", "dtype"]))]
        write_csv(frame, args.out)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(frame).round(4))
        print(frame.query("metric in ['speedup_vs_best_torch', 'pct_copy_bw'] and provider == 'triton'")
              [["shape", "dtype", "mode", "timing", "metric", "value"]].round(3).to_string(index=False))
    print(f"wrote {len(frame)} rows to {args.out}")


if __name__ == "__main__":
    main()
