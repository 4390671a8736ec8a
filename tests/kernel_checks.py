"""Shared checks for the co-attention kernel tests (CPU interpreter and GPU).

Tolerance (as in flash-attention): for every output and gradient, the kernel's max abs error against a float64
reference must be at most twice PyTorch's own error in the same dtype plus atol, where atol is a per-dtype
fraction of the reference tensor's largest magnitude plus a floor of about one ulp at magnitude 1 times
sqrt(N/256) (for gradients that are exactly zero, e.g. K = 1, where the kernel's flash-style rowsum(dO∘O)
leaves rounding noise that a sum over N visual tokens grows like √N). The float64 reference runs on the inputs already rounded
to the tested dtype, so input rounding is not charged to either side.
"""
from __future__ import annotations

import torch

from weakclip.kernels import co_attention_reference, co_attention_triton

#: atol = ATOL_REL·max|reference| + ATOL_ABS, per dtype.
ATOL_REL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
ATOL_ABS = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
NAMES = ("text_out", "visual_out", "d_qt", "d_kt", "d_vt", "d_qv", "d_kv", "d_vv")


def make_inputs(B, H, K, N, d, dtype, device, seed=0, transposed=False):
    """Six inputs rounded to `dtype` plus two output gradients; transposed=True gives (B, N, H, d).transpose(1, 2)."""
    g = torch.Generator().manual_seed(seed)

    def draw(rows):
        if transposed:
            return torch.randn(B, rows, H, d, generator=g).to(dtype).to(device).transpose(1, 2)
        return torch.randn(B, H, rows, d, generator=g).to(dtype).to(device)

    inputs = [draw(K) for _ in range(3)] + [draw(N) for _ in range(3)]
    grads = [draw(K), draw(N)]
    return inputs, grads


def outputs_and_grads(fn, inputs, grads, dtype):
    leaves = [x.detach().to(dtype).requires_grad_() for x in inputs]
    outs = fn(*leaves)
    torch.autograd.backward(outs, [g.to(dtype) for g in grads])
    return [o.detach() for o in outs] + [x.grad for x in leaves]


def errors_against_reference(inputs, grads, dtype, scale=None, num_splits=None, kernel_scale=None):
    """{name: (kernel_err, torch_err, tol)} over the eight tensors; kernel_scale lets a test plant a bug."""
    floor = ATOL_ABS[dtype] * max(1.0, (inputs[3].shape[2] / 256) ** 0.5)
    ref = outputs_and_grads(lambda *x: co_attention_reference(*x, scale=scale), inputs, grads, torch.float64)
    pt = outputs_and_grads(lambda *x: co_attention_reference(*x, scale=scale), inputs, grads, dtype)
    ks = scale if kernel_scale is None else kernel_scale
    got = outputs_and_grads(lambda *x: co_attention_triton(*x, scale=ks, num_splits=num_splits), inputs, grads,
                            dtype)
    result = {}
    for name, r, p, k in zip(NAMES, ref, pt, got):
        assert k.shape == r.shape and k.dtype == dtype, f"{name}: got {k.shape} {k.dtype}"
        k_err = (k.double() - r).abs().max().item() if torch.isfinite(k).all() else float("inf")
        p_err = (p.double() - r).abs().max().item()
        result[name] = (k_err, p_err, 2 * p_err + ATOL_REL[dtype] * r.abs().max().item() + floor)
    return result


def assert_matches_reference(B, H, K, N, d, dtype, device, seed=0, scale=None, num_splits=None,
                             transposed=False):
    inputs, grads = make_inputs(B, H, K, N, d, dtype, device, seed=seed, transposed=transposed)
    errs = errors_against_reference(inputs, grads, dtype, scale=scale, num_splits=num_splits)
    bad = {n: e for n, e in errs.items() if not e[0] <= e[2]}
    assert not bad, (f"B={B} H={H} K={K} N={N} d={d} {dtype} splits={num_splits}: kernel error above "
                     f"2x PyTorch's + atol for " + ", ".join(f"{n} (kernel {e[0]:.2e}, torch {e[1]:.2e}, "
                                                          f"tol {e[2]:.2e})" for n, e in bad.items()))
    return errs
