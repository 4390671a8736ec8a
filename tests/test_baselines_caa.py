"""CAA: constructed attention spreads a class within its attention block, not across; CLIP attention shapes."""
import os

import numpy as np
import pytest
import torch

from baselines import caa

os.environ.setdefault("HF_HUB_OFFLINE", "1")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def block_attention(h, w, split):
    """(1+N, 1+N) attention: patches left of column `split` attend uniformly to each other, same on the right."""
    cols = np.tile(np.arange(w), h)
    left = cols < split
    a = (left[:, None] == left[None, :]).astype(np.float32)
    full = np.full((h * w + 1, h * w + 1), 1e-3, np.float32)
    full[1:, 1:] += a
    return torch.from_numpy(full / full.sum(1, keepdims=True))


def test_sinkhorn_symmetric_and_block_structure():
    t = caa.attention_affinity([block_attention(4, 6, 3)] * 2, blocks=8, sinkhorn_iters=3)
    assert t.shape == (24, 24)
    torch.testing.assert_close(t, t.T)
    assert t[0, 1] > 100 * t[0, 5]  # within-block affinity >> across-block


def test_box_mask_one_box_per_region():
    cam = np.zeros((6, 8), np.float32)
    cam[1, 1] = 1.0
    cam[2, 2] = 0.8  # diagonal neighbour: same 8-connected region
    cam[4, 6] = 0.9  # second region
    cam[0, 7] = 0.3  # below 0.4 * max
    m = caa.box_mask(cam, 0.4)
    expect = np.zeros((6, 8), np.float32)
    expect[1:3, 1:3] = 1
    expect[4, 6] = 1
    np.testing.assert_array_equal(m, expect)


def test_caa_spreads_within_attention_block_not_across():
    trans = caa.attention_affinity([block_attention(4, 6, 3)])
    cam = np.zeros((4, 6), np.float32)
    cam[1, 1] = 1.0
    out = caa.apply_caa(cam, trans)
    assert out[:, :3].min() > 0.5 * out.max()  # the whole left block lights up
    assert out[:, 3:].max() < 0.05 * out.max()
    # as a refiner on a 32x48 image with the same attention given directly (grid 4x6, stride 8)
    cams = np.zeros((3, 32, 48), np.float32)
    cams[1, 8:16, 8:16] = 1.0
    probs, mask = caa.refine(np.zeros((32, 48, 3), np.uint8), cams, np.array([1, 0], np.float32),
                             attention=trans)
    assert (mask[:, :20] == 1).mean() > 0.9 and (mask[:, 28:] == 0).all()
    assert np.all(probs[2] == 0)


def test_clip_attentions_tiny_clip():
    torch.manual_seed(0)
    img = np.random.default_rng(0).integers(0, 255, (40, 72, 3), dtype=np.uint8)
    cfg = caa.CAAConfig(device="cpu")
    atts, grid = caa.clip_attentions(img, cfg)
    assert grid == (5, 9) and len(atts) == 4  # tiny: 4 blocks, non-native grid (pos-embed resized)
    assert atts[0].shape == (1, 46, 46)
    torch.testing.assert_close(atts[-1].sum(-1), torch.ones(1, 46))
    cams = np.zeros((3, 40, 72), np.float32)
    cams[2, 10:30, 20:40] = 1.0
    _, mask = caa.refine(img, cams, np.array([0, 1], np.float32), device="cpu")
    assert mask.shape == (40, 72) and set(np.unique(mask)) <= {0, 2}


def test_refiner_min_max_normalises_the_seed_on_the_token_grid_as_clip_es_does():
    """A seed CAM and the same CAM lifted off zero (min 0.5, as large objects give after max-normalising)
    must refine alike: CLIP-ES min-max scales its grid CAM before the box test at 0.4 x max."""
    trans = caa.attention_affinity([block_attention(4, 6, 3)])
    grid_cam = np.zeros((4, 6), np.float32)
    grid_cam[1, 1] = 1.0
    grid_cam[:, 3:] = 0.35  # a wide, weaker region: outside the box at 0.4 x max only after min-max
    image = np.zeros((32, 48, 3), np.uint8)
    labels = np.array([1.0, 0.0])
    cams = np.zeros((3, 32, 48), np.float32)
    cams[1] = np.kron(grid_cam, np.ones((8, 8), np.float32))
    lifted = cams.copy()
    lifted[1] = 0.5 + 0.5 * cams[1]
    probs, mask = caa.refine(image, cams, labels, attention=trans)
    probs_lifted, mask_lifted = caa.refine(image, lifted, labels, attention=trans)
    np.testing.assert_allclose(probs_lifted, probs, atol=1e-5)
    np.testing.assert_array_equal(mask_lifted, mask)
