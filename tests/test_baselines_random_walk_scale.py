"""Random-walk geometry: `relative` rescales IRN's pixel constants to the image; `absolute` (default) keeps them.

Constructed cases only: the rule's values at IRN's 512 px crop and below it, the radius refine() and fit()
actually use, and the walk's output on a synthetic scene at 64 px and 448 px (a colour-coded stand-in for
the affinity network, so that no training is needed).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines import random_walk as rw
from baselines.common import save_cams

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_CLASS = np.array([1], np.float32)


def test_radius_is_published_on_the_reference_map_and_shrinks_below_it():
    assert rw.REFERENCE_SIDE // rw.STRIDE == 128
    assert rw.walk_radius(5, "relative", 128) == 5  # a 512 px image (IRN's crop)
    assert rw.walk_radius(5, "relative", 112) == 4  # 448 px: 4.375
    assert rw.walk_radius(5, "relative", 94) == 4  # a 375 px VOC short side: 3.67
    assert rw.walk_radius(5, "relative", 256) == 10  # 1024 px: twice the reach
    assert rw.walk_radius(5, "relative", 16) == 2  # 64 px: 0.625, raised to the smallest disc with pairs
    assert rw.walk_radius(5, "relative", 1) == 2
    assert rw.half_offsets(1) == [] and len(rw.half_offsets(2)) == 4  # why 2: radius 1 has no pair
    for side in (1, 16, 50, 112, 128, 300):  # never below 2, never above the proportional value + 1/2
        r = rw.walk_radius(5, "relative", side)
        assert r >= 2 and (r == 2 or r <= 5 * side / 128 + 0.5)


def test_absolute_is_the_default_and_keeps_the_published_constants():
    c = rw.RWConfig()
    assert c.geometry == "absolute" and c.radius == 5
    for side in (16, 112, 128):
        assert rw.walk_radius(c.radius, c.geometry, side) == 5
    assert rw.label_crf_params("absolute", 64) == rw.IRN_LABEL_CRF
    with pytest.raises(ValueError, match="unknown geometry"):
        rw.RWConfig(geometry="image")


def test_label_crf_widths_scale_with_the_image_and_stay_at_least_one_pixel():
    assert rw.label_crf_params("relative", 512) == rw.IRN_LABEL_CRF
    small = rw.label_crf_params("relative", 64)
    assert (small.gauss_sxy, small.bilateral_sxy) == (1.0, 6.25)  # 3/8 raised to 1 px; 50/8
    assert (small.bilateral_srgb, small.gauss_compat, small.bilateral_compat, small.iterations) == (5, 3, 10, 10)


class ColourFeatures(nn.Module):
    """Stand-in affinity network: the stride-4 mean colour / 10, so a(i, j) = 1 inside a uniform region and
    ~exp(-11) across a red/blue edge (the same (B, H, W, 3) uint8 -> (B, E, ceil(H/4), ceil(W/4)) contract)."""

    def forward(self, images):
        x = images.permute(0, 3, 1, 2).float() / 10
        x = F.pad(x, (0, -x.shape[-1] % 4, 0, -x.shape[-2] % 4), mode="replicate")
        return F.avg_pool2d(x, 4)


def scene(n):
    """A red square (the middle half) on blue. CAM: 1 on the square but 0 in a central hole (1/8 of the side),
    and 0.6 on a strip 1/16 of the side wide just right of the square (the blob is slightly too large)."""
    q, h, s = n // 4, n // 16, n // 16
    img = np.zeros((n, n, 3), np.uint8)
    img[:] = (30, 30, 200)
    img[q:3 * q, q:3 * q] = (200, 30, 30)
    cams = np.zeros((2, n, n), np.float32)
    cams[1, q:3 * q, q:3 * q + s] = 0.6
    cams[1, q:3 * q, q:3 * q] = 1.0
    cams[1, 2 * q - h:2 * q + h, 2 * q - h:2 * q + h] = 0.0
    return img, cams


@pytest.fixture
def spy_walk(monkeypatch):
    """Inject the colour network as a 'checkpoint' and record the radius of every walk."""
    radii = []
    walk = rw.random_walk

    def spy(cams, feats, beta, exp_times, radius, *args):
        radii.append(radius)
        return walk(cams, feats, beta, exp_times, radius, *args)

    monkeypatch.setattr(rw, "random_walk", spy)
    monkeypatch.setitem(rw._CACHE, "colour", (ColourFeatures().eval(), rw.RWConfig(num_classes=2)))
    return radii


@pytest.mark.parametrize("n,radius", [(64, 2), (448, 4)])
def test_relative_walk_fills_the_hole_and_drops_the_spill_at_both_sizes(spy_walk, n, radius):
    img, cams = scene(n)
    q, h, s = n // 4, n // 16, n // 16
    probs, mask = rw.refine(img, cams, ONE_CLASS, checkpoint="colour", geometry="relative")
    assert spy_walk == [radius]
    assert (cams[1, 2 * q - h:2 * q + h, 2 * q - h:2 * q + h] == 0).all()
    assert (mask[q:3 * q, q:3 * q] == 1).all()  # the hole is filled: the square is one region
    # Outside the square only its 1 px rim may be foreground (IRN's bilinear x4 upsampling of the stride-4
    # walk blends the two cells at the edge); the spill strip, 1/16 of the side wide, is background.
    outside = mask.copy()
    outside[q - 1:3 * q + 1, q - 1:3 * q + 1] = 0
    assert (outside == 0).all() and (mask[q:3 * q, 3 * q + 1:3 * q + s] == 0).all()
    assert probs.shape == (2, n, n)


def test_default_walk_uses_the_published_radius(spy_walk):
    img, cams = scene(64)
    rw.refine(img, cams, ONE_CLASS, checkpoint="colour")
    rw.refine(img, cams, ONE_CLASS, checkpoint="colour", geometry="absolute")
    assert spy_walk == [5, 5]


@pytest.mark.parametrize("geometry,radius,sxy", [("absolute", 5, (3.0, 50.0)), ("relative", 2, (1.0, 6.25))])
def test_fit_trains_on_the_scaled_pairs_and_stores_the_geometry(tmp_path, monkeypatch, geometry, radius, sxy):
    crfs = []
    crf = rw.dense_crf

    def spy_crf(image, probs, params):
        crfs.append((params.gauss_sxy, params.bilateral_sxy))
        return crf(image, probs, params)

    monkeypatch.setattr(rw, "dense_crf", spy_crf)
    data = []
    for i in range(2):
        img, cams = scene(64)
        cams[0] = 1 - cams[1]
        save_cams(tmp_path / "cams" / f"s{i}.npy", cams)
        data.append({"id": f"s{i}", "image": img, "labels": ONE_CLASS})
    cfg = {"num_classes": 2, "crop_size": 64, "epochs": 1, "batch_size": 2, "device": "cpu", "geometry": geometry}
    summary = rw.fit(data, tmp_path / "cams", cfg, tmp_path / "aff.pt", progress=False)
    assert summary["radius"] == radius and set(crfs) == {sxy}
    ckpt = torch.load(tmp_path / "aff.pt", weights_only=True)
    assert ckpt["cfg"]["geometry"] == geometry and ckpt["cfg"]["radius"] == 5  # the published value is kept
