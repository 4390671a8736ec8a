"""Training loop: schedule, logs, checkpoints, exact resume, non-finite loss, atomic saves.

Stand-ins: a tiny conv net returning {"logits"} at 1/4 resolution with a frozen stem group
(lr 0, like the CLIP towers), a dataset with seeded random augmentation, and a two-term loss.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from weakclip.core.distributed import InfiniteSampler
from weakclip.core.schedule import lr_at
from weakclip.train import TrainConfig, load_model_weights, train

K = 3


class NoGroups(nn.Module):
    """A model without param_groups: every parameter trains."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, K, 1))

    def forward(self, x):
        feats = F.avg_pool2d(torch.relu(self.stem(x)), 4)  # (B, 8, H/4, W/4)
        return {"logits": self.head(feats)}


class StandInSeg(NoGroups):
    """Frozen stem (lr 0, like the CLIP towers) and a trained head."""

    def param_groups(self, lr, weight_decay):
        return [
            {"params": list(self.stem.parameters()), "lr": 0.0},
            {"params": list(self.head.parameters()), "lr": lr, "weight_decay": weight_decay},
        ]

    def head_state_dict(self):  # the stem plays the reloadable CLIP towers: left out of checkpoints
        return {k: v for k, v in self.state_dict().items() if not k.startswith("stem.")}


class StandInData(torch.utils.data.Dataset):
    """Colour blobs with a random flip drawn from numpy's global RNG (seeded by the loop)."""

    def __init__(self, n=10, size=16):
        g = np.random.default_rng(0)
        self.images = g.random((n, 3, size, size)).astype(np.float32)
        self.masks = g.integers(0, K, (n, size, size))
        self.masks[:, :2] = 255

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img, mask = self.images[i], self.masks[i]
        if np.random.rand() < 0.5:
            img, mask = img[:, :, ::-1], mask[:, ::-1]
        img = img + np.float32(np.random.randn() * 0.05)
        return {
            "image": torch.from_numpy(img.copy()),
            "mask": torch.from_numpy(mask.copy()).long(),
            "id": f"im{i}",
            "image_uint8": torch.from_numpy((img.transpose(1, 2, 0) * 255).clip(0, 255).astype(np.uint8)),
        }


def seg_loss(outputs, batch):
    logits = F.interpolate(
        outputs["logits"], size=batch["mask"].shape[-2:], mode="bilinear", align_corners=False
    )
    ce = F.cross_entropy(logits, batch["mask"], ignore_index=255)
    aux = outputs["logits"].pow(2).mean() * 0.01
    return {"total": ce + aux, "ce": ce, "aux": aux}


def cfg(**kw):
    base = {
        "iterations": 8,
        "batch_size": 4,
        "lr": 5e-3,
        "min_lr": 1e-5,
        "warmup_iters": 3,
        "checkpoint_every": 2,
        "log_every": 1,
        "device": "cpu",
        "progress": False,
        "amp": "none",  # fp32 on every host: the comparisons below are to the last bits
    }
    base.update(kw)
    return TrainConfig(**base)


def fresh_model(cls=StandInSeg):
    torch.manual_seed(0)
    return cls()


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_lr_schedule_values():
    base, lo, total, warm = 1e-4, 1e-6, 20_000, 1500
    assert lr_at(0, base, total, lo, warm) == pytest.approx(base * 1e-6, rel=1e-3)  # starts at ratio·lr
    # halfway through warm-up: about half of the cosine value there
    cos750 = lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * 750 / total))
    assert lr_at(750, base, total, lo, warm) == pytest.approx(cos750 * (1 - 0.5 * (1 - 1e-6)))
    assert lr_at(1500, base, total, lo, warm) == pytest.approx(
        lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * 0.075))
    )
    assert lr_at(10_000, base, total, lo, warm) == pytest.approx((base + lo) / 2)
    assert lr_at(total, base, total, lo, warm) == pytest.approx(lo)
    warm_curve = [lr_at(i, base, total, lo, warm) for i in range(0, 1501, 100)]
    assert all(a < b for a, b in itertools.pairwise(warm_curve))
    decay = [lr_at(i, base, total, lo, warm) for i in range(1500, total, 500)]
    assert all(a > b for a, b in itertools.pairwise(decay))
    assert lr_at(5, 1.0, 10, 0.0, 0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="total_iters"):
        lr_at(0, base, 0)


