"""Synthetic generator: determinism, VOC format, label/mask/caption consistency, colour is not enough."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import VOC_CLASSES, build_dataset, labels_from_mask
from bench.data.synthetic import band_radius, generate, render_image
from bench.data.synthetic_shapes import SIGNATURES

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"train": 8, "val": 5, "pretrain": 10, "dev": 4, "dev_val": 3}


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "data"
    generate(out, **COUNTS, size=64, seed=3, progress=False)
    return out


def test_cli_run_is_byte_identical_to_api_run(tree, tmp_path):
    out = tmp_path / "again"
    cmd = [
        sys.executable,
        "-m",
        "bench.data.synthetic",
        "--out",
        str(out),
        "--train",
        "8",
        "--val",
        "5",
        "--pretrain",
        "10",
        "--dev",
        "4",
        "--dev-val",
        "3",
        "--size",
        "64",
        "--seed",
        "3",
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "synthetic 64px" in proc.stderr  # the progress bar
    assert _tree_hashes(out) == _tree_hashes(tree)
    generate(out, train=8, val=5, pretrain=10, size=64, seed=4, progress=False)
    assert _tree_hashes(out) != _tree_hashes(tree)  # the seed matters


def test_layout_and_lists(tree):
    lists = {s: (tree / "ImageSets/Segmentation" / f"{s}.txt").read_text().split() for s in COUNTS}
    assert {s: len(v) for s, v in lists.items()} == COUNTS
    all_ids = [i for ids in lists.values() for i in ids]
    assert len(set(all_ids)) == len(all_ids)  # pretrain disjoint from train and val
    assert sorted(p.stem for p in (tree / "JPEGImages").glob("*.jpg")) == sorted(all_ids)
    assert sorted(p.stem for p in (tree / "SegmentationClass").glob("*.png")) == sorted(all_ids)
    meta = json.loads((tree / "meta.json").read_text())
    assert meta["params"] == {**COUNTS, "size": 64, "seed": 3} and meta["version"] >= 1
    assert meta["band_radius"] == band_radius(64) == 1


def test_masks_are_voc_palette_pngs_with_labels_matching(tree):
    cls = json.loads((tree / "cls_labels.json").read_text())
    assert cls["classes"] == VOC_CLASSES
    for image_id, entry in cls["images"].items():
        with Image.open(tree / "SegmentationClass" / f"{image_id}.png") as png:
            assert png.mode == "P" and png.size == (64, 64)
            assert png.getpalette()[3:6] == [128, 0, 0]  # VOC colour of class 1
            mask = np.array(png)
        with Image.open(tree / "JPEGImages" / f"{image_id}.jpg") as jpg:
            assert jpg.mode == "RGB" and jpg.size == (64, 64)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(21)) | {255} and 255 in values and 0 in values
        assert 1 <= len(entry["labels"]) <= 4
        assert entry["labels"] == sorted(v for v in values if 0 < v < 255)
        # like VOC: two different classes (incl. background) never touch without a 255 band between them
        for a, b in ((mask[:, :-1], mask[:, 1:]), (mask[:-1], mask[1:])):
            assert not ((a != b) & (a != 255) & (b != 255)).any(), image_id


def test_captions_name_exactly_the_labelled_classes(tree):
    captions = json.loads((tree / "captions.json").read_text())
    cls = json.loads((tree / "cls_labels.json").read_text())["images"]
    pretrain = (tree / "ImageSets/Segmentation/pretrain.txt").read_text().split()
    assert sorted(captions) == sorted(pretrain)
    for image_id, text in captions.items():
        named = {k for k, name in enumerate(VOC_CLASSES) if k and re.search(rf"\b{name}\b", text)}
        assert named == set(cls[image_id]["labels"]), (image_id, text)
        assert text.endswith(".") and text.startswith(("a photo of", "a picture of", "an image with"))


def test_reader_on_the_generated_tree(tree):
    ds = build_dataset({"kind": "synthetic", "root": str(tree)}, "val")
    assert ds.name == "synthetic" and len(ds) == 5 and ds.num_classes == 21
    item = ds[2]
    np.testing.assert_array_equal(item["labels"], labels_from_mask(item["mask"], 21))
    assert item["image"].shape == (64, 64, 3)


def test_size_parameter_and_band_scaling():
    image, mask, labels = render_image(np.random.default_rng(0), 96)
    assert image.shape == (96, 96, 3) and mask.shape == (96, 96) and labels
    assert band_radius(96) == 1 and band_radius(256) == 2 and band_radius(512) == 4


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        generate(tmp_path, train=1, val=1, pretrain=0, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_regenerating_leaves_no_stale_files(tmp_path):
    generate(tmp_path / "d", train=4, val=2, pretrain=0, progress=False)
    generate(tmp_path / "d", train=2, val=1, pretrain=0, progress=False)
    assert len(list((tmp_path / "d" / "JPEGImages").iterdir())) == 3


def test_signatures_are_unique_and_colour_alone_is_weak():
    assert len(SIGNATURES) == 20 and list(SIGNATURES) == VOC_CLASSES[1:]
    feats, classes = [], []
    for i in range(240):
        image, mask, labels = render_image(np.random.default_rng([99, i]), 64)
        for c in labels:
            feats.append(image[mask == c].mean(0))
            classes.append(c)
    x, y = np.array(feats), np.array(classes)
    n = len(y) * 2 // 3
    present = [c for c in range(1, 21) if (y[:n] == c).any()]
    centroids = np.stack([x[:n][y[:n] == c].mean(0) for c in present])
    pred = np.array(present)[np.argmin(((x[n:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    accuracy = (pred == y[n:]).mean()
    # chance is 0.05; measured 0.34 here (generator v2; 0.2 with v1): colour is evidence, not an answer
    assert accuracy < 0.4, accuracy
    for channel in range(3):  # one colour channel alone is close to chance (measured 0.07-0.16)
        means = np.array([x[:n][y[:n] == c, channel].mean() for c in present])
        pred = np.array(present)[np.argmin(np.abs(x[n:, channel, None] - means[None]), axis=1)]
        assert (pred == y[n:]).mean() < 0.25, channel
        lo = np.array([np.percentile(x[y == c, channel], 10) for c in present])
        hi = np.array([np.percentile(x[y == c, channel], 90) for c in present])
        overlapping = ((lo[:, None] < hi[None]) & (lo[None] < hi[:, None])).sum(axis=1) - 1
        assert overlapping.min() >= 5  # every class's 10-90% range overlaps at least 5 other classes'


def test_the_tuning_splits_are_their_own_draws_and_leave_the_others_unchanged(tree, tmp_path):
    """dev/dev_val come from their own streams: generating them changes no train/val/pretrain byte, and no
    dev image repeats a train image."""
    without = tmp_path / "without_dev"
    generate(without, train=8, val=5, pretrain=10, size=64, seed=3, progress=False)
    with_dev, plain = _tree_hashes(tree), _tree_hashes(without)
    shared = {k: v for k, v in with_dev.items() if not Path(k).name.startswith("dev")
              and k not in ("meta.json", "cls_labels.json")}
    assert shared == {k: v for k, v in plain.items() if k in shared}
    assert not (without / "ImageSets" / "Segmentation" / "dev.txt").exists()
    dev_ids = (tree / "ImageSets" / "Segmentation" / "dev.txt").read_text().split()
    assert dev_ids == [f"dev_{i:06d}" for i in range(4)]
    train_pixels = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tree / "JPEGImages").glob("train_*.jpg")}
    assert not train_pixels & {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tree / "JPEGImages").glob("dev*.jpg")}
