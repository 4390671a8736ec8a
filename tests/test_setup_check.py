"""bench.setup_check and `python -m bench.profiles use|check`: every bad input is caught before a stage runs,
named by its file, and a failing `use` writes no params.yaml."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench import profiles
from bench.setup_check import check_setup
from weakclip.core.io import save_mask

H, W = 24, 32  # image size of the tiny trees
FIT, SCORE, VAL = ["a", "b", "d"], ["a", "b"], ["c"]  # train_aug, train (within train_aug), val


def _features_state(name: str) -> dict:
    import timm

    return timm.create_model(name, pretrained=False, features_only=True).state_dict()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Weight files: real-architecture CLIP ViT-B/16, tiny CLIP (wrong architecture), timm backbones."""
    import open_clip

    from weakclip.clip_towers import build_clip

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    vit = open_clip.create_model("ViT-B-16", pretrained=None)
    torch.save(vit.state_dict(), d / "ViT-B-16.pt")
    del vit
    torch.save(build_clip("tiny").state_dict(), d / "tiny_clip.pt")
    for name in ("resnet10t", "resnet18", "resnet34"):
        torch.save(_features_state(name), d / f"{name}.pth")
    return d


@pytest.fixture
def voc(tmp_path):
    """A VOC-layout tree: 4 images, official and SBD masks, split lists, a label file for a and b, seeds."""
    root, seeds = tmp_path / "VOC2012", tmp_path / "seeds"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    mask = np.zeros((H, W), np.uint8)
    mask[4:12, 8:20], mask[0, 0] = 15, 255  # a person and an ignore pixel
    for image_id in FIT + VAL:
        Image.new("RGB", (W, H), (90, 120, 30)).save(root / "JPEGImages" / f"{image_id}.jpg")
    for image_id in SCORE + VAL:
        save_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
    for image_id in FIT:
        save_mask(root / "SegmentationClassAug" / f"{image_id}.png", mask)
        save_mask(seeds / f"{image_id}.png", mask)
    for split, ids in (("train_aug", FIT), ("train", SCORE), ("val", VAL)):
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "cls_labels.json").write_text(json.dumps({"a": [15], "b": [15]}))  # d: from SegmentationClassAug
    return root


def make_params(root, weights=None, **paths) -> dict:
    """A voc params dict in the new layout; `paths` ({dotted key: value}) override, e.g. clip weights."""
    seeds = str(root.parent / "seeds")
    params = {
        "profile": "tvoc", "required_paths": ["data.root"],
        "data": {"kind": "voc", "root": str(root), "label_space": "voc21", "fit_split": "train_aug",
                 "score_split": "train", "val_split": "val", "gt_masks": "SegmentationClass",
                 "label_masks": "SegmentationClassAug"},
        "clip": {"arch": "ViT-B-16", "weights": None},
        "seeds": {"main": "clip_es", "folder": {"path": seeds},  # a set path is checked whatever the main
                  "cam": {"backbone": "resnet10t", "backbone_weights": None}},
        "refine": {"random_walk": {"fit": {"backbone": "resnet10t", "backbone_weights": None}}},
        "segnet": {"config": {"backbone": "resnet10t", "weights": None}},
    }
    for key, value in paths.items():
        profiles._set(params, key, value)
    return params


