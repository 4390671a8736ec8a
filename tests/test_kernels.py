"""Co-attention kernels against the float64 reference: forward and all six gradients on odd shapes.

Without CUDA these run the Triton kernels under the interpreter (TRITON_INTERPRET=1 is set here before the
kernels are imported); on a CUDA machine without the interpreter they run compiled on the GPU.
Every output and scratch buffer is allocated NaN-poisoned, so an element the kernels never write fails.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
from kernel_checks import assert_matches_reference, errors_against_reference, make_inputs

from weakclip.kernels import co_attention, co_attention_reference, function
from weakclip.kernels import triton as tk

if tk.INTERPRET:
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip("weakclip.kernels.triton was imported before TRITON_INTERPRET=1 was set and there is no CUDA",
                allow_module_level=True)

F32, F16 = torch.float32, torch.float16


@pytest.fixture(autouse=True)
def _poisoned_outputs():
    previous = tk.set_poison(True)
    torch.manual_seed(0)
    yield
    tk.set_poison(previous)


# Each listed K, N, d and dtype appears; the full K×N grid runs at d=32 in fp32 (cheap), the rest samples it.
GRID = [(K, N, 32, F32) for K in (1, 3, 21, 91) for N in (1, 37, 1025)] + [
    (1, 37, 64, F16), (3, 1025, 64, F16), (21, 1, 64, F16), (91, 37, 64, F16),
    (21, 1025, 64, F32), (91, 1025, 32, F16), (3, 37, 32, F16), (1, 1025, 64, F32),
]


@pytest.mark.parametrize("K,N,d,dtype", GRID, ids=lambda v: str(v).replace("torch.", ""))
def test_forward_and_grads_match_float64(K, N, d, dtype):
    assert_matches_reference(2, 1, K, N, d, dtype, DEVICE, seed=K * 7 + N)


@pytest.mark.parametrize("K,N,d,dtype,splits", [(21, 1025, 64, F16, 4), (3, 37, 32, F32, 2),
                                                (91, 130, 32, F32, 3), (1, 1025, 32, F16, 17)])
def test_split_n_matches_float64(K, N, d, dtype, splits):
    """N divided across programs: text partials merged by the combine kernel, gradients by the sum kernel."""
    assert_matches_reference(1, 2, K, N, d, dtype, DEVICE, seed=5, num_splits=splits)


def test_strided_inputs_and_custom_scale():
    """(B, N, H, d).transpose(1, 2) layouts, as a linear projection produces them, and a non-default scale."""
    assert_matches_reference(2, 3, 5, 70, 32, F32, DEVICE, seed=3, scale=0.3, transposed=True)


def test_tolerance_catches_a_planted_error():
    """The check is not vacuous: a 2% error in the scale must fail it."""
    inputs, grads = make_inputs(1, 2, 21, 100, 32, F16, DEVICE, seed=11)
    errs = errors_against_reference(inputs, grads, F16, kernel_scale=32 ** -0.5 * 1.02)
    assert any(k_err > tol for k_err, _, tol in errs.values())


def test_one_output_unused_gives_correct_grads():
    """Backward with only the visual output in the loss (the text output's gradient is zero)."""
    x = [t.requires_grad_() for t in make_inputs(1, 2, 3, 37, 32, F32, DEVICE, seed=2)[0]]
    _, visual = co_attention(*x, impl="triton")
    visual.square().sum().backward()
    y = [t.detach().double().requires_grad_() for t in x]
    co_attention_reference(*y)[1].square().sum().backward()
    for i in (1, 2, 3):  # kt, vt, qv feed the visual output
        torch.testing.assert_close(x[i].grad.double(), y[i].grad, atol=1e-5, rtol=1e-4)
    for i in (0, 4, 5):  # qt, kv, vv only feed the text output: exact zeros, not NaN or garbage
        assert y[i].grad is None and torch.equal(x[i].grad, torch.zeros_like(x[i]))


def test_auto_falls_back_on_cpu_once_in_log(caplog):
    x = make_inputs(1, 1, 3, 9, 32, F32, "cpu", seed=1)[0]
    function._logged_fallbacks.clear()
    with caplog.at_level(logging.INFO, logger="weakclip.kernels.function"):
        out = co_attention(*x, impl="auto")
        co_attention(*x, impl="auto")
    ref = co_attention_reference(*x)
    assert all(torch.equal(a, b) for a, b in zip(out, ref))
    messages = [r.getMessage() for r in caplog.records if "reference" in r.getMessage()]
    assert len(messages) == 1 and "not on a CUDA device" in messages[0]


@pytest.mark.parametrize("change,match", [
    (lambda x: [x[0][..., :1, :].expand(1, 1, 129, 32).contiguous()] * 3 + x[3:], "K .* outside"),
    (lambda x: [t[..., :16] for t in x], "head dim d = 16"),
    (lambda x: x[:5] + [x[5][:, :, :5]], "vv has shape"),
    (lambda x: x[:2] + [x[2].half()] + x[3:], "share one dtype"),
    (lambda x: [t.double() for t in x], "dtype torch.float64 unsupported"),
    (lambda x: x[:3] + [x[3][:, :, :0]] * 3, "N .* outside"),
    (lambda x: [t.repeat(1, 1, 31, 4)[:, :, : (91 if i < 3 else 9)] for i, t in enumerate(x)],
     "float32 with K = 91 .* needs more shared memory"),
])
def test_unsupported_inputs_are_clear_errors(change, match):
    x = make_inputs(1, 1, 3, 9, 32, F32, DEVICE, seed=1)[0]
    with pytest.raises(ValueError, match=match):
        co_attention(*change(x), impl="triton")


def test_reference_path_refuses_mismatched_batches_instead_of_broadcasting():
    """impl='torch' runs matmuls, which would broadcast a text batch of 1 against a visual batch of 2."""
    x = make_inputs(2, 1, 3, 9, 32, F32, "cpu", seed=1)[0]
    one_text_image = [t[:1] for t in x[:3]] + x[3:]
    with pytest.raises(ValueError, match="qv has shape .* matching qt's B, H, d"):
        co_attention_reference(*one_text_image)
    with pytest.raises(ValueError, match="qv has shape"):
        co_attention(*one_text_image, impl="torch")


def test_bad_impl_and_launcher_stride_check():
    x = make_inputs(1, 1, 3, 9, 32, F32, DEVICE, seed=1)[0]
    with pytest.raises(ValueError, match="impl must be one of"):
        co_attention(*x, impl="cuda")
    with pytest.raises(ValueError, match="unit stride"):
        tk.co_attention_fwd(x[0].transpose(2, 3).contiguous().transpose(2, 3), *x[1:])


@pytest.mark.skipif(not tk.INTERPRET, reason="checks the interpreter's bf16 guard")
def test_bf16_refused_under_interpreter():
    x = [t.bfloat16() for t in make_inputs(1, 1, 3, 9, 32, F32, "cpu", seed=1)[0]]
    with pytest.raises(ValueError, match="bfloat16 is wrong under the Triton interpreter"):
        co_attention(*x, impl="triton")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA, no-interpreter error")
def test_triton_on_cpu_without_interpreter_is_a_clear_error():
    code = ("import torch; from weakclip.kernels import co_attention\n"
            "x = [torch.randn(1, 1, 3, 32)] * 3 + [torch.randn(1, 1, 9, 32)] * 3\n"
            "try:\n    co_attention(*x, impl='triton')\nexcept ValueError as e:\n    print('ERR', e)\n")
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert "ERR" in out.stdout and "need CUDA, or TRITON_INTERPRET=1" in out.stdout, out.stdout + out.stderr
