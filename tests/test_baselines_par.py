"""PAR (AFA/ToCo): uniform regions stay uniform, propagation stops at strong edges, dual thresholds."""
import numpy as np
import pytest
import torch

from baselines import par

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_colour_image(h=32, w=48, edge=24):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :edge] = (200, 30, 30)
    img[:, edge:] = (30, 30, 200)
    return img


def test_neighbours_are_48_replicate_shifts():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    nb = par.neighbours(x)
    assert nb.shape == (1, 1, 48, 4, 5)
    # direction (0, 1) at dilation 1 is index 4: the right neighbour, replicated at the border
    np.testing.assert_array_equal(nb[0, 0, 4, 0].numpy(), [1, 2, 3, 4, 4])
    # dilation 24 on a 4x5 grid clamps to the border everywhere
    assert torch.all(nb[0, 0, 40 + 7] == x[0, 0, -1, -1])


def test_affinity_sums_and_uniform_region_stays_uniform():
    img = torch.full((1, 3, 16, 16), 128.0)
    aff = par.par_affinity(img)
    torch.testing.assert_close(aff.sum(2), torch.full((1, 1, 16, 16), 1.01))
    masks = torch.rand(1, 1, 1, 1).expand(1, 1, 16, 16).clone()
    out = par.par(img, masks)
    assert torch.allclose(out, out[0, 0, 0, 0].expand_as(out))  # a constant map on a uniform image stays constant


def test_par_does_not_cross_a_strong_edge():
    img = two_colour_image()
    x = np.arange(48)
    cams = np.zeros((3, 32, 48), np.float32)
    cams[1] = 0.9 * np.clip((40 - x) / 10, 0, 1)[None]  # above 0.55 up to x = 33: crosses the edge at 24
    labels = np.array([1, 0], np.float32)
    probs, mask = par.refine(img, cams, labels, preset="afa")
    assert (cams[1][:, 24:] > 0.55).any()
    assert (mask[:, 26:] == 0).all()  # right of the edge: confident background
    assert (mask[:, :22] == 1).all()  # left: the object, uniformly
    assert probs.shape == (3, 32, 48) and np.all(probs[2] == 0)


@pytest.mark.parametrize("preset,value,expect", [("afa", 0.45, 255), ("afa", 0.6, 1), ("afa", 0.3, 0),
                                                 ("toco", 0.5, 255), ("toco", 0.75, 1), ("toco", 0.2, 0)])
def test_dual_thresholds(preset, value, expect):
    img = np.full((16, 16, 3), 100, np.uint8)
    cams = np.zeros((2, 16, 16), np.float32)
    cams[1] = value
    _, mask = par.refine(img, cams, np.array([1], np.float32), preset=preset)
    assert (mask == expect).all()


def test_bad_thresholds():
    with pytest.raises(ValueError, match="low threshold"):
        par.refine(np.zeros((8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.float32), np.ones(1), high=0.2, low=0.5)
