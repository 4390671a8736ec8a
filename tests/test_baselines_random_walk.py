"""Random walk (AffinityNet/IRN): pair labels, dense == sparse walk, spreading within a region, fit + refine."""
import numpy as np
import pytest
import torch

from baselines import random_walk as rw
from baselines import threshold
from baselines.affinity_net import pair_affinity
from baselines.common import save_cams

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_offsets_and_pair_labels():
    offs = rw.half_offsets(5)
    assert len(offs) == 34 and (0, 1) in offs and (4, 2) in offs and (4, 3) not in offs
    label = np.array([[0, 0, 1], [255, 1, 1]], np.uint8)
    bgp, fgp, neg = rw.pair_labels(label, [(0, 1), (1, 0)])
    np.testing.assert_array_equal(bgp[0], [[1, 0, 0], [0, 0, 0]])  # (0,0)-(0,1): both background
    np.testing.assert_array_equal(neg[0], [[0, 1, 0], [0, 0, 0]])  # (0,1)-(0,2): 0 vs 1
    np.testing.assert_array_equal(fgp[0], [[0, 0, 0], [0, 1, 0]])  # (1,1)-(1,2): 1 vs 1; 255 ignored
    np.testing.assert_array_equal(fgp[1], [[0, 0, 1], [0, 0, 0]])  # (0,2)-(1,2) vertically
    assert not bgp[1].any() and neg[1].sum() == 1  # (0,1)-(1,1): 0 vs 1; (0,0)-(1,0) has 255


def test_affinity_loss_prefers_correct_affinities():
    m = torch.tensor([[[[True]]]])
    none = torch.zeros_like(m)
    good = rw.affinity_loss(torch.tensor([[[[0.99]]]]), m, none, none)
    bad = rw.affinity_loss(torch.tensor([[[[0.01]]]]), m, none, none)
    assert good < bad


def two_region_features(h=8, w=12, split=6):
    f = torch.zeros(4, h, w)
    f[:, :, split:] = 5.0  # affinity across the edge exp(-5), ^beta=10 -> ~e^-50
    return f


def test_walk_spreads_within_region_not_across_edge_dense_equals_sparse():
    feats = two_region_features()
    cams = torch.zeros(1, 8, 12)
    cams[0, 3, 1] = 1.0  # one confident seed pixel on the left
    dense = rw.random_walk(cams, feats, beta=10, exp_times=6, radius=5, force="dense")
    sparse = rw.random_walk(cams, feats, beta=10, exp_times=6, radius=5, force="sparse")
    torch.testing.assert_close(dense, sparse, rtol=1e-4, atol=1e-7)
    left, right = dense[0, :, :6], dense[0, :, 6:]
    assert left.min() > 0.5 * left.max()  # spread over the whole connected left region
    assert right.max() < 1e-6 * left.max()  # nothing across the strong edge
    feats_rand = torch.randn(4, 7, 9)  # agreement on a generic affinity too
    c = torch.rand(2, 7, 9)
    torch.testing.assert_close(rw.random_walk(c, feats_rand, exp_times=4, force="dense"),
                               rw.random_walk(c, feats_rand, exp_times=4, force="sparse"), rtol=1e-4, atol=1e-6)


def test_pair_affinity_is_exp_l1():
    f = torch.tensor([[[[0.0, 1.0]]], [[[0.0, 3.0]]]]).permute(1, 0, 2, 3)  # (1, 2, 1, 2)
    a = pair_affinity(f, [(0, 1)])
    assert a.shape == (1, 1, 1, 2)
    assert torch.isclose(a[0, 0, 0, 0], torch.exp(torch.tensor(-2.0)))  # mean(|0-1|, |0-3|) = 2


def scene(i, size=32):
    """Red square object on a blue-grey background; object position varies."""
    rng = np.random.default_rng(i)
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (40, 60, 160)
    y, x = rng.integers(2, 12, 2)
    img[y:y + 16, x:x + 16] = (220, 40, 40)
    gt = np.zeros((size, size), np.uint8)
    gt[y:y + 16, x:x + 16] = 1
    img = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    cams = np.zeros((2, size, size), np.float32)
    cams[1, y + 2:y + 14, x + 2:x + 14] = 1.0  # confident core only
    cams[1, y:y + 16, x:x + 16] = np.maximum(cams[1, y:y + 16, x:x + 16], 0.15)  # weak object rim (unsure)
    cams[0] = 1 - cams[1]
    return {"id": f"s{i}", "image": img, "labels": np.array([1], np.float32), "gt": gt}, cams


def test_fit_and_refine(tmp_path):
    data = []
    for i in range(8):
        s, cams = scene(i)
        save_cams(tmp_path / "cams" / f"{s['id']}.npy", cams)
        data.append(s)
    cfg = {"num_classes": 2, "crop_size": 32, "epochs": 20, "batch_size": 4, "lr": 3e-3, "device": "cpu"}
    summary = rw.fit(data, tmp_path / "cams", cfg, tmp_path / "aff.pt", progress=False)
    assert (tmp_path / "aff.pt").is_file() and summary["loss_last"] < summary["loss_first"]
    assert 0 < summary["confident_share"] <= 1
    s, cams = scene(0)
    probs, mask = rw.refine(s["image"], cams, s["labels"], checkpoint=str(tmp_path / "aff.pt"))
    assert probs.shape == (2, 32, 32) and mask.shape == (32, 32) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    _, seed_mask = threshold.refine(s["image"], cams, s["labels"], bg_threshold=0.25)

    def iou(m):
        return ((m == 1) & (s["gt"] == 1)).sum() / ((m == 1) | (s["gt"] == 1)).sum()

    assert iou(mask) > iou(seed_mask) + 0.1  # the walk grows the confident core into the object
    _, unsure = rw.refine(s["image"], cams, s["labels"], checkpoint=str(tmp_path / "aff.pt"), confidence=0.99)
    assert (unsure == 255).any()
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        rw.refine(s["image"], cams, s["labels"], checkpoint=str(tmp_path / "missing.pt"))
    # An image without foreground labels (COCO has some) is all background, not a crash in the walk.
    probs, mask = rw.refine(s["image"], cams, np.zeros_like(s["labels"]), checkpoint=str(tmp_path / "aff.pt"))
    assert (mask == 0).all() and (probs[0] == 1).all() and (probs[1:] == 0).all()
