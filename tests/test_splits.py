"""The protocol's splits in the stages: fit and score kept apart where the paper keeps them apart, scores
against the ground-truth folder the params name, and every fit image's mask checked, scored or not."""
import numpy as np
import pytest

from bench.stages import evaluate_pseudo, methods
from bench.stages.common import Stage
from bench.stages.prepare import spread
from bench.stages.splits import check_score_within_fit, protocol_dataset, scored_row_fields
from weakclip.core.io import save_mask


def _stage(root, **data) -> Stage:
    params = {"profile": "unit", "data": {"kind": "voc", "root": str(root), "fit_split": "train_aug",
                                          "score_split": "train", "val_split": "val", "gt_masks": "SegmentationClass",
                                          **data},
              "seeds": {"main": "cam", "sources": ["cam"], "clip_es": {"caa": True}}, "refine": {"methods": ["crf"]},
              "weakclip": {"variants": [], "ablation": [], "deviations": []}, "run_seeds": [0]}
    return Stage("unit", params)


@pytest.fixture
def voc(make_voc_tree, tmp_path):
    """train_aug = train + two images that have no official mask (as VOC's SBD-only images)."""
    root = make_voc_tree(tmp_path / "voc", {"train": ["t0", "t1"], "val": ["v0"], "extra": ["x0", "x1"]})
    (root / "ImageSets/Segmentation/train_aug.txt").write_text("t0\nt1\nx0\nx1\n")
    aug = root / "SegmentationClassAug"
    for image_id in ("t0", "t1", "x0", "x1"):
        save_mask(aug / f"{image_id}.png", np.full((24, 32), 3, np.uint8))  # coarse: all class 3
    for image_id in ("x0", "x1"):
        (root / "SegmentationClass" / f"{image_id}.png").unlink()  # no official mask
    return root


def test_fit_score_and_val_are_separate_splits_scored_against_the_official_masks(voc):
    stage = _stage(voc, label_masks="SegmentationClassAug")
    fit, score, val = (protocol_dataset(stage, r) for r in ("fit", "score", "val"))
    assert (fit.ids, score.ids, val.ids) == (["t0", "t1", "x0", "x1"], ["t0", "t1"], ["v0"])
    assert fit[2]["mask"] is None and np.flatnonzero(fit.labels("x0")).tolist() == [2]  # labels from SBD
    assert score.gt_mask_dir.name == "SegmentationClass" and (score[0]["mask"] != 3).any()  # not the coarse copy
    fields = scored_row_fields(stage, "score", score)
    assert fields == {"split": "train", "fit_split": "train_aug", "gt": "SegmentationClass"}


def test_a_score_split_outside_the_fit_split_is_a_params_error(voc):
    stage = _stage(voc, fit_split="train", score_split="val")
    with pytest.raises(ValueError, match="data.score_split 'val' has 1 image.*outside data.fit_split 'train'"):
        check_score_within_fit(stage, protocol_dataset(stage, "fit").ids, protocol_dataset(stage, "score").ids)


def test_the_masks_of_unscored_fit_images_are_checked_too(voc, tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "DATA", tmp_path / "data")
    stage = _stage(voc, label_masks="SegmentationClassAug")
    fit = protocol_dataset(stage, "fit")
    for folder in ("seeds/cam/masks", "refined/crf/masks"):
        for image_id in fit.ids:
            save_mask(tmp_path / "data" / folder / f"{image_id}.png", np.zeros((24, 32), np.uint8))
    assert evaluate_pseudo.check_unscored_masks(stage, fit, ["t0", "t1"]) == 2
    save_mask(tmp_path / "data/refined/crf/masks/x1.png", np.zeros((20, 32), np.uint8))
    with pytest.raises(ValueError, match="x1.png: size .* differs from its image"):
        evaluate_pseudo.check_unscored_masks(stage, fit, ["t0", "t1"])
    save_mask(tmp_path / "data/refined/crf/masks/x1.png", np.full((24, 32), 40, np.uint8))
    with pytest.raises(ValueError, match="x1.png: label value"):
        evaluate_pseudo.check_unscored_masks(stage, fit, ["t0", "t1"])
    (tmp_path / "data/refined/crf/masks/x1.png").unlink()
    with pytest.raises(FileNotFoundError, match="missing mask for fit image 'x1'"):
        evaluate_pseudo.check_unscored_masks(stage, fit, ["t0", "t1"])


def test_result_rows_carry_the_comparison_key():
    stage = Stage("unit", {"seeds": {"main": "clip_es", "clip_es": {"caa": True}}})
    assert methods.describe(stage, "seeds:clip_es") == {"seeds": "clip_es", "caa": True, "refiner": "none"}
    assert methods.describe(stage, "seeds:cam") == {"seeds": "cam", "caa": False, "refiner": "none"}
    assert methods.describe(stage, "crf") == {"seeds": "clip_es", "caa": True, "refiner": "crf"}
    assert methods.describe(stage, "weakclip[release]")["refiner"] == "weakclip"


def test_derived_split_lists_spread_over_their_source():
    ids = [f"{i:04d}" for i in range(151)]
    picked = spread(ids, 12)
    assert len(picked) == 12 and picked[0] == "0000" and picked[-1] > "0100"  # across the list, not its head
    with pytest.raises(ValueError, match="asks for 200 ids of a list that has 151"):
        spread(ids, 200)
