"""COCO 2014 label spaces (coco91 by category id, coco81 contiguous) and the VOC-style reader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.data import build_dataset
from bench.data.coco import (
    COCO81_CLASSES,
    COCO81_INDEX,
    COCO91_CLASSES,
    COCO91_UNUSED_IDS,
    COCO_CATEGORIES,
    category_lut,
    class_names,
    index_to_category,
    remap_mask,
    unused_classes,
)
from bench.metrics import evaluate_masks
from weakclip.core.io import save_mask

ABSENT = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]


def test_known_ids_and_names():
    assert sorted(COCO91_UNUSED_IDS) == ABSENT and len(COCO_CATEGORIES) == 80
    assert COCO81_INDEX[1] == 1 and COCO81_INDEX[90] == 80 and COCO81_INDEX[0] == 0
    assert COCO81_INDEX[13] == 12  # stop sign follows the gap at 12
    assert COCO81_CLASSES[1] == "person" and COCO81_CLASSES[80] == "toothbrush" and len(COCO81_CLASSES) == 81
    assert COCO91_CLASSES[1] == "person" and COCO91_CLASSES[90] == "toothbrush" and len(COCO91_CLASSES) == 91
    assert COCO91_CLASSES[0] == COCO81_CLASSES[0] == "background"
    assert class_names("coco91")[12] == "street sign"  # unused id keeps a readable name
    assert len(set(COCO81_CLASSES)) == 81


@pytest.mark.parametrize("space", ["coco91", "coco81"])
def test_absent_ids_rejected(space):
    for cid in ABSENT + [91, 200]:
        with pytest.raises(ValueError, match=rf"\[{cid}\] are not COCO category ids"):
            remap_mask(np.full((2, 2), cid, np.uint8), space, source="m.png")
        assert category_lut(space)[cid] == -1


def test_unused_classes_per_space():
    assert unused_classes("coco91") == tuple(ABSENT)
    assert unused_classes("coco81") == ()
    with pytest.raises(ValueError, match="label_space must be one of"):
        class_names("coco80")


@pytest.mark.parametrize("space, n", [("coco91", 91), ("coco81", 81)])
def test_round_trip(space, n):
    ids = np.array([0, 255] + sorted(COCO_CATEGORIES), np.uint8)
    mapped = remap_mask(ids[None, :], space)[0]
    assert mapped[0] == 0 and mapped[1] == 255
    assert sorted(set(mapped[2:].tolist())) == sorted(set(range(1, n)) - set(unused_classes(space)))
    inverse = index_to_category(space)
    assert inverse.shape == (n,)
    np.testing.assert_array_equal(inverse[mapped[2:]], ids[2:])
    if space == "coco91":
        np.testing.assert_array_equal(mapped, ids)  # identity on used ids
        assert (inverse[list(ABSENT)] == -1).all()


def _coco_tree(root, masks: dict[str, np.ndarray]):
    for sub in ("JPEGImages/val2014", "SegmentationClass/val2014", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, mask in masks.items():
        Image.fromarray(np.zeros((*mask.shape, 3), np.uint8)).save(
            root / "JPEGImages/val2014" / f"{image_id}.jpg"
        )
        save_mask(root / "SegmentationClass/val2014" / f"{image_id}.png", mask)
    (root / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i}\n" for i in masks))
    return root


def test_coco_dataset_both_spaces(tmp_path):
    mask = np.zeros((6, 8), np.uint8)
    mask[:3, :4], mask[3:, 4:], mask[0, 7] = 1, 90, 255  # person, toothbrush, ignore
    root = _coco_tree(tmp_path / "coco", {"COCO_val2014_000000000042": mask})
    d91 = build_dataset({"kind": "coco", "root": str(root), "label_space": "coco91"}, "val")
    d81 = build_dataset({"kind": "coco", "root": str(root), "label_space": "coco81"}, "val")
    assert (d91.name, d91.num_classes, d91.unused_classes) == ("coco91", 91, tuple(ABSENT))
    assert (d81.name, d81.num_classes, d81.unused_classes) == ("coco81", 81, ())
    assert set(np.unique(d91[0]["mask"]).tolist()) == {0, 1, 90, 255}
    assert set(np.unique(d81[0]["mask"]).tolist()) == {0, 1, 80, 255}
    assert np.flatnonzero(d91[0]["labels"]).tolist() == [0, 89] and d91[0]["labels"].shape == (90,)
    assert np.flatnonzero(d81[0]["labels"]).tolist() == [0, 79] and d81[0]["labels"].shape == (80,)
    assert d91.image_path(d91.ids[0]).parent.name == "val2014"
    with pytest.raises(ValueError, match="needs 'label_space'"):
        build_dataset({"kind": "coco", "root": str(root)}, "val")


def test_coco_unused_id_in_mask_is_an_error_naming_the_file(tmp_path):
    mask = np.full((4, 4), 12, np.uint8)
    root = _coco_tree(tmp_path / "coco", {"img": mask})
    ds = build_dataset({"kind": "coco", "root": str(root), "label_space": "coco91"}, "val")
    with pytest.raises(ValueError, match=r"img\.png: value\(s\) \[12\]"):
        ds[0]


def test_unused_coco91_classes_are_never_scored(tmp_path):
    gt = np.array([[0, 1, 1, 90]], np.uint8)
    pred = np.array([[12, 1, 1, 90]], np.uint8)  # predicting an unused id is simply wrong
    save_mask(tmp_path / "gt/a.png", gt)
    save_mask(tmp_path / "pred/a.png", pred)
    m = evaluate_masks(
        tmp_path / "pred", tmp_path / "gt", ["a"], 91, exclude_classes=unused_classes("coco91")
    )
    assert m["iou"][12] is None and m["iou"][0] == 0.0 and m["iou"][1] == 1.0 and m["iou"][90] == 1.0
    assert m["n_classes_scored"] == 3 and m["miou"] == pytest.approx(2 / 3)
