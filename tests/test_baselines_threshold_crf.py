"""threshold and crf refiners on constructed cases with known answers; refine_folder pool == in-process."""
import numpy as np
import pytest

from baselines import REFINERS, crf, refine_folder, threshold
from baselines.common import save_cams
from weakclip.core.io import load_mask


def two_colour_image(h=32, w=48, edge=24, seed=0):
    """Red left of `edge`, blue right of it, light noise."""
    img = np.zeros((h, w, 3), np.int64)
    img[:, :edge] = (200, 30, 30)
    img[:, edge:] = (30, 30, 200)
    noise = np.random.default_rng(seed).integers(-10, 11, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_threshold_exact_mask():
    cams = np.zeros((4, 2, 3), np.float32)
    cams[1] = [[0.9, 0.2, 0.0], [0.5, 0.1, 0.0]]
    cams[2] = [[0.1, 0.6, 0.0], [0.6, 0.0, 0.0]]
    cams[3] = 0.99  # absent class: must never win even though it violates nothing in this raw array
    labels = np.array([1, 1, 0], np.float32)
    _, mask = threshold.refine(None, cams, labels, bg_threshold=0.3)
    np.testing.assert_array_equal(mask, [[1, 2, 0], [2, 0, 0]])
    np.testing.assert_array_equal(threshold.threshold_mask(cams, 0.3, labels), mask)
    # power rule: bg = (1 - max)^1 -> pixel (0,1): bg 0.4 < 0.6 -> class 2; pixel (1,0): bg 0.4 < 0.6 -> 2
    _, mask_p = threshold.refine(None, cams, labels, bg_power=1)
    np.testing.assert_array_equal(mask_p, [[1, 2, 0], [2, 0, 0]])
    _, mask_t2 = threshold.refine(None, cams, labels, bg_power=2)  # (1-0.6)^2 = 0.16 -> still class 2
    assert mask_t2[0, 1] == 2 and mask_t2[1, 1] == 0
    with pytest.raises(ValueError, match="not both"):
        threshold.refine(None, cams, labels, bg_threshold=0.3, bg_power=1)


def test_threshold_sweep_and_confidence():
    cams = np.zeros((2, 1, 5), np.float32)
    cams[1] = [0.1, 0.3, 0.5, 0.7, 0.9]
    labels = np.array([1], np.float32)
    fg_counts = [int((m == 1).sum()) for _, m in threshold.threshold_sweep(cams, [0.0, 0.4, 0.8, 1.0], labels)]
    assert fg_counts == [5, 3, 1, 0]
    probs, mask = threshold.refine(None, cams, labels, bg_threshold=0.5, confidence=0.6)
    np.testing.assert_allclose(probs.sum(0), 1, rtol=1e-5)
    assert mask[0, 2] == 255 and mask[0, 4] == 1 and mask[0, 0] == 0


def test_crf_snaps_blurred_mask_to_colour_edge():
    img = two_colour_image()
    x = np.arange(48)
    cams = np.zeros((3, 32, 48), np.float32)
    cams[1] = np.clip((40 - x) / 20, 0, 1)[None]  # blurred: 0.5 at x=30; the colour edge is at x=24
    labels = np.array([1, 0], np.float32)
    _, before = threshold.refine(img, cams, labels, bg_power=1)
    probs, mask = crf.refine(img, cams, labels, preset="psa", bg_power=1)
    truth = np.zeros((32, 48), np.uint8)
    truth[:, :24] = 1
    assert (before == truth).mean() < 0.9  # the seed crosses the edge
    assert (mask == truth).mean() > 0.98  # the CRF puts the boundary on the colour edge
    assert probs.shape == (3, 32, 48) and probs.dtype == np.float32
    assert np.all(probs[2] == 0)  # absent class
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
    _, unsure = crf.refine(img, cams, labels, preset="psa", bg_power=1, confidence=0.999999)
    assert (unsure == 255).any() and set(np.unique(unsure)) <= {0, 1, 255}


@pytest.mark.parametrize("preset", ["psa", "deeplab", "weakclip_voc"])
def test_crf_presets_run(preset):
    img = two_colour_image()
    cams = np.zeros((3, 32, 48), np.float32)
    cams[1, :, :20] = 1
    _, mask = crf.refine(img, cams, np.array([1, 0], np.float32), preset=preset, bg_threshold=0.5)
    assert mask.shape == (32, 48) and mask[:, :10].mean() == 1


def test_refine_folder_pool_matches_single_process(tmp_path):
    samples = []
    for i in range(4):
        img = two_colour_image(seed=i)
        cams = np.zeros((3, 32, 48), np.float32)
        cams[1, :, : 18 + 3 * i] = 0.9
        cams[0] = 1 - cams[1]
        save_cams(tmp_path / "cams" / f"im{i}.npy", cams)
        samples.append({"id": f"im{i}", "image": img, "labels": np.array([1, 0], np.float32)})
    s1 = refine_folder(samples, tmp_path / "cams", tmp_path / "one", "crf", {"preset": "psa"}, workers=1,
                       progress=False)
    s2 = refine_folder(samples, tmp_path / "cams", tmp_path / "pool", "crf", {"preset": "psa"}, workers=2,
                       probs_dir=tmp_path / "probs", progress=False)
    assert s1["n_images"] == s2["n_images"] == 4 and s2["coverage"] == 1.0
    for i in range(4):
        np.testing.assert_array_equal(load_mask(tmp_path / "one" / f"im{i}.png"),
                                      load_mask(tmp_path / "pool" / f"im{i}.png"))
        assert np.load(tmp_path / "probs" / f"im{i}.npy").shape == (3, 32, 48)
    assert set(REFINERS) == {"threshold", "crf", "caa", "par", "random_walk"}
    with pytest.raises(ValueError, match="unknown refiner"):
        refine_folder(samples, tmp_path / "cams", tmp_path / "x", "nope", workers=1)


def test_crf_params_name_a_bad_preset_or_field():
    from weakclip.core.crf import CRFParams, crf_params

    assert crf_params({"gauss_sxy": 3, "bilateral_sxy": 80, "bilateral_srgb": 13}) == \
        CRFParams(3, 3, 80, 13, 10)  # unnamed fields keep their defaults
    with pytest.raises(ValueError, match="unknown CRF preset 'nope'"):
        crf_params("nope")
    with pytest.raises(ValueError, match=r"unknown keys \['bi_rgb'\]"):
        crf_params({"gauss_sxy": 3, "bi_rgb": 13})
