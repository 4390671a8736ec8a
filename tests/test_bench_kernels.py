"""pytest-benchmark timings of the co-attention CPU paths (run with --benchmark-enable; disabled by default).

    .venv/bin/python -m pytest tests/test_bench_kernels.py --benchmark-enable -q

The reference (eager and two scaled_dot_product_attention calls) at a small VOC-like shape, forward and
forward+backward; the Triton kernels under the interpreter at a tiny shape (correctness-path cost, not speed).
"""
from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

from bench.kernel_bench import sdpa_pair
from weakclip.kernels import co_attention, co_attention_reference
from weakclip.kernels import triton as tk


def _inputs(B, H, K, N, d, grad):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(B, H, r, d, generator=g).requires_grad_(grad) for r in (K, K, K, N, N, N)]


PROVIDERS = {"torch_eager": co_attention_reference, "sdpa": sdpa_pair}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_bench_cpu_forward(benchmark, provider):
    x = _inputs(2, 4, 21, 1025, 64, grad=False)
    with torch.no_grad():
        text, visual = benchmark(PROVIDERS[provider], *x)
    assert text.shape == (2, 4, 21, 64) and visual.shape == (2, 4, 1025, 64)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_bench_cpu_forward_backward(benchmark, provider):
    x = _inputs(2, 4, 21, 1025, 64, grad=True)

    def step():
        for t in x:
            t.grad = None
        torch.autograd.backward(PROVIDERS[provider](*x), [torch.ones(2, 4, 21, 64), torch.ones(2, 4, 1025, 64)])
        return x[0].grad

    assert torch.isfinite(benchmark(step)).all()


@pytest.mark.skipif(not tk.INTERPRET, reason="the interpreter path is what runs on CPU")
def test_bench_triton_interpreter_forward_backward(benchmark):
    x = _inputs(1, 2, 21, 129, 32, grad=True)

    def step():
        for t in x:
            t.grad = None
        torch.autograd.backward(co_attention(*x, impl="triton"), [torch.ones(1, 2, 21, 32), torch.ones(1, 2, 129, 32)])
        return x[3].grad

    assert torch.isfinite(benchmark.pedantic(step, rounds=3, iterations=1)).all()
