"""CAA has no absolute-pixel setting: its affinity spans all token pairs, the box threshold is a fraction of
the CAM's max, and the components are taken on the token grid. The same scene at two image sizes (the same
token grid) therefore refines to the same mask; nothing in CAA needs rescaling."""
import numpy as np
import pytest
import torch

from baselines import caa

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def block_attention(h, w, split):
    """(1+N, 1+N) attention: patches left of column `split` attend to each other, those right of it likewise."""
    left = np.tile(np.arange(w), h) < split
    full = np.full((h * w + 1, h * w + 1), 1e-3, np.float32)
    full[1:, 1:] += (left[:, None] == left[None, :]).astype(np.float32)
    return torch.from_numpy(full / full.sum(1, keepdims=True))


@pytest.mark.parametrize("k", [2, 8])
def test_same_scene_at_two_sizes_gives_the_same_mask(k):
    """A 4 x 6 token grid over a 32 x 48 image (8 px tokens) and over its x2 / x8 enlargements (16 / 64 px tokens)."""
    trans = caa.attention_affinity([block_attention(4, 6, 3)])
    cams = np.zeros((3, 32, 48), np.float32)
    cams[1, 8:16, 8:16] = 1.0
    labels = np.array([1, 0], np.float32)
    _, small = caa.refine(np.zeros((32, 48, 3), np.uint8), cams, labels, attention=trans)
    big_cams = cams.repeat(k, 1).repeat(k, 2)
    _, big = caa.refine(np.zeros((32 * k, 48 * k, 3), np.uint8), big_cams, labels, attention=trans)
    assert (small[:, :20] == 1).mean() > 0.9 and (small[:, 28:] == 0).all()
    assert caa.CAAConfig().short_side is None  # the one pixel setting (a resize before CLIP) is off by default
    # the same token map, bilinearly upsampled to either size: the centre pixel of each k x k block carries
    # the small image's label (measured: identical on this scene)
    np.testing.assert_array_equal(big[k // 2::k, k // 2::k], small)
