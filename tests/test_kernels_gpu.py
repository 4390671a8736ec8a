"""Compiled Triton co-attention on a CUDA GPU against the float64 reference: fp32, fp16 and bf16, N up to 4097.

Same checks as test_kernels.py (forward and all six gradients, NaN-poisoned outputs, 2x PyTorch's own error
in the dtype + atol) on the real compiler, which enforces NVIDIA's dot-size rules the interpreter does not.
"""
from __future__ import annotations

import logging

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the compiled-kernel tests need a GPU", allow_module_level=True)

from kernel_checks import assert_matches_reference, make_inputs

from weakclip.kernels import co_attention, co_attention_triton, function
from weakclip.kernels import triton as tk

if tk.INTERPRET:
    pytest.skip("TRITON_INTERPRET=1 is set: these tests need the compiled kernels", allow_module_level=True)

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16


@pytest.fixture(autouse=True)
def _poisoned_outputs():
    previous = tk.set_poison(True)
    yield
    tk.set_poison(previous)


SHAPES = [(1, 1, 32), (3, 37, 64), (21, 1025, 64), (91, 1025, 128), (21, 4097, 64), (128, 4097, 32),
          (91, 4097, 64), (21, 1025, 128), (64, 300, 128)]


@pytest.mark.parametrize("dtype", [F32, F16, BF16], ids=str)
@pytest.mark.parametrize("K,N,d", SHAPES)
def test_gpu_forward_and_grads_match_float64(K, N, d, dtype):
    if dtype == F32 and tk.block_k(K) * d > tk.MAX_FP32_BLOCK:
        with pytest.raises(ValueError, match="needs more shared memory"):
            co_attention(*make_inputs(1, 1, K, N, d, dtype, "cuda")[0], impl="triton")
        return
    assert_matches_reference(2, 3, K, N, d, dtype, "cuda", seed=K + N + d)


@pytest.mark.parametrize("K,N,d,dtype,splits", [(21, 4097, 64, BF16, 7), (91, 1025, 64, F16, 1),
                                                (21, 1025, 32, F32, 1), (3, 4097, 128, BF16, 33)])
def test_gpu_split_choices_match_float64(K, N, d, dtype, splits):
    assert_matches_reference(2, 2, K, N, d, dtype, "cuda", seed=9, num_splits=splits)


@pytest.mark.parametrize("dtype", [F16, BF16], ids=str)
def test_gpu_voc_shape_with_heuristic_splits(dtype):
    """The benchmark's VOC shape (B=16, H=4, K=21, N=1025, d=64) through the default split heuristic."""
    assert_matches_reference(16, 4, 21, 1025, 64, dtype, "cuda", seed=1)


def test_gpu_strided_inputs():
    assert_matches_reference(2, 4, 21, 1025, 64, BF16, "cuda", seed=4, scale=0.2, transposed=True)


def test_gpu_auto_uses_triton_without_fallback(caplog):
    x = make_inputs(2, 2, 21, 300, 64, BF16, "cuda", seed=2)[0]
    function._logged_fallbacks.clear()
    with caplog.at_level(logging.INFO, logger="weakclip.kernels.function"):
        auto = co_attention(*x, impl="auto")
    direct = co_attention_triton(*x)
    assert not caplog.records
    assert all(torch.equal(a, b) for a, b in zip(auto, direct))


def test_gpu_auto_falls_back_for_unsupported_head_dim(caplog):
    x = make_inputs(1, 2, 5, 40, 48, F16, "cuda", seed=2)[0]
    function._logged_fallbacks.clear()
    with caplog.at_level(logging.INFO, logger="weakclip.kernels.function"):
        co_attention(*x, impl="auto")
    assert any("head dim d = 48" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="head dim d = 48"):
        co_attention(*x, impl="triton")
