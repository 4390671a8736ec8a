"""bf16 only where the device computes it natively; everywhere else a bf16 request runs in fp32."""
import pytest
import torch

from weakclip.core import precision


@pytest.mark.parametrize("native,requested,used", [
    (True, "bf16", "bf16"), (False, "bf16", "fp32"), (True, "fp32", "fp32"), (True, "none", "fp32"),
    (True, True, "bf16"), (False, True, "fp32"), (True, False, "fp32"),
])
def test_a_cpu_request_resolves_by_what_the_cpu_has(monkeypatch, native, requested, used):
    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: native)
    assert precision.precision_used(requested, "cpu") == used
    with precision.autocast(requested, "cpu"):
        y = torch.ones(4, 4) @ torch.ones(4, 4)
    assert y.dtype == (torch.bfloat16 if used == "bf16" else torch.float32)


def test_cuda_needs_compute_capability_8(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for capability, used in (((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index, c=capability: c)
        assert precision.precision_used("bf16", "cuda") == used


def test_an_unknown_request_names_the_choices():
    with pytest.raises(ValueError, match="fp32"):
        precision.precision_used("fp16", "cpu")
