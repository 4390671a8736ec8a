"""The stage-3 backbone pre-training (baselines/segnet/pretrain.py) and its stage's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_segnet import tiny_cfg, voc, write_rectangles

from baselines.segnet import build_segnet
from baselines.segnet.pretrain import pretrain_backbone
from bench.stages import pretrain_backbone as stage_module
from bench.stages.common import Stage

FIT = {"backbone": "resnet10t", "output_stride": 32, "num_classes": 4, "epochs": 6, "batch_size": 4,
       "optimizer": "adamw", "lr": 0.002, "resize_long": (56, 72), "crop_size": 64, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def rect_root(tmp_path_factory) -> Path:
    return write_rectangles(tmp_path_factory.mktemp("rects"), n=12)


@pytest.fixture(scope="module")
def pretrained(rect_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("backbone") / "resnet10t.pth"
    metrics = pretrain_backbone(voc(rect_root, "train"), voc(rect_root, "train"), FIT, out, progress=False)
    return out, metrics


def test_writes_backbone_weights_that_stage_3_loads(pretrained):
    out, _ = pretrained
    assert sorted(p.name for p in out.parent.iterdir()) == ["resnet10t.pth"]  # the classifier is not kept
    saved = torch.load(out, weights_only=True)
    assert not any(k.startswith(("fc.", "classifier.", "backbone.")) for k in saved)
    model = build_segnet(tiny_cfg(weights=str(out)))
    key = "layer4.0.conv2.weight"
    assert torch.equal(model.backbone.state_dict()[key], saved[key])
    torch.manual_seed(0)
    assert not torch.equal(build_segnet(tiny_cfg()).backbone.state_dict()[key], saved[key])


def test_classifier_learns_the_image_labels(pretrained):
    """Scored on its own training images (a sanity check of the recipe and of the mAP plumbing): three
    colours of rectangles are easy, so the classifier must rank well above chance."""
    _, metrics = pretrained
    cls = metrics["classification"]
    assert cls["n_images"] == 12
    assert 0.0 <= cls["chance_map"] < cls["map"] <= 1.0
    assert cls["map"] > cls["chance_map"] + 0.2, cls
    train = metrics["train"]
    assert train["steps"] == FIT["epochs"] * (12 // FIT["batch_size"])
    assert train["loss_last"] < train["loss_first"]


def test_empty_pretrain_split_is_an_error(rect_root, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        pretrain_backbone([], voc(rect_root, "train"), FIT, tmp_path / "x.pth", progress=False)


def test_weights_must_be_the_stage_output(tmp_path):
    out_dir = tmp_path / "backbone"
    assert stage_module.weights_target(str(out_dir / "r.pth"), out_dir) == (out_dir / "r.pth").resolve()
    with pytest.raises(ValueError, match="segnet.config.weights must name"):
        stage_module.weights_target(None, out_dir)
    with pytest.raises(ValueError, match="must be a file directly in"):
        stage_module.weights_target(str(tmp_path / "elsewhere" / "r.pth"), out_dir)


def test_real_profile_with_missing_imagenet_file_names_it(tmp_path):
    missing = tmp_path / "resnet101.pth"
    stage = Stage("pretrain_backbone", {"profile": "voc", "segnet": {
        "pretrain": None, "config": {"backbone": "resnet101", "weights": str(missing)}}})
    out_dir = tmp_path / "backbone"
    with pytest.raises(FileNotFoundError, match="Download ImageNet weights for resnet101") as err:
        stage_module.run(stage, out_dir)
    assert str(missing) in str(err.value)
    assert not out_dir.exists()  # nothing published


def test_real_profile_records_the_imagenet_file(tmp_path):
    import timm

    weights = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), weights)
    stage = Stage("pretrain_backbone", {"profile": "voc", "segnet": {
        "pretrain": None, "config": {"backbone": "resnet10t", "weights": str(weights)}}})
    metrics = stage_module.run(stage, tmp_path / "backbone")
    assert metrics["weights"] == str(weights) and len(metrics["sha256"]) == 64
    assert (tmp_path / "backbone" / "backbone.json").is_file()
