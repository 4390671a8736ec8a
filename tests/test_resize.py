"""weakclip.core.resize: the matrix form of bilinear resizing is F.interpolate's, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from weakclip.core.resize import Upsample2x, bilinear_matrix, resize_bilinear, resize_bilinear_mm

SIZES = [((4, 5), (16, 20)), ((32, 32), (512, 512)), ((8, 7), (5, 9)), ((3, 3), (3, 3)), ((1, 6), (4, 1))]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("src,dst", SIZES)
def test_matrices_reproduce_interpolate_and_its_gradient(src, dst, align_corners):
    x = torch.randn(2, 3, *src, dtype=torch.float64, requires_grad=True)
    want = F.interpolate(x, size=dst, mode="bilinear", align_corners=align_corners)
    rows = bilinear_matrix(src[0], dst[0], align_corners=align_corners).double()
    cols = bilinear_matrix(src[1], dst[1], align_corners=align_corners).double()
    got = rows @ x @ cols.T
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)  # float32 weights, exact positions
    g = torch.randn_like(want)
    (grad_want,) = torch.autograd.grad(want, x, g)
    (grad_got,) = torch.autograd.grad(got, x, g)
    torch.testing.assert_close(grad_got, grad_want, atol=1e-5, rtol=1e-5)


def test_every_matrix_row_sums_to_one():
    for src, dst, ac in [(7, 64, False), (64, 7, False), (5, 9, True), (9, 1, True)]:
        torch.testing.assert_close(bilinear_matrix(src, dst, align_corners=ac).sum(1), torch.ones(dst))


def test_resize_takes_the_matrix_form_only_for_a_gradient():
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        plain = resize_bilinear(x.requires_grad_(), (64, 64))
    assert plain.grad_fn is None
    trained = resize_bilinear(x, (64, 64))
    assert "Upsample" not in type(trained.grad_fn).__name__  # two matrix products, not interpolate's node
    torch.testing.assert_close(trained, plain, atol=1e-6, rtol=1e-6)


def test_channels_last_input_keeps_its_memory_format():
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = resize_bilinear(x, (16, 16))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, resize_bilinear_mm(x, (16, 16)), atol=1e-6, rtol=1e-6)


def test_same_size_is_the_input():
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    assert resize_bilinear(x, (5, 5)) is x


def test_upsample2x_matches_nn_upsample():
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    want = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)(x)
    torch.testing.assert_close(Upsample2x()(x), want, atol=1e-6, rtol=1e-6)


def test_a_matrix_first_made_under_inference_mode_still_trains():
    with torch.inference_mode():
        resize_bilinear_mm(torch.randn(1, 1, 11, 13), (23, 29))  # fills the cache
    x = torch.randn(1, 1, 11, 13, requires_grad=True)
    resize_bilinear(x, (23, 29)).sum().backward()  # would raise if the cached matrix were an inference tensor
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.gpu
def test_matrix_form_on_cuda_matches_interpolate():
    x = torch.randn(4, 21, 32, 32, device="cuda", requires_grad=True)
    torch.testing.assert_close(resize_bilinear(x, (512, 512)),
                               F.interpolate(x, size=(512, 512), mode="bilinear", align_corners=False),
                               atol=1e-5, rtol=1e-5)
