"""Sliding-window, multi-scale, flip inference and pseudo-mask writing on stand-in models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from weakclip.infer import (
    InferConfig,
    predict_probs,
    pseudo_masks,
    restrict_probs,
    scaled_size,
    window_starts,
)

K = 4


class PointwiseLinear(nn.Module):
    """logits = W·pixel + b at full resolution: sliding windows must reproduce it exactly."""

    def __init__(self, stride: int = 1):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, K, 1)
        with torch.no_grad():
            self.conv.weight.mul_(4.0)
        self.stride = stride

    def forward(self, x):
        out = self.conv(x)
        if self.stride > 1:
            out = F.avg_pool2d(out, self.stride)  # (B, K, H/s, W/s), like WeakCLIP's stride-4 logits
        return {"logits": out}


class WindowPosition(nn.Module):
    """Logits that depend on the position inside the window only (class 1 on the window's left half)."""

    def forward(self, x):
        b, _, h, w = x.shape
        left = (torch.arange(w) < w // 2).float().expand(b, 1, h, w)
        return {"logits": torch.cat([1 - left, left], 1) * 5}


def direct_probs(model, image, cfg):
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    x = (x - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x)["logits"][0].softmax(0).numpy()


def rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_window_starts_cover_the_axis():
    assert window_starts(64, 64, 43) == [0]
    assert window_starts(100, 64, 43) == [0, 36]
    starts = window_starts(500, 128, 85)
    assert starts[0] == 0 and starts[-1] == 500 - 128
    assert all(b - a <= 85 for a, b in itertools.pairwise(starts))
    assert scaled_size(300, 500, InferConfig(short_side=64, window=64, stride=43), 1.0) == (64, 107)
    assert scaled_size(300, 500, InferConfig(short_side=64, window=64, stride=43), 0.5) == (32, 53)
    assert scaled_size(10, 4000, InferConfig(short_side=512, max_long_side=2048), 1.0) == (5, 2048)


@pytest.mark.parametrize("shape", [(50, 71), (23, 30), (64, 20)])
def test_sliding_window_reproduces_a_pointwise_model(shape):
    """Non-square, smaller than the window (padded) and thinner than it in one axis."""
    model = PointwiseLinear().eval()
    # fp32: the comparison is exact up to summation order, which bf16 autocast (the default on a CPU with
    # native bf16) would not be
    cfg = InferConfig(
        short_side=None, scales=(1.0,), flip=True, window=32, stride=21, window_batch=3, device="cpu", amp="none"
    )
    image = rand_image(*shape)
    probs = predict_probs(model, image, cfg)
    assert probs.shape == (K, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, direct_probs(model, image, cfg), atol=1e-5)


class InputShapes(nn.Module):
    """Records each batch's spatial shape; logits = the crop's mean colour, so padding would show in them."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[2:]))
        mean = x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return {"logits": torch.cat([mean, -mean], 1)}


def test_a_view_smaller_than_the_window_is_decoded_at_its_own_size():
    # mmseg's slide inference decodes a crop smaller than the window without padding it up to the window;
    # only the remainder up to a multiple of size_divisor (here 30 -> 32) is padded.
    cfg = InferConfig(short_side=None, scales=(1.0,), flip=False, window=64, stride=43, size_divisor=16,
                      device="cpu")
    model = InputShapes()
    predict_probs(model, np.full((32, 100, 3), 200, np.uint8), cfg)
    assert set(model.shapes) == {(32, 64)}  # windows 64 wide along the width, the full height 32
    model.shapes.clear()
    predict_probs(model, np.full((30, 30, 3), 200, np.uint8), cfg)
    assert model.shapes == [(32, 32)]
    # A 32 x 32 view needs no padding at all, so the model sees the image's own mean colour (padded to
    # the 64 x 64 window, the mean would shrink to a quarter).
    probs = predict_probs(model, np.full((32, 32, 3), 200, np.uint8), cfg)
    mean = ((200 / 255 - np.array(cfg.mean)) / np.array(cfg.std)).mean()
    np.testing.assert_allclose(probs[0], 1 / (1 + np.exp(-2 * mean)), rtol=1e-5)


def test_size_divisor_must_be_positive():
    with pytest.raises(ValueError, match="size_divisor"):
        InferConfig(window=64, stride=43, size_divisor=0)


def test_window_logits_are_averaged_where_windows_overlap():
    # width 48, window 32, stride 16: windows at x=0 and x=16. Class 1 wins on each window's left half:
    # x<16 -> only window 0 (left): class 1; 16<=x<32 -> window 0 right (class 0) + window 1 left
    # (class 1): tie; x>=32 -> window 1 right: class 0.
    cfg = InferConfig(short_side=None, scales=(1.0,), flip=False, window=32, stride=16, device="cpu")
    probs = predict_probs(WindowPosition(), rand_image(32, 48), cfg)
    win = 1 / (1 + np.exp(-5.0))  # softmax of logits (5, 0)
    np.testing.assert_allclose(probs[1, :, :16], win, atol=1e-6)
    np.testing.assert_allclose(probs[1, :, 16:32], 0.5, atol=1e-6)
    np.testing.assert_allclose(probs[0, :, 32:], win, atol=1e-6)


def test_flip_averaging_undoes_the_flip():
    # one whole window: unflipped says class 1 on the left half, the flipped pass (flipped back) says
    # class 1 on the right half, so every pixel averages to 0.5.
    cfg = InferConfig(short_side=None, scales=(1.0,), flip=True, window=32, stride=21, device="cpu")
    probs = predict_probs(WindowPosition(), rand_image(32, 32), cfg)
    np.testing.assert_allclose(probs, 0.5, atol=1e-6)


def test_multiscale_on_blocks_gives_the_right_argmax_at_original_size():
    # left half red, right half blue; a stride-4 model that maps red -> class 1, blue -> class 2.
    h, w = 45, 70
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :35, 0] = 255
    image[:, 35:, 2] = 255
    model = PointwiseLinear(stride=4)
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.bias.zero_()
        model.conv.weight[1, 0], model.conv.weight[2, 2] = 3.0, 3.0
    cfg = InferConfig(short_side=32, scales=(0.5, 1.0, 1.5), flip=True, window=32, stride=21, device="cpu")
    probs = predict_probs(model, image, cfg)
    assert probs.shape == (K, h, w)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    pred = probs.argmax(0)
    assert (pred[:, :28] == 1).all() and (pred[:, 42:] == 2).all()


def test_restrict_probs_zeroes_absent_classes_and_keeps_background():
    probs = np.full((K, 2, 2), 0.25, np.float32)
    out = restrict_probs(probs, np.array([0, 1, 0], np.float32))
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 0, 0.5, 0])
    with pytest.raises(ValueError, match="image-level labels"):
        restrict_probs(probs, np.zeros(5))


class ListDataset:
    def __init__(self, images, labels):
        self.ids = [f"img_{i}" for i in range(len(images))]
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"id": self.ids[i], "image": self.images[i], "labels": self.labels[i], "mask": None}


@pytest.mark.parametrize("workers", [0, 2])
def test_pseudo_masks_writes_palette_pngs(tmp_path, workers):
    images = [rand_image(30, 41, 1), rand_image(24, 24, 2), rand_image(50, 33, 3)]
    labels = [np.array([1, 0, 0], np.float32)] * 3
    ds = ListDataset(images, labels)
    cfg = InferConfig(
        short_side=None,
        scales=(1.0,),
        flip=False,
        window=32,
        stride=21,
        device="cpu",
        restrict_to_labels=True,
    )
    summary = pseudo_masks(
        PointwiseLinear(),
        ds,
        tmp_path,
        cfg,
        crf="weakclip_voc",
        save_probs=True,
        workers=workers,
        progress=False,
    )
    assert summary["n_images"] == 3 and summary["crf"]["bilateral_sxy"] == 83
    for image_id, image in zip(ds.ids, images):
        with Image.open(tmp_path / f"{image_id}.png") as png:
            assert png.mode == "P"
            mask = np.array(png)
        assert mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 1}, "restricted to background + the labelled class"
        probs = np.load(tmp_path / f"{image_id}.npy")
        assert probs.dtype == np.float16 and probs.shape == (K, *image.shape[:2])
        assert np.abs(probs[2:]).max() == 0
    again = pseudo_masks(
        PointwiseLinear(),
        ds,
        tmp_path,
        cfg,
        crf=None,
        save_probs=True,
        skip_existing=True,
        workers=workers,
        progress=False,
    )
    assert again["n_skipped"] == 3 and again["n_images"] == 0


def test_pseudo_masks_without_crf_is_the_argmax(tmp_path):
    image = rand_image(20, 37, 5)
    cfg = InferConfig(short_side=None, scales=(1.0,), flip=False, window=16, stride=11, device="cpu")
    pseudo_masks(PointwiseLinear(), ListDataset([image], [None]), tmp_path, cfg, crf=None, progress=False)
    with Image.open(tmp_path / "img_0.png") as png:
        mask = np.array(png)
    np.testing.assert_array_equal(mask, direct_probs(PointwiseLinear(), image, cfg).argmax(0))
    with pytest.raises(ValueError, match="labels"):
        pseudo_masks(
            PointwiseLinear(),
            ListDataset([image], [None]),
            tmp_path / "r",
            InferConfig(short_side=None, scales=(1.0,), window=16, stride=11, restrict_to_labels=True),
            crf=None,
            progress=False,
        )
