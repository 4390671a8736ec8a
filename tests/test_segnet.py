"""Stage 3 (baselines/segnet): DeepLab-LargeFOV shapes, optimiser rules, overfitting, resume, prediction."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image

from baselines.segnet import (
    SegNetConfig,
    build_segnet,
    load_segnet,
    predict_folder,
    predict_segnet,
    train_segnet,
)
from baselines.segnet.train import make_optimizer
from bench.data.transforms import TorchSegDataset, TrainTransform
from bench.data.voc import VOCDataset
from bench.metrics import ConfusionMatrix, evaluate_masks
from weakclip.core.io import save_mask
from weakclip.core.schedule import poly_factor

K = 4
CLASSES = ["background", "red", "green", "blue"]
COLOURS = np.array([[20, 20, 20], [230, 40, 40], [40, 220, 60], [50, 60, 240]], dtype=np.uint8)


def tiny_cfg(**kw) -> SegNetConfig:
    base = {
        "backbone": "resnet10t",
        "num_classes": K,
        "iterations": 80,
        "batch_size": 4,
        "lr": 0.01,
        "seed": 0,
        "device": "cpu",
        "num_workers": 0,
        "test_scales": (1.0,),
        "test_flip": False,
        "crf": None,
        "log_every": 10,
        "checkpoint_every": 1000,
    }
    return SegNetConfig(**{**base, **kw})


def write_rectangles(root: Path, n: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A VOC tree of coloured rectangles (class c drawn in COLOURS[c]) on a dark background. train: n
    64x64 images whose exact masks are also written to root/pseudo (the stage-3 training labels); val:
    45x57 crops of them (odd sizes for prediction)."""
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "SegmentationClass", "pseudo", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        for c in rng.permutation(np.arange(1, K))[:2]:
            y0, x0 = rng.integers(0, size // 2, 2)
            h, w = rng.integers(size // 4, size // 2, 2)
            mask[y0 : y0 + h, x0 : x0 + w] = c
        image = COLOURS[mask] + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
        for image_id, sl in ((f"t{i}", np.s_[:, :]), (f"v{i}", np.s_[:45, :57])):
            Image.fromarray(image[sl]).save(root / "JPEGImages" / f"{image_id}.png")
            save_mask(root / "SegmentationClass" / f"{image_id}.png", mask[sl])
        save_mask(root / "pseudo" / f"t{i}.png", mask)
    for split, prefix in (("train", "t"), ("val", "v")):
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text(
            "".join(f"{prefix}{i}\n" for i in range(n))
        )
    return root


def voc(root: Path, split: str, **kw) -> VOCDataset:
    return VOCDataset(root, split, class_names=CLASSES, image_ext=".png", **kw)


def train_set(root: Path, cfg: SegNetConfig) -> TorchSegDataset:
    """What the harness builds: pseudo masks as labels, behind TrainTransform (here: flip only)."""
    transform = TrainTransform(
        crop_size=64,
        scale_range=(1.0, 1.0),
        base_size=(64, 64),
        cat_max_ratio=1.0,
        photometric=False,
        mean=cfg.mean,
        std=cfg.std,
    )
    return TorchSegDataset(voc(root, "train", mask_dir=root / "pseudo"), transform)


class Crashing(torch.utils.data.Dataset):
    """Raises after `crash_after` items: a run killed mid-training."""

    def __init__(self, dataset, crash_after: int):
        self.dataset, self.calls, self.crash_after = dataset, 0, crash_after

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.calls += 1
        if self.calls > self.crash_after:
            raise RuntimeError("simulated crash")
        return self.dataset[i]


@pytest.fixture
def rect_root(tmp_path) -> Path:
    return write_rectangles(tmp_path / "voc")


@pytest.mark.parametrize("backbone", ["resnet10t", "resnet18"])
def test_output_stride_8_and_logits_at_input_size(backbone):
    model = build_segnet(tiny_cfg(backbone=backbone)).eval()
    x = torch.randn(2, 3, 64, 88)
    with torch.no_grad():
        assert model.features(x).shape == (2, 512, 8, 11)  # H/8, W/8
        assert model(x).shape == (2, K, 64, 88)


def test_poly_lr_values():
    assert 0.01 * poly_factor(0, 100, 0.9) == pytest.approx(0.01)
    assert 0.01 * poly_factor(50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert 0.01 * poly_factor(99, 100, 0.9) == pytest.approx(0.01 * 0.01**0.9)
    lrs = [poly_factor(i, 10, 0.9) for i in range(10)]
    assert all(a > b for a, b in itertools.pairwise(lrs))


def test_head_gets_ten_times_the_lr():
    cfg = tiny_cfg(lr=0.003)
    model = build_segnet(cfg)
    opt = make_optimizer(model, cfg)
    head_ids = {id(p) for p in model.head.parameters()}
    grouped = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    for g in opt.param_groups:
        is_head = {id(p) in head_ids for p in g["params"]}
        assert len(is_head) == 1
        assert g["lr"] == pytest.approx(0.03 if is_head.pop() else 0.003)
        assert g["momentum"] == 0.9 and g["weight_decay"] == 5e-4


def test_overfits_tiny_dataset_and_predicts_folder(rect_root, tmp_path):
    cfg = tiny_cfg()
    summary = train_segnet(cfg, train_set(rect_root, cfg), tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["it"] for r in log] == [9, 19, 29, 39, 49, 59, 69, 79]
    assert log[-1]["loss"] < log[0]["loss"] and summary["resumed_from"] == 0
    assert not (tmp_path / "run" / "last.pt").exists()

    model, loaded_cfg = load_segnet(tmp_path / "run" / "model.pt")
    assert loaded_cfg == cfg
    cm = ConfusionMatrix(K)
    for item in voc(rect_root, "train"):
        cm.update(predict_segnet(model, item["image"], cfg).argmax(0), item["mask"])
    assert cm.compute()["miou"] > 0.8  # train mIoU on the images it was fit to

    # multi-scale + flip probabilities on the odd-sized val images, then CRF'd palette PNGs at their size
    ms_cfg = tiny_cfg(test_scales=(0.5, 1.0, 1.5), test_flip=True, crf="deeplab_voc_test", crf_workers=1)
    val = voc(rect_root, "val")
    probs = predict_segnet(model, val[0]["image"], ms_cfg)
    assert probs.shape == (K, 45, 57) and np.allclose(probs.sum(0), 1.0, atol=1e-5)
    info = predict_folder(model, val, tmp_path / "pred", ms_cfg, chunk=3)
    assert info["n_images"] == 4 and info["crf"]["bilateral_sxy"] == 112
    for image_id in val.ids:
        with Image.open(tmp_path / "pred" / f"{image_id}.png") as png:
            assert png.mode == "P" and png.size == (57, 45)
    scores = evaluate_masks(tmp_path / "pred", rect_root / "SegmentationClass", val.ids, K)
    assert scores["miou"] > 0.6  # crops the network never saw whole, through scales, flip and CRF


def test_resumed_run_ends_with_same_weights(rect_root, tmp_path):
    cfg = tiny_cfg(iterations=6, batch_size=2, checkpoint_every=3, log_every=1)
    train_segnet(cfg, train_set(rect_root, cfg), tmp_path / "straight")
    with pytest.raises(
        RuntimeError, match="simulated crash"
    ):  # dies in iteration 4, after the checkpoint at 3
        train_segnet(cfg, Crashing(train_set(rect_root, cfg), crash_after=9), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "last.pt").exists()
    summary = train_segnet(cfg, train_set(rect_root, cfg), tmp_path / "resumed")
    assert summary["resumed_from"] == 3
    log = [
        json.loads(line)["it"] for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()
    ]
    assert log == list(range(6))
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["model"]
    torch.manual_seed(cfg.seed)
    init = build_segnet(cfg).state_dict()
    key = "head.classifier.weight"
    assert not torch.allclose(straight[key], init[key])  # training moved the weights
    for k in straight:
        assert torch.allclose(straight[k].float(), resumed[k].float(), atol=1e-6), k

    # a checkpoint from other settings is refused, naming the setting
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_segnet(
            tiny_cfg(iterations=6, batch_size=2, checkpoint_every=3, lr=0.02),
            Crashing(train_set(rect_root, cfg), crash_after=9),
            tmp_path / "again",
        )
    with pytest.raises(ValueError, match="lr"):
        train_segnet(cfg, train_set(rect_root, cfg), tmp_path / "again")


def test_missing_weights_names_path_and_download(tmp_path):
    missing = tmp_path / "weights" / "resnet101.safetensors"
    with pytest.raises(FileNotFoundError) as err:
        build_segnet(tiny_cfg(backbone="resnet101", weights=str(missing)))
    assert str(missing) in str(err.value) and "Download ImageNet weights for resnet101" in str(err.value)


def test_local_weights_file_is_loaded(tmp_path):
    full = timm.create_model("resnet10t", pretrained=False, num_classes=1000)  # with its fc, as on disk
    torch.save(full.state_dict(), tmp_path / "resnet10t.pth")
    model = build_segnet(tiny_cfg(weights=str(tmp_path / "resnet10t.pth")))
    assert torch.equal(
        model.backbone.state_dict()["layer4.0.conv2.weight"], full.state_dict()["layer4.0.conv2.weight"]
    )
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="missing keys"):
        build_segnet(tiny_cfg(weights=str(tmp_path / "wrong.pth")))


@pytest.mark.parametrize("size", [8, 12, 13, 20])
def test_dilated_conv_shortcut_matches_the_full_conv(size):
    """Maps no larger than the dilation skip the off-centre taps; output and weight gradient must not change."""
    from baselines.segnet.model import DilatedConv3x3

    torch.manual_seed(0)
    conv = DilatedConv3x3(6, 5, dilation=12, bias=True)
    x = torch.randn(2, 6, size, size)
    out = conv(x)
    out.square().sum().backward()
    shortcut_grad = conv.weight.grad.clone()
    conv.weight.grad = None
    reference = F.conv2d(x, conv.weight, conv.bias, padding=12, dilation=12)
    reference.square().sum().backward()
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shortcut_grad, conv.weight.grad, rtol=1e-5, atol=1e-5)
    if size <= 12:
        assert shortcut_grad[:, :, 0].abs().sum() == 0  # the off-centre weights get no gradient on small maps
