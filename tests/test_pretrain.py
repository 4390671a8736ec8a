"""Tiny-CLIP pre-training: a few steps on random images, checkpoint reload, zero-shot metrics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from weakclip.clip_towers import build_clip
from weakclip.core.io import save_mask
from weakclip.pretrain import (
    PretrainConfig,
    augment_batch,
    average_precision,
    mean_ap,
    normalise,
    pretrain_clip,
)

CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat"]
TINY = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "heads": 2, "embed_dim": 32}


def make_dataset(root, n_pre=40, n_val=12, size=32):
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    captions, meta = {}, {"classes": CLASSES, "images": {}}
    pre_ids = [f"pre_{i}" for i in range(n_pre)]
    val_ids = [f"val_{i}" for i in range(n_val)]
    for image_id in pre_ids + val_ids:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{image_id}.jpg"
        )
    for image_id in pre_ids:
        captions[image_id] = f"a photo of a {CLASSES[rng.integers(1, 5)]} and a {CLASSES[rng.integers(1, 5)]}"
    for i, image_id in enumerate(val_ids):
        labels = sorted({1 + i % 4, 1 + (i * 3) % 4})
        meta["images"][image_id] = {"labels": labels, "split": "val"}
        mask = np.zeros((size, size), np.uint8)
        mask[:20, :] = labels[0]
        mask[20:, :] = labels[-1]
        save_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
    (sets / "pretrain.txt").write_text("\n".join(pre_ids) + "\n")
    (sets / "val.txt").write_text("\n".join(val_ids) + "\n")
    (root / "captions.json").write_text(json.dumps(captions))
    (root / "cls_labels.json").write_text(json.dumps(meta))
    return val_ids


def test_average_precision_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert average_precision(scores, np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(scores, np.array([0, 0, 0, 1])) == pytest.approx(0.25)
    assert average_precision(scores, np.zeros(4)) is None
    m, aps = mean_ap(np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([[1, 0], [0, 0]]))
    assert m == 1.0 and aps == [1.0, None]


def test_augment_identity_and_flip():
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    ident = PretrainConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False)
    out = augment_batch(images, ident, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalise(images), atol=1e-5, rtol=0)
    mild = augment_batch(images, PretrainConfig(), torch.Generator().manual_seed(0))
    assert mild.shape == (3, 3, 16, 16) and not torch.allclose(mild, normalise(images))


def test_pretrain_runs_reloads_and_reports_zero_shot(tmp_path):
    make_dataset(tmp_path / "data")
    cfg = PretrainConfig(
        clip_overrides=TINY, batch_size=16, steps=3, warmup_steps=1, log_every=1, progress=False
    )
    out = tmp_path / "clip.pt"
    metrics = pretrain_clip(tmp_path / "data", out, cfg, log_path=tmp_path / "log.jsonl")
    zs = metrics["zero_shot"]
    for key in (
        "map",
        "chance_map",
        "ap_per_class",
        "top1_any",
        "chance_top1_any",
        "top1_largest",
        "chance_top1_largest",
        "n_images",
        "template",
        "class_names",
    ):
        assert key in zs, key
    assert zs["n_images"] == 12 and zs["class_names"] == CLASSES[1:]
    assert 0 <= zs["map"] <= 1 and 0 < zs["chance_map"] < 1 and zs["top1_largest"] is not None
    assert zs["chance_top1_largest"] == pytest.approx(0.25)
    assert metrics["train"]["steps"] == 3 and metrics["train"]["chance_loss"] == pytest.approx(np.log(16))
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3

    clip = build_clip("tiny", weights=str(out))
    saved = torch.load(out, weights_only=True)
    assert saved["metrics"]["zero_shot"]["map"] == zs["map"]
    for k, v in clip.state_dict().items():
        assert torch.equal(v, saved["state_dict"][k]), k
    fresh = build_clip("tiny", **TINY)
    assert not torch.equal(fresh.visual.conv1.weight, clip.visual.conv1.weight)


def test_pretrain_missing_captions_is_a_clear_error(tmp_path):
    make_dataset(tmp_path / "data")
    (tmp_path / "data" / "captions.json").write_text(json.dumps({}))
    with pytest.raises(KeyError, match="captions.json"):
        pretrain_clip(
            tmp_path / "data",
            tmp_path / "c.pt",
            PretrainConfig(clip_overrides=TINY, steps=1, batch_size=8, progress=False),
        )