def write_profile(monkeypatch, tmp_path, params: dict) -> None:
    """Make `params` the profile "tvoc" (a profiles dir in tmp_path)."""
    pdir = tmp_path / "profiles"
    pdir.mkdir(exist_ok=True)
    (pdir / "tvoc.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(profiles, "PROFILES_DIR", pdir)


def use_fails(monkeypatch, tmp_path, params, *needles, overrides=None) -> str:
    """`use` on `params` fails with a message holding every needle, and writes nothing."""
    write_profile(monkeypatch, tmp_path, params)
    with pytest.raises(SystemExit) as err:
        profiles.use("tvoc", overrides or {}, out=tmp_path / "params.yaml", progress=False)
    message = str(err.value)
    print(message)
    for needle in needles:
        assert str(needle) in message, f"{needle!r} not in:\n{message}"
    assert not (tmp_path / "params.yaml").exists()
    return message


def _tree(tmp_path) -> dict:
    return {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}


def test_use_passes_and_prints_counts(monkeypatch, tmp_path, voc, weights, capsys):
    required = ["data.root", "clip.weights", "segnet.config.weights", "seeds.cam.backbone_weights",
                "refine.random_walk.fit.backbone_weights"]
    write_profile(monkeypatch, tmp_path, make_params(voc, required_paths=required))
    out = tmp_path / "params.yaml"
    real_use = profiles.use  # the CLI, writing to tmp_path instead of the repository's params.yaml
    monkeypatch.setattr(profiles, "use", lambda name, ov: real_use(name, ov, out=out, progress=False))
    before = _tree(tmp_path)
    r10, vit = str(weights / "resnet10t.pth"), str(weights / "ViT-B-16.pt")
    assert profiles.main(["use", "tvoc", "--data-root", str(voc), "--clip-weights", vit, "--seg-weights", r10,
                          "--cam-weights", r10, "--affinity-weights", r10,
                          "--seed-masks", str(voc.parent / "seeds")]) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert ("fit train_aug: 3 images, labels from cls_labels.json (2) and SegmentationClassAug (1); "
            "score train: 2 images with SegmentationClass masks; "
            "val val: 1 images with SegmentationClass masks; seed masks: 3; CLIP ViT-B/16 ok; "
            "ImageNet weights: resnet10t ok, resnet10t ok, resnet10t ok") in printed
    written = yaml.safe_load(out.read_text())
    assert written["seeds"]["cam"]["backbone_weights"] == r10
    assert written["refine"]["random_walk"]["fit"]["backbone_weights"] == r10
    assert written["seeds"]["main"] == "folder"  # seed masks given: they are the seeds
    assert "folder" in written["seeds"]["sources"]  # ... and the stage that reads them runs
    assert set(_tree(tmp_path)) - set(before) == {out}  # the check itself wrote nothing


def _rgb_mask(root):
    Image.new("RGB", (W, H), (128, 0, 0)).save(root / "SegmentationClass/a.png")
    return root / "SegmentationClass/a.png"


def _wrong_size(root):
    save_mask(root / "SegmentationClassAug/d.png", np.zeros((H, H), np.uint8))
    return root / "SegmentationClassAug/d.png"


def _out_of_range(root):
    save_mask(root.parent / "seeds/b.png", np.full((H, W), 30, np.uint8))
    return root.parent / "seeds/b.png"


def _score_outside_fit(root):
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\nc\n")
    return root / "ImageSets/Segmentation/train_aug.txt"


def _unlink(rel):
    def breaker(root):
        path = root / rel
        path.unlink()
        return path
    return breaker


@pytest.mark.parametrize("breaker, words", [
    (_unlink("JPEGImages/b.jpg"), ["missing (image of fit split 'train_aug')"]),
    (_unlink("SegmentationClass/c.png"), ["ground-truth mask of val split 'val'", "data.gt_masks"]),
    (_unlink("SegmentationClassAug/d.png"), ["no image-level labels for 'd'", "cls_labels.json"]),
    (_rgb_mask, ["not an index PNG", "mode 'RGB' (a colour image)"]),
    (_wrong_size, ["label mask is 24x24 (WxH)", "is 32x24"]),
    (_out_of_range, ["seed mask holds value(s) [30]", "0..20 and 255"]),
    (_score_outside_fit, ["score_split 'train' must be within fit_split 'train_aug'", "1 of 3 ids", "'c'"]),
    (_unlink("../seeds/d.png"), ["seed mask of fit id 'd'", "seeds.folder.path (--seed-masks)"]),
], ids=["jpeg", "gt-mask", "labels", "rgb-mask", "size", "value", "score-split", "seed"])
def test_bad_data_is_named_and_nothing_written(monkeypatch, tmp_path, voc, breaker, words):
    bad_file = breaker(voc)
    use_fails(monkeypatch, tmp_path, make_params(voc), bad_file.resolve(), *words)


def test_clip_weights_of_the_wrong_architecture(monkeypatch, tmp_path, voc, weights):
    path = weights / "tiny_clip.pt"
    use_fails(monkeypatch, tmp_path, make_params(voc), path, "clip.weights (--clip-weights)",
              "does not match the ViT-B-16 architecture", "expected CLIP ViT-B/16",
              overrides={"clip.weights": str(path)})


@pytest.mark.parametrize("key, backbone, file, words", [
    ("segnet.config.weights", "resnet10t", "resnet18.pth", ["--seg-weights", "wrong shape", "conv1."]),
    # timm would load these silently, leaving resnet34's extra blocks out: another architecture
    ("seeds.cam.backbone_weights", "resnet18", "resnet34.pth", ["--cam-weights", "unexpected", "layer1.2."]),
    ("refine.random_walk.fit.backbone_weights", "resnet34", "resnet18.pth",
     ["--affinity-weights", "missing keys (e.g. ['layer1.2."]),
], ids=["segnet", "cam", "affinity"])
def test_imagenet_weights_that_do_not_fit_the_backbone(monkeypatch, tmp_path, voc, weights, key, backbone,
                                                       file, words):
    backbone_key = key.replace("backbone_weights", "backbone").replace("config.weights", "config.backbone")
    params = make_params(voc, **{key: str(weights / file), backbone_key: backbone})
    use_fails(monkeypatch, tmp_path, params, weights / file, f"backbone {backbone!r}", *words)


def test_missing_weights_file(monkeypatch, tmp_path, voc):
    gone = tmp_path / "resnet50.pth"
    # a required path: validate_paths says what to download (once, not again from check_setup)
    params = make_params(voc, required_paths=["data.root", "seeds.cam.backbone_weights"])
    msg = use_fails(monkeypatch, tmp_path, params, gone, "--cam-weights", "ImageNet weights for the `cam`",
                    overrides={"seeds.cam.backbone_weights": str(gone)})
    assert msg.count(str(gone)) == 1
    # not required: check_setup names it
    key = "refine.random_walk.fit.backbone_weights"
    use_fails(monkeypatch, tmp_path, make_params(voc), gone, f"{key} (--affinity-weights)", "file not found",
              overrides={key: gone})


def test_all_problems_are_collected_and_cut_at_five_per_kind(voc):
    ids = FIT + [f"x{i}" for i in range(8)]  # 8 ids without any file
    (voc / "ImageSets/Segmentation/train_aug.txt").write_text("\n".join(ids))
    _rgb_mask(voc)
    report = check_setup(make_params(voc), progress=False)
    lines = report.problem_lines()
    assert sum("x" in line and "JPEGImages" in line for line in lines) == 5
    assert "... and 3 more of this kind (missing image)" in lines
    assert "... and 3 more of this kind (missing seed mask)" in lines
    assert any("not an index PNG" in line for line in lines) and not report.ok


def test_coco_layout_and_category_ids(tmp_path):
    root = tmp_path / "coco"
    for split, ids in (("train", ["1", "2"]), ("val", ["3"])):
        (root / "JPEGImages" / f"{split}2014").mkdir(parents=True)
        for image_id in ids:
            Image.new("RGB", (W, H)).save(root / "JPEGImages" / f"{split}2014" / f"{image_id}.jpg")
            mask = np.full((H, W), 90, np.uint8)  # toothbrush: a used id in both label spaces
            save_mask(root / "SegmentationClass" / f"{split}2014" / f"{image_id}.png", mask)
        (root / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids))
    params = {"data": {"kind": "coco", "root": str(root), "label_space": "coco91", "fit_split": "train",
                       "score_split": "train", "val_split": "val", "gt_masks": "SegmentationClass"}}
    report = check_setup(params, progress=False)
    assert report.ok, report.problem_lines()
    assert report.counts[:1] == ["fit train: 2 images, labels from SegmentationClass"]
    save_mask(root / "SegmentationClass/val2014/3.png", np.full((H, W), 12, np.uint8))  # unused in coco91
    lines = check_setup(params, progress=False).problem_lines()
    assert len(lines) == 1 and "val2014/3.png: ground-truth mask holds value(s) [12]" in lines[0]


