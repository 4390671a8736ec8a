"""PAR geometry: `relative` rescales the published dilations to the image; `absolute` (default) keeps them.

Constructed cases only (no dataset, no ground truth): rule values at the published crops and below them,
and PAR's behaviour on synthetic scenes at 64 px and at a published crop size.
"""
import numpy as np
import pytest

from baselines import par

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_CLASS = np.array([1, 0], np.float32)


@pytest.mark.parametrize("preset,crop", [("afa", 512), ("toco", 448)])
def test_relative_dilations_are_the_published_ones_on_the_published_crop(preset, crop):
    assert par.REFERENCE_CROP[preset] == crop
    assert par.working_dilations((crop, crop), preset, "relative") == par.DILATIONS
    # only the short side counts: a wider image of the same height keeps them
    assert par.working_dilations((crop, 2 * crop), preset, "relative") == par.DILATIONS


def test_relative_dilations_shrink_in_proportion_and_stay_at_least_one():
    # 64 px (the synthetic profile): working map 32, s = 32 / 256 -> 0.125, 0.25, 0.5, 1, 1.5, 3 -> 1, 1, 1, 1, 2, 3
    assert par.working_dilations((64, 64), "afa", "relative") == (1, 2, 3)
    # 448 px under AFA's 512 crop: s = 224 / 256 = 0.875
    assert par.working_dilations((448, 448), "afa", "relative") == (1, 2, 4, 7, 11, 21)
    assert par.working_dilations((1, 1), "afa", "relative") == (1,)
    for n in (2, 8, 64, 100, 448, 512, 1024):
        d = par.working_dilations((n, n), "afa", "relative")
        s = (n // 2) / 256
        assert d == tuple(sorted(set(d))) and min(d) >= 1  # ascending, unique, never below 1
        assert max(d) == max(1, par.round_half_up(24 * s))  # the longest hop keeps its share of the map


def test_round_half_up_is_not_bankers_rounding():
    assert [par.round_half_up(x) for x in (0.5, 1.5, 2.5, 0.49)] == [1, 2, 3, 0]


def test_absolute_geometry_is_the_default_and_keeps_the_published_values():
    assert par.working_dilations((64, 64), "afa") == par.DILATIONS
    assert par.working_dilations((64, 64), "toco", "absolute") == par.DILATIONS
    img, cams = two_objects()
    default = par.refine(img, cams, ONE_CLASS, preset="afa")
    explicit = par.refine(img, cams, ONE_CLASS, preset="afa", geometry="absolute", dilations=[1, 2, 4, 8, 12, 24])
    np.testing.assert_array_equal(default[1], explicit[1])
    np.testing.assert_allclose(default[0], explicit[0])
    with pytest.raises(ValueError, match="unknown geometry"):
        par.refine(img, cams, ONE_CLASS, geometry="image")


def two_objects(n=64):
    """Two red squares (16/64 of the side, 10/64 apart) on blue; the CAM covers exactly the left one."""
    k = n // 64
    img = np.zeros((n, n, 3), np.uint8)
    img[:] = (30, 30, 200)
    img[20 * k:36 * k, 8 * k:24 * k] = (200, 30, 30)
    img[20 * k:36 * k, 34 * k:50 * k] = (200, 30, 30)
    cams = np.zeros((2, n, n), np.float32)
    cams[1, 20 * k:36 * k, 8 * k:24 * k] = 0.9
    return img, cams


def test_relative_on_64px_behaves_as_published_on_the_published_crop():
    """The same scene at 64 px (relative) and x8 = 512 px (AFA's crop, where relative == published): the masks
    agree. The published dilations on the 64 px image (hops up to 24 of 32 working pixels) do not: the
    object's own score leaks into the background and most of the object falls into the ignored band."""
    img, cams = two_objects(64)
    big = par.refine(img.repeat(8, 0).repeat(8, 1), cams.repeat(8, 1).repeat(8, 2), ONE_CLASS, preset="afa")[1]
    big = big[4::8, 4::8]  # one pixel near the centre of each 8 x 8 block
    assert (big[21:35, 9:23] == 1).all() and (big[20:36, 34:50] == 0).all()
    relative = par.refine(img, cams, ONE_CLASS, preset="afa", geometry="relative")[1]
    absolute = par.refine(img, cams, ONE_CLASS, preset="afa", geometry="absolute")[1]
    assert (relative == big).mean() > 0.99  # measured 0.999: only the object's 4 corner pixels differ
    assert (absolute == big).mean() < (relative == big).mean() - 0.03  # measured 0.943
    assert (absolute[20:36, 8:24] == 1).mean() < 0.6 < (relative[20:36, 8:24] == 1).mean()


@pytest.mark.parametrize("n", [64, 448])
def test_relative_pulls_a_too_large_blob_back_to_the_colour_edge(n):
    """Left half red (the object), right half blue; the CAM's ramp stays above the high threshold 7% of
    the side past the edge. PAR stops the foreground at the edge (within one working pixel)."""
    img = np.zeros((n, n, 3), np.uint8)
    e = n // 2
    img[:, :e] = (200, 30, 30)
    img[:, e:] = (30, 30, 200)
    x = np.arange(n) / n
    cams = np.zeros((3, n, n), np.float32)
    cams[1] = 0.9 * np.clip((0.7 - x) / 0.2, 0, 1)[None]
    assert (cams[1][:, e + n // 16] > 0.55).all()
    probs, mask = par.refine(img, cams, ONE_CLASS, preset="afa", geometry="relative")
    assert (mask[:, :e] == 1).all()
    assert not (mask[:, e + 2:] == 1).any()  # never foreground past the edge (+ one working pixel)
    assert (mask[:, -n // 4:] == 0).all()  # far right: confident background
    assert probs.shape == (3, n, n) and np.all(probs[2] == 0)


@pytest.mark.parametrize("n", [64, 448])
def test_relative_fills_a_gap_inside_a_uniform_object(n):
    """A red square (half the side) whose CAM has a low hole (an eighth of the side): filled at both sizes."""
    k = n // 64
    img = np.zeros((n, n, 3), np.uint8)
    img[:] = (30, 30, 200)
    img[16 * k:48 * k, 16 * k:48 * k] = (200, 30, 30)
    cams = np.zeros((2, n, n), np.float32)
    cams[1, 16 * k:48 * k, 16 * k:48 * k] = 0.9
    cams[1, 28 * k:36 * k, 28 * k:36 * k] = 0.2  # below the low threshold: background for a plain threshold
    _, mask = par.refine(img, cams, np.array([1], np.float32), preset="afa", geometry="relative")
    assert (mask[28 * k:36 * k, 28 * k:36 * k] == 1).all()
    inner, outer = mask[17 * k:47 * k, 17 * k:47 * k], mask.copy()
    outer[15 * k:49 * k, 15 * k:49 * k] = 0
    assert (inner == 1).all() and (outer == 0).all()