def test_sampler_stream_is_independent_of_world_size_and_start():
    one = InfiniteSampler(7, 4, seed=3)
    stream = [next(it) for it in [iter(one)] for _ in range(40)]
    two = [InfiniteSampler(7, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    iters = [iter(s) for s in two]
    merged = []
    for _ in range(10):  # per iteration: rank 0's 2 samples, then rank 1's
        for itr in iters:
            merged += [next(itr), next(itr)]
    assert merged == stream
    resumed = iter(InfiniteSampler(7, 4, seed=3, start_iter=5))
    assert [next(resumed) for _ in range(20)] == stream[20:]
    epoch0 = sorted(i for i, _ in stream[:7])
    assert epoch0 == list(range(7))  # each epoch is a permutation


def test_train_writes_log_checkpoints_and_model(tmp_path):
    model = fresh_model()
    stem_before = model.stem.weight.detach().clone()
    head_before = model.head[0].weight.detach().clone()
    summary = train(model, seg_loss, StandInData(), cfg(log_every=2), tmp_path)
    assert summary["iterations"] == 8 and not summary["stopped_early"] and not summary["resumed"]
    assert summary["trainable_params"] < summary["total_params"]
    assert torch.equal(model.stem.weight, stem_before), "lr-0 group must stay frozen"
    assert not torch.equal(model.head[0].weight, head_before)
    lines = [json.loads(ln) for ln in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["it"] for r in lines] == [2, 4, 6, 8]
    for r in lines:
        assert {"lr", "loss_total", "loss_ce", "loss_aux", "images_per_s", "elapsed_s"} <= set(r)
        assert r["loss_total"] == pytest.approx(r["loss_ce"] + r["loss_aux"], rel=1e-5)
    assert lines[0]["lr"] < lines[1]["lr"]  # warm-up
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["ckpt_2.pt", "ckpt_4.pt", "ckpt_6.pt", "ckpt_8.pt", "last.pt"]
    final = torch.load(tmp_path / "model.pt", weights_only=False)
    assert final["iteration"] == 8 and "stem.weight" in final["frozen_keys"]
    assert "stem.weight" not in final["model"]  # frozen towers are not stored by default
    other = fresh_model()
    load_model_weights(other, tmp_path / "model.pt")
    assert torch.equal(other.head[2].weight, model.head[2].weight)
    with pytest.raises(KeyError, match="missing"):
        load_model_weights(other, {"model": {}, "frozen_keys": []})


def test_model_without_param_groups_trains_everything(tmp_path):
    model = fresh_model(NoGroups)
    before = model.stem.weight.detach().clone()
    summary = train(model, seg_loss, StandInData(), cfg(iterations=2, keep_checkpoints=1), tmp_path)
    assert summary["trainable_params"] == summary["total_params"]
    assert "stem.weight" in torch.load(tmp_path / "model.pt", weights_only=False)["model"]
    assert not torch.equal(model.stem.weight, before)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_2.pt", "last.pt"]


def test_resume_after_crash_and_after_stop_is_exact(tmp_path):
    data = StandInData()
    train(fresh_model(), seg_loss, data, cfg(), tmp_path / "ref")
    ref = weights(tmp_path / "ref" / "model.pt")

    def crash(it, terms):
        if it == 5:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        train(fresh_model(), seg_loss, data, cfg(), tmp_path / "crash", callback=crash)
    assert torch.load(tmp_path / "crash/checkpoints/last.pt", weights_only=False)["iteration"] == 4
    summary = train(fresh_model(), seg_loss, data, cfg(), tmp_path / "crash")
    assert summary["resumed"] and summary["start_iteration"] == 4
    got = weights(tmp_path / "crash" / "model.pt")
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    log = [json.loads(ln)["it"] for ln in (tmp_path / "crash/train_log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 9)), "lines after the checkpoint must be dropped on resume"

    first = train(fresh_model(), seg_loss, data, cfg(), tmp_path / "stop", stop_after=3)
    assert first["stopped_early"] and not (tmp_path / "stop/model.pt").exists()
    train(fresh_model(), seg_loss, data, cfg(), tmp_path / "stop")
    got = weights(tmp_path / "stop" / "model.pt")
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_resume_with_other_batch_size_is_an_error(tmp_path):
    train(fresh_model(), seg_loss, StandInData(), cfg(), tmp_path, stop_after=2)
    with pytest.raises(ValueError, match="batch_size"):
        train(fresh_model(), seg_loss, StandInData(), cfg(batch_size=2), tmp_path)


def test_non_finite_loss_names_the_iteration(tmp_path):
    calls = {"n": 0}

    def bad_loss(outputs, batch):
        calls["n"] += 1
        out = seg_loss(outputs, batch)
        if calls["n"] == 3:
            out["ce"] = out["ce"] * float("nan")
            out["total"] = out["ce"] + out["aux"]
        return out

    with pytest.raises(FloatingPointError, match=r"iteration 3\b.*ce=nan"):
        train(fresh_model(), bad_loss, StandInData(), cfg(), tmp_path)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    train(fresh_model(), seg_loss, StandInData(), cfg(), tmp_path, stop_after=2)
    real_save = torch.save

    def failing_save(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)  # write a complete temp file, then fail as a full disk would
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train(fresh_model(), seg_loss, StandInData(), cfg(), tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_2.pt", "last.pt"]
    assert torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)["iteration"] == 2


class SeedData(torch.utils.data.Dataset):
    """32x32 images with seed masks (255 = no cue), shaped like bench.data.TorchSegDataset items."""

    def __init__(self, n=4, size=32):
        g = np.random.default_rng(3)
        self.u8 = g.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        self.masks = np.full((n, size, size), 255, np.int64)
        self.masks[:, :8] = 0
        for i in range(n):
            self.masks[i, 16:, 8:24] = 1 + i % 2

    def __len__(self):
        return len(self.u8)

    def __getitem__(self, i):
        u8 = self.u8[i]
        img = (torch.from_numpy(u8).permute(2, 0, 1).float() / 255 - 0.45) / 0.25
        return {
            "image": img,
            "mask": torch.from_numpy(self.masks[i]),
            "image_uint8": torch.from_numpy(u8),
            "id": f"s{i}",
            "labels": np.array([1.0, 1.0], np.float32),
        }


def test_tiny_weakclip_trains_resumes_and_infers(tmp_path):
    import copy

    from weakclip.clip_towers import build_clip
    from weakclip.infer import InferConfig, predict_probs, pseudo_masks
    from weakclip.losses import WeakCLIPLoss
    from weakclip.model import WeakCLIP, tiny_config

    names = ["background", "cat", "dog"]
    clip = build_clip("tiny", image_size=32, patch_size=8, width=32, layers=4, heads=2, embed_dim=32)
    mcfg = tiny_config(decoder_width=32, decoder_heads=2, fpn_channels=16, fidelity="paper")

    def make():
        torch.manual_seed(0)
        return WeakCLIP(mcfg, names, clip=copy.deepcopy(clip))

    loss = WeakCLIPLoss(crf_workers=1, loss_size=16)
    tc = cfg(iterations=4, batch_size=2, lr=1e-3, warmup_iters=1, checkpoint_every=2)
    data = SeedData()
    ref_model = make()
    summary = train(ref_model, loss, data, tc, tmp_path / "ref")
    assert 0 < summary["trainable_params"] < summary["total_params"]
    log = [json.loads(x) for x in (tmp_path / "ref/train_log.jsonl").read_text().splitlines()]
    assert {"loss_total", "loss_seeding", "loss_boundary", "loss_aux"} <= set(log[0])
    saved = torch.load(tmp_path / "ref/model.pt", weights_only=False)
    assert not any(k.startswith("clip.") for k in saved["model"]) and saved["frozen_keys"]

    train(make(), loss, data, tc, tmp_path / "split", stop_after=2)
    train(make(), loss, data, tc, tmp_path / "split")
    split = torch.load(tmp_path / "split/model.pt", weights_only=False)["model"]
    for k, v in saved["model"].items():  # dropout included: every RNG is a function of the iteration
        torch.testing.assert_close(split[k], v, rtol=0, atol=1e-6, msg=k)

    reloaded = make()
    load_model_weights(reloaded, tmp_path / "ref/model.pt")
    icfg = InferConfig(short_side=32, scales=(0.75, 1.0), window=32, stride=21, device="cpu",
                       amp="none")  # fp32: compared to the last bits below
    image = data.u8[0][:, :28]  # non-square
    probs = predict_probs(reloaded, image, icfg)
    assert probs.shape == (3, 32, 28)
    np.testing.assert_allclose(probs, predict_probs(ref_model, image, icfg), atol=1e-5)
    out = pseudo_masks(reloaded, data, tmp_path / "masks", icfg, workers=0, progress=False)
    assert out["n_images"] == 4
    from weakclip.core.io import load_mask

    assert load_mask(tmp_path / "masks/s0.png").max() < 3
    loss.close()


def test_loader_workers_do_not_change_the_trajectory(tmp_path):
    """Augmentation is seeded per sample position, so worker processes give the same batches."""
    train(fresh_model(), seg_loss, StandInData(), cfg(iterations=3), tmp_path / "w0")
    train(fresh_model(), seg_loss, StandInData(), cfg(iterations=3, num_workers=2), tmp_path / "w2")
    a, b = weights(tmp_path / "w0/model.pt"), weights(tmp_path / "w2/model.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