def test_check_command(tmp_path, voc, capsys):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(make_params(voc)))
    assert profiles.main(["check", "--params", str(path)]) == 0
    assert "fit train_aug: 3 images" in capsys.readouterr().out
    _unlink("JPEGImages/a.jpg")(voc)
    with pytest.raises(SystemExit, match="JPEGImages/a.jpg: missing"):
        profiles.main(["check", "--params", str(path)])


def test_weights_a_stage_writes_are_checked_only_once_written(voc, weights):
    # voc-mini: clip.weights is written by pretrain_clip; not a user path (not in required_paths)
    params = make_params(voc, **{"clip.weights": str(voc.parent / "later.pt"),
                                 "segnet.config.weights": str(weights / "resnet18.pth")})
    report = check_setup(params, progress=False)
    assert [p.text for p in report.problems if "later.pt" in p.text] == []
    assert "CLIP ViT-B/16 ok" not in report.counts
    assert any("resnet18.pth: not ImageNet weights" in line for line in report.problem_lines())  # it exists
    report = check_setup(params, progress=False, external={"clip.weights"})
    assert any("later.pt" in line and "file not found" in line for line in report.problem_lines())


def test_split_lists_the_prepare_stage_draws(tmp_path, voc):
    """data.make_lists: a list not written yet stands for its source; data.lists_dir is searched first."""
    lists = tmp_path / "lists"
    params = make_params(voc, **{"data.fit_split": "mini_fit", "data.score_split": "mini_score",
                                 "data.lists_dir": str(lists),
                                 "data.make_lists": {"mini_fit": {"from": "train", "n": 2},
                                                     "mini_score": {"from": "mini_fit", "n": 1}}})
    report = check_setup(params, progress=False)
    assert report.ok, report.problem_lines()
    assert report.counts[0] == ("drawn later by the prepare stage: mini_fit (from train), mini_score (from "
                                "train) (source lists checked)")
    lists.mkdir()
    (lists / "mini_fit.txt").write_text("a\nb\n")
    (lists / "mini_score.txt").write_text("d\n")  # not within mini_fit (and d has no SegmentationClass mask)
    lines = check_setup(params, progress=False).problem_lines()
    assert f"{lists / 'mini_score.txt'}: score_split 'mini_score' must be within" in lines[0]
    assert "SegmentationClass/d.png: missing" in lines[1]
