"""VOC reader: voc-mini (real photos) and tiny generated trees for the error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.data import VOC_CLASSES, VOCDataset, build_dataset, labels_from_mask, read_id_list
from bench.metrics import evaluate_masks
from weakclip.core.io import save_mask


@pytest.fixture(scope="module")
def voc_mini_val(voc_mini_root):
    return build_dataset({"kind": "voc", "root": str(voc_mini_root)}, "val")


def test_voc_mini_counts_and_classes(voc_mini_root, voc_mini_val):
    train = build_dataset({"kind": "voc", "root": str(voc_mini_root / "VOC2012")}, "train")
    assert len(voc_mini_val) == 346 and len(train) == 151
    assert not set(train.ids) & set(voc_mini_val.ids)
    assert voc_mini_val.num_classes == 21 and voc_mini_val.class_names == VOC_CLASSES
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[11] == "diningtable" and len(VOC_CLASSES) == 21
    assert voc_mini_val.name == "voc"


def test_voc_mini_labels_equal_mask_classes_and_sizes_agree(voc_mini_val):
    # labels come from voc-mini's cls_labels.json (found next to VOC2012/); they must match the masks
    assert voc_mini_val._file_labels, "cls_labels.json was not picked up"
    for image_id in voc_mini_val.ids:
        mask = voc_mini_val.load_mask(image_id)
        np.testing.assert_array_equal(
            voc_mini_val.labels(image_id), labels_from_mask(mask, 21), err_msg=image_id
        )
        with Image.open(voc_mini_val.image_path(image_id)) as img:
            assert img.size == mask.shape[::-1], image_id
    item = voc_mini_val[0]
    assert item["image"].dtype == np.uint8 and item["image"].ndim == 3 and item["image"].shape[2] == 3
    assert item["mask"].dtype == np.uint8 and item["mask"].shape == item["image"].shape[:2]
    assert item["labels"].dtype == np.float32 and item["labels"].shape == (20,) and item["labels"].sum() >= 1
    assert item["id"] == voc_mini_val.ids[0]


def test_voc_mini_gt_against_itself_is_perfect(voc_mini_val):
    result = evaluate_masks(voc_mini_val.mask_dir, voc_mini_val.mask_dir, voc_mini_val.ids, 21)
    assert result["miou"] == 1.0 and result["n_images"] == 346 and result["n_classes_scored"] == 21
    assert result["coverage"] == 1.0


def test_labels_derived_from_masks_without_label_file(tiny_voc_root):
    ds = VOCDataset(tiny_voc_root, "train")
    assert ds.ids == ["a_0", "a_1", "a_2"] and ds._file_labels == {}
    for k, image_id in enumerate(ds.ids):
        expected = np.zeros(20, np.float32)
        expected[k] = 1  # image k holds class k + 1
        np.testing.assert_array_equal(ds.labels(image_id), expected)
        item = ds[k]
        assert set(np.unique(item["mask"]).tolist()) == {0, k + 1, 255}


@pytest.mark.parametrize("fmt", ["voc-mini", "plain-indices", "plain-multihot", "irn-npy"])
def test_label_file_formats(tiny_voc_root, fmt):
    labels = {"a_0": [3], "a_1": [4, 20], "a_2": []}
    if fmt == "voc-mini":
        path = tiny_voc_root / "cls_labels.json"
        path.write_text(
            json.dumps({"classes": VOC_CLASSES, "images": {k: {"labels": v} for k, v in labels.items()}})
        )
    elif fmt == "plain-indices":
        path = tiny_voc_root / "labels.json"
        path.write_text(json.dumps(labels))
    elif fmt == "plain-multihot":
        path = tiny_voc_root / "labels.json"
        path.write_text(
            json.dumps({k: np.isin(np.arange(1, 21), v).astype(int).tolist() for k, v in labels.items()})
        )
    else:
        path = tiny_voc_root / "cls_labels.npy"
        np.save(path, {k: np.isin(np.arange(1, 21), v).astype(np.float32) for k, v in labels.items()})
    ds = VOCDataset(tiny_voc_root, "train", cls_labels=None if fmt in ("voc-mini", "irn-npy") else path)
    assert np.flatnonzero(ds.labels("a_1")).tolist() == [3, 19]
    assert np.flatnonzero(ds.labels("a_0")).tolist() == [2]  # from the file, not the mask (class 1)
    assert ds.labels("a_2").sum() == 0


def test_label_file_errors(tiny_voc_root):
    bad = tiny_voc_root / "bad.json"
    bad.write_text(json.dumps({"a_0": [21]}))
    with pytest.raises(ValueError, match=r"bad.json \[a_0\]: image-level label 21"):
        VOCDataset(tiny_voc_root, "train", cls_labels=bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        VOCDataset(tiny_voc_root, "train", cls_labels=bad)


def test_mask_dir_override_keeps_gt_labels(tiny_voc_root, tmp_path):
    pseudo = tmp_path / "pseudo"
    for image_id in ("a_0", "a_1", "a_2"):
        save_mask(pseudo / f"{image_id}.png", np.full((24, 32), 7, np.uint8))
    ds = build_dataset({"kind": "voc", "root": str(tiny_voc_root), "mask_dir": str(pseudo)}, "train")
    item = ds[1]
    assert (item["mask"] == 7).all() and ds.mask_path("a_1") == pseudo / "a_1.png"
    assert np.flatnonzero(item["labels"]).tolist() == [1]  # weak labels still from the ground truth
    rel = build_dataset({"kind": "voc", "root": str(tiny_voc_root), "mask_dir": "SegmentationClass"}, "val")
    assert rel.mask_dir == tiny_voc_root / "SegmentationClass"


def test_official_masks_are_the_ground_truth_and_sbd_masks_give_labels(make_voc_tree, tmp_path):
    """Scores use SegmentationClass wherever it exists; SBD's coarser SegmentationClassAug only supplies the
    labels of images the official masks do not cover (train_aug), or the ground truth when asked by name."""
    root = make_voc_tree(tmp_path / "v", {"train": ["x_0"]})  # SegmentationClass/x_0.png from the fixture
    official = VOCDataset(root, "train")[0]["mask"]
    (root / "SegmentationClassAug").mkdir()
    for image_id, cls in (("x_0", 5), ("y_0", 9)):  # y_0: a train_aug image without an official mask
        save_mask(root / "SegmentationClassAug" / f"{image_id}.png", np.full((24, 32), cls, np.uint8))
    aug_list = root / "ImageSets" / "SegmentationAug" / "train_aug.txt"
    aug_list.parent.mkdir(parents=True)
    aug_list.write_text("/JPEGImages/x_0.jpg /SegmentationClassAug/x_0.png\n")
    assert read_id_list(aug_list) == ["x_0"]
    scored = VOCDataset(root, "train")
    assert scored.gt_mask_dir.name == "SegmentationClass" and (scored[0]["mask"] == official).all()
    fit = VOCDataset(root, "train_aug", with_masks=False, label_masks="SegmentationClassAug")
    assert fit.ids == ["x_0"] and np.flatnonzero(fit.labels("x_0")).tolist() == [4]  # class 5 -> index 4
    aug = VOCDataset(root, "train_aug", gt_masks="SegmentationClassAug")
    assert aug.mask_dir.name == "SegmentationClassAug" and (aug[0]["mask"] == 5).all()


def test_missing_files_are_clear_errors(tiny_voc_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="VOC dataset root not found.*SegmentationClassAug"):
        VOCDataset(tmp_path / "nowhere", "train")
    with pytest.raises(
        FileNotFoundError, match=r"split list 'test' not found.*available splits: \['train', 'val'\]"
    ):
        VOCDataset(tiny_voc_root, "test")
    (tiny_voc_root / "SegmentationClass" / "b_1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 mask file\(s\) of split 'val' missing: .*b_1\.png"):
        VOCDataset(tiny_voc_root, "val")
    ds = VOCDataset(tiny_voc_root, "val", with_masks=False)  # a split without masks is fine when asked for
    assert ds[0]["mask"] is None
    (tiny_voc_root / "JPEGImages" / "a_2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image file\(s\) of split 'train' missing: .*a_2\.jpg"):
        VOCDataset(tiny_voc_root, "train")
    (tiny_voc_root / "ImageSets/Segmentation/empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty.txt: the image list is empty"):
        VOCDataset(tiny_voc_root, "empty")


def test_bad_files_at_load_time_name_the_file(tiny_voc_root):
    ds = VOCDataset(tiny_voc_root, "train")
    (tiny_voc_root / "JPEGImages" / "a_0.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(ValueError, match=r"a_0\.jpg: corrupt"):
        ds[0]
    save_mask(tiny_voc_root / "SegmentationClass" / "a_1.png", np.full((24, 32), 30, np.uint8))
    with pytest.raises(ValueError, match=r"a_1\.png: label value\(s\) \[30\] >= num_classes=21"):
        ds[1]
    save_mask(tiny_voc_root / "SegmentationClass" / "a_2.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"a_2\.png: mask size \(10, 10\)"):
        ds[2]
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tiny_voc_root / "SegmentationClass" / "a_2.png")
    with pytest.raises(ValueError, match=r"a_2\.png: not an index mask"):
        ds[2]


def test_build_dataset_never_falls_back(tmp_path, tiny_voc_root):
    with pytest.raises(FileNotFoundError, match="VOC2012.*SegmentationClassAug"):
        build_dataset({"kind": "voc", "root": str(tmp_path / "VOC2012")}, "train")
    with pytest.raises(FileNotFoundError, match="no dataset root given"):
        build_dataset({"kind": "voc"}, "train")
    with pytest.raises(FileNotFoundError, match="COCO 2014.*SegmentationClass"):
        build_dataset({"kind": "coco", "root": str(tmp_path / "coco"), "label_space": "coco81"}, "val")
    with pytest.raises(FileNotFoundError, match="python -m bench.data.synthetic"):
        build_dataset({"kind": "synthetic", "root": str(tmp_path / "syn")}, "train")
    with pytest.raises(ValueError, match="kind must be one of"):
        build_dataset({"kind": "cityscapes", "root": str(tmp_path)}, "train")
    # a profile's whole data section can be passed: keys the reader does not use are ignored
    named = build_dataset(
        {
            "kind": "voc",
            "root": str(tiny_voc_root),
            "name": "voc-mini",
            "fit_split": "train",
            "synthetic": {"size": 64},
        },
        "train",
    )
    assert named.name == "voc-mini" and len(named) == 3
