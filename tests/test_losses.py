"""WeakCLIP losses on constructed cases where the right answer is known."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from weakclip.core.crf import dense_crf
from weakclip.losses import (
    CRFPool,
    WeakCLIPLoss,
    aux_ce_loss,
    boundary_loss,
    resize_images_uint8,
    seeding_loss,
    seeds_to_cues,
)

K = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _seeds(b=2, size=64):
    s = torch.zeros(b, size, size, dtype=torch.long)
    s[:, 8:30, 8:30] = 1
    s[1, 40:60, 40:60] = 3
    s[:, 30:34] = 255
    return s


def _log_probs_from(labels, confident=20.0):
    """Log-probabilities that put (almost) all mass on `labels` (B, h, w)."""
    logits = F.one_hot(labels.clamp(0, K - 1), K).permute(0, 3, 1, 2).float() * confident
    return F.log_softmax(logits, dim=1)


def test_seeding_loss_small_when_matching_large_when_opposite():
    seeds = _seeds()
    cues = seeds_to_cues(seeds, K, 64)
    good = seeding_loss(_log_probs_from(seeds.where(seeds != 255, torch.zeros_like(seeds))), cues)
    assert 0 <= good.item() < 1e-6
    wrong = (seeds + 1) % K  # every cue pixel predicted as another class
    bad = seeding_loss(_log_probs_from(wrong), cues)
    assert bad.item() > 30  # ~ 2 x 20 nats


def test_seeding_loss_is_class_balanced_and_guards_empty_cues():
    seeds = torch.zeros(2, 64, 64, dtype=torch.long)
    seeds[0, :2, :2] = 2  # image 0: 4 fg cues, 4092 bg cues
    # image 1: background cues only -> contributes 0 to the fg mean (count guarded)
    uniform = torch.full((2, K, 64, 64), -math.log(K))
    loss = seeding_loss(uniform, seeds_to_cues(seeds, K, 64))
    torch.testing.assert_close(loss, torch.tensor(math.log(K) + math.log(K) / 2))
    all_ignored = torch.full((1, 64, 64), 255, dtype=torch.long)
    assert seeding_loss(uniform[:1], seeds_to_cues(all_ignored, K, 64)).item() == 0.0


def test_ignored_seeds_contribute_nothing():
    seeds = _seeds()
    cues = seeds_to_cues(seeds, K, 64)
    lp = F.log_softmax(torch.randn(2, K, 64, 64), dim=1)
    lp2 = lp.clone()
    lp2[:, :, 30:34] = F.log_softmax(torch.randn(2, K, 4, 64) * 10, dim=1)  # change only ignored rows
    torch.testing.assert_close(seeding_loss(lp, cues), seeding_loss(lp2, cues))
    assert cues[:, :, 30:34].sum() == 0


def test_seeds_to_cues_nearest_resize_and_bad_labels():
    seeds = torch.full((1, 128, 128), 255, dtype=torch.long)
    seeds[0, :64, :64] = 2
    cues = seeds_to_cues(seeds, K, 64)
    assert cues.shape == (1, K, 64, 64) and cues[0, 2, :32, :32].all() and cues.sum() == 32 * 32
    with pytest.raises(ValueError, match="outside"):
        seeds_to_cues(torch.full((1, 8, 8), 7), K, 64)


def test_boundary_loss_zero_when_q_equals_p_and_known_values():
    lp = F.log_softmax(torch.randn(2, K, 8, 8), dim=1)
    assert abs(boundary_loss(lp, lp.exp()).item()) < 1e-6
    p = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    q = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1)
    want = 0.9 * math.log(1.8) + 0.1 * math.log(0.2)
    torch.testing.assert_close(boundary_loss(p.log(), q), torch.tensor(want))
    # clipping: Q/P = 99 -> 20 and 0.0101 -> 0.05
    p = torch.tensor([0.01, 0.99]).view(1, 2, 1, 1)
    q = torch.tensor([0.99, 0.01]).view(1, 2, 1, 1)
    want = 0.99 * math.log(20) + 0.01 * math.log(0.05)
    torch.testing.assert_close(boundary_loss(p.log(), q), torch.tensor(want))


def test_boundary_loss_uses_the_crf_of_the_detached_probs():
    torch.manual_seed(0)
    img = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    img[:, :, 32:] = 255  # a sharp vertical edge the CRF snaps to
    logits = torch.randn(1, 2, 16, 16, requires_grad=True)
    out = {"logits": logits, "aux_logits": torch.zeros(1, 2, 4, 4)}
    batch = {"mask": torch.full((1, 64, 64), 255, dtype=torch.long), "image_uint8": img}
    losses = WeakCLIPLoss(crf_workers=1)(out, batch)
    lp = F.log_softmax(F.interpolate(logits.detach(), size=(64, 64), mode="bilinear", align_corners=False), 1)
    q = torch.from_numpy(dense_crf(img[0].numpy(), lp[0].exp().numpy(), "weakclip_loss"))[None]
    torch.testing.assert_close(losses["boundary"], boundary_loss(lp, q))
    assert losses["boundary"].item() > 1e-3  # random P is far from its CRF
    losses["total"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_aux_ce_ignores_255():
    aux = torch.randn(1, K, 4, 4)
    seeds = torch.randint(0, K, (1, 16, 16))
    seeds[0, :8] = 255
    up = F.interpolate(aux, size=(16, 16), mode="bilinear", align_corners=False)
    logp = F.log_softmax(up, 1)[0]  # (K, 16, 16)
    valid = seeds[0] != 255
    want = -logp.gather(0, seeds[0].clamp(max=K - 1)[None])[0][valid].mean()
    torch.testing.assert_close(aux_ce_loss(aux, seeds), want)
    assert aux_ce_loss(aux, torch.full((1, 16, 16), 255)).item() == 0.0


def test_total_is_weighted_sum():
    out = {"logits": torch.randn(2, K, 16, 16), "aux_logits": torch.randn(2, K, 8, 8)}
    batch = {"mask": _seeds(), "image_uint8": torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)}
    loss = WeakCLIPLoss(aux_weight=0.4, crf_workers=1)(out, batch)
    assert set(loss) == {"total", "seeding", "boundary", "aux"}
    torch.testing.assert_close(loss["total"], loss["seeding"] + loss["boundary"] + 0.4 * loss["aux"])
    assert all(torch.isfinite(v) for v in loss.values())
    with pytest.raises(ValueError, match="same size"):
        WeakCLIPLoss(crf_workers=1)(out, {"mask": _seeds()[:, :32], "image_uint8": batch["image_uint8"]})


def test_crf_pool_matches_in_process():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    probs = [np.asarray(torch.softmax(torch.randn(K, 16, 16), 0)) for _ in range(3)]
    serial = CRFPool(1)(images, probs)
    with CRFPool(2) as pool:
        first = pool(images, probs)
        again = pool(images, probs)  # the pool is reused
    for a, b, c in zip(serial, first, again, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(a, c, atol=1e-6)


def test_resize_images_uint8():
    img = torch.full((2, 128, 96, 3), 200, dtype=torch.uint8)
    out = resize_images_uint8(img, 64)
    assert (
        len(out) == 2 and out[0].shape == (64, 64, 3) and out[0].dtype == np.uint8 and (out[0] == 200).all()
    )
