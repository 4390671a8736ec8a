"""Evaluator: hand-computed confusion matrices, pred_ignore modes, bad inputs, threshold sweep."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.metrics import ConfusionMatrix, cam_to_mask, evaluate_masks, threshold_sweep
from weakclip.core.io import save_mask

# 3 classes; one gt-255 pixel (never scored) and one pred-255 pixel (gt class 1).
GT = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
PRED = np.array([[0, 1, 1, 255], [2, 0, 2, 1]], np.uint8)


def _metrics(mode, pred=PRED, gt=GT, num_classes=3, **kw):
    cm = ConfusionMatrix(num_classes, pred_ignore=mode, **kw)
    cm.update(pred, gt)
    return cm, cm.compute()


def test_raw_matrix_counts_pred_255_in_last_column():
    cm, _ = _metrics("background")
    expected = np.array(
        [
            [1, 1, 0, 0],  # gt 0: pred 0, pred 1
            [0, 2, 0, 1],  # gt 1: pred 1 twice, pred 255 once
            [1, 0, 1, 0],
        ]
    )  # gt 2: pred 2, pred 0  (the gt-255 pixel is not counted)
    np.testing.assert_array_equal(cm.matrix, expected)


@pytest.mark.parametrize(
    "mode, iou, precision, recall, fp, fn",
    [
        # 255 -> class 0: tp [1,2,1], fp [2,1,0], fn [1,1,1]
        (
            "background",
            [1 / 4, 2 / 4, 1 / 2],
            [1 / 3, 2 / 3, 1],
            [1 / 2, 2 / 3, 1 / 2],
            [2 / 4, 1 / 4, 0],
            [1 / 4, 1 / 4, 1 / 2],
        ),
        # pixel dropped: tp [1,2,1], fp [1,1,0], fn [1,0,1]
        (
            "ignore",
            [1 / 3, 2 / 3, 1 / 2],
            [1 / 2, 2 / 3, 1],
            [1 / 2, 1, 1 / 2],
            [1 / 3, 1 / 3, 0],
            [1 / 3, 0, 1 / 2],
        ),
        # an FN of gt class 1 and no FP: tp [1,2,1], fp [1,1,0], fn [1,1,1]
        (
            "miss",
            [1 / 3, 2 / 4, 1 / 2],
            [1 / 2, 2 / 3, 1],
            [1 / 2, 2 / 3, 1 / 2],
            [1 / 3, 1 / 4, 0],
            [1 / 3, 1 / 4, 1 / 2],
        ),
    ],
)
def test_hand_computed_metrics_per_mode(mode, iou, precision, recall, fp, fn):
    _, m = _metrics(mode)
    np.testing.assert_allclose(m["iou"], iou)
    np.testing.assert_allclose(m["precision"], precision)
    np.testing.assert_allclose(m["recall"], recall)
    np.testing.assert_allclose(m["fp"], fp)
    np.testing.assert_allclose(m["fn"], fn)
    assert m["miou"] == pytest.approx(np.mean(iou))
    assert m["coverage"] == pytest.approx(6 / 7)  # 7 scored pixels, one predicted 255
    assert m["n_images"] == 1 and m["num_classes"] == 3 and m["pred_ignore"] == mode
    np.testing.assert_allclose(np.add(m["iou"], m["fp"]) + m["fn"], 1.0)


def test_class_absent_from_split_is_none_and_not_averaged():
    _, m = _metrics("background", num_classes=5)
    assert m["iou"][3] is None and m["iou"][4] is None
    assert m["precision"][3] is None and m["fp"][4] is None
    assert m["miou"] == pytest.approx((1 / 4 + 2 / 4 + 1 / 2) / 3)
    assert m["n_classes_scored"] == 3


def test_class_only_predicted_counts_with_zero_iou():
    gt = np.zeros((2, 2), np.uint8)
    pred = np.array([[0, 0], [0, 3]], np.uint8)
    _, m = _metrics("background", pred=pred, gt=gt, num_classes=4)
    assert m["iou"] == [3 / 4, None, None, 0.0]
    assert m["miou"] == pytest.approx(3 / 8)


def test_one_matrix_over_the_split_not_a_mean_of_images():
    cm = ConfusionMatrix(3)
    cm.update(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))  # image 1: class 1 only, perfect
    gt2 = np.array([[0, 0, 0, 2]], np.uint8)  # image 2: class 1 absent
    cm.update(np.array([[0, 0, 2, 2]], np.uint8), gt2)
    m = cm.compute()
    # class 0: tp 2, fn 1; class 1: tp 4; class 2: tp 1, fp 1
    assert m["iou"] == [pytest.approx(2 / 3), 1.0, pytest.approx(1 / 2)]
    assert m["n_images"] == 2 and m["pixel_accuracy"] == pytest.approx(7 / 8)


def test_exclude_classes_are_none_everywhere():
    _, m = _metrics("background", exclude_classes=[2])
    assert m["iou"][2] is None and m["recall"][2] is None
    assert m["miou"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    assert m["exclude_classes"] == [2]


def test_all_gt_ignored_gives_no_score():
    _, m = _metrics("background", gt=np.full_like(GT, 255))
    assert m["miou"] is None and m["coverage"] is None and m["n_pixels"] == 0


@pytest.mark.parametrize(
    "pred, gt, match",
    [
        (np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), "shape"),
        (np.full((2, 2), 3, np.uint8), np.zeros((2, 2), np.uint8), r"\[3\] >= num_classes=3"),
        (np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8), r"ground truth.*\[7\]"),
        (np.full((2, 2), -1), np.zeros((2, 2), np.uint8), "outside 0..255"),
    ],
)
def test_update_rejects_bad_arrays(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        ConfusionMatrix(3).update(pred, gt, name="img_7")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="pred_ignore"):
        ConfusionMatrix(3, pred_ignore="drop")
    with pytest.raises(ValueError, match="exclude_classes"):
        ConfusionMatrix(3, exclude_classes=[3])


# ---- files -------------------------------------------------------------------------------------------
@pytest.fixture
def dirs(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for i in range(3):
        save_mask(gt / f"im{i}.png", GT)
        save_mask(pred / f"im{i}.png", PRED)
    return pred, gt


@pytest.mark.parametrize("mode", ["background", "ignore", "miss"])
def test_evaluate_masks_matches_in_memory(dirs, mode):
    pred, gt = dirs
    result = evaluate_masks(pred, gt, ["im0", "im1", "im2"], 3, pred_ignore=mode)
    _, single = _metrics(mode)
    assert result["iou"] == pytest.approx(single["iou"]) and result["n_images"] == 3


def test_evaluate_masks_bad_inputs_name_the_file(dirs, tmp_path):
    pred, gt = dirs
    ids = ["im0", "im1", "im2"]
    with pytest.raises(ValueError, match="empty"):
        evaluate_masks(pred, gt, [], 3)
    with pytest.raises(FileNotFoundError, match="no ground truth for list id 'nope'"):
        evaluate_masks(pred, gt, ["im0", "nope"], 3)
    (pred / "im1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing prediction .*im1\.png"):
        evaluate_masks(pred, gt, ids, 3)
    save_mask(pred / "im1.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"im1\.png: size \(3, 3\)"):
        evaluate_masks(pred, gt, ids, 3)
    save_mask(pred / "im1.png", np.full(GT.shape, 4, np.uint8))
    with pytest.raises(ValueError, match=r"pred/im1\.png: label value\(s\) \[4\]"):
        evaluate_masks(pred, gt, ids, 3)
    save_mask(pred / "im1.png", PRED)
    save_mask(gt / "im2.png", np.full(GT.shape, 9, np.uint8))
    with pytest.raises(ValueError, match=r"gt/im2\.png: label value\(s\) \[9\]"):
        evaluate_masks(pred, gt, ids, 3)
    save_mask(gt / "im2.png", GT)
    Image.fromarray(np.zeros((*GT.shape, 3), np.uint8)).save(pred / "im2.png")  # RGB PNG
    with pytest.raises(ValueError, match=r"im2\.png: not an index mask"):
        evaluate_masks(pred, gt, ids, 3)
    (pred / "im2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # corrupt PNG
    with pytest.raises(ValueError, match=r"im2\.png: cannot read mask"):
        evaluate_masks(pred, gt, ids, 3)
    Image.fromarray(np.zeros((*GT.shape, 3), np.uint8)).save(pred / "im2.png", format="JPEG")  # JPEG bytes
    with pytest.raises(ValueError, match=r"im2\.png: not an index mask"):
        evaluate_masks(pred, gt, ids, 3)
    with pytest.raises(FileNotFoundError, match="prediction folder"):
        evaluate_masks(tmp_path / "absent", gt, ids, 3)


# ---- CAM threshold sweep ---------------------------------------------------------------------------------
def test_cam_to_mask_replaces_background_channel():
    scores = np.zeros((3, 1, 3), np.float32)
    scores[0] = 0.99  # a background score in channel 0 is replaced by the threshold
    scores[1, 0] = [0.2, 0.6, 0.1]
    scores[2, 0] = [0.1, 0.5, 0.4]
    np.testing.assert_array_equal(cam_to_mask(scores, 0.3), [[0, 1, 2]])
    np.testing.assert_array_equal(cam_to_mask(scores, 0.45), [[0, 1, 0]])


def test_threshold_sweep_reports_the_callers_threshold_not_the_best():
    gt = np.array([[0, 0, 1, 1]], np.uint8)
    scores = np.zeros((2, 1, 4), np.float32)
    scores[1, 0] = [0.1, 0.3, 0.5, 0.7]  # perfect at a threshold in (0.3, 0.5)
    out = threshold_sweep(
        [("x", scores, gt)], thresholds=[0.2, 0.4, 0.6], chosen_threshold=0.6, num_classes=2
    )
    assert [row["threshold"] for row in out["sweep"]] == [0.2, 0.4, 0.6]
    assert out["sweep"][1]["miou"] == 1.0
    assert out["oracle_threshold"] == 0.4 and out["oracle_miou"] == 1.0
    assert out["chosen_threshold"] == 0.6
    assert out["chosen_miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)  # the caller's choice, not the argmax
    assert out["chosen"]["iou"] == [pytest.approx(2 / 3), pytest.approx(1 / 2)]
    # a chosen threshold outside the grid is scored but not added to the sweep
    out = threshold_sweep([("x", scores, gt)], [0.2, 0.6], chosen_threshold=0.4, num_classes=2)
    assert out["chosen_miou"] == 1.0 and len(out["sweep"]) == 2
    with pytest.raises(ValueError, match="x: scores of shape"):
        threshold_sweep([("x", scores[:1], gt)], [0.2], 0.2, num_classes=2)
    with pytest.raises(ValueError, match="no images"):
        threshold_sweep([], [0.2], 0.2, num_classes=2)


def test_non_integer_predictions_are_an_error_not_truncated():
    """A probability map passed as labels would be truncated to 0 by a cast and score as a perfect match."""
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="prediction: labels must be integers, got dtype float"):
        cm.update(np.full(GT.shape, 0.7), GT)
    cm.update(PRED.astype(np.int64), GT)  # integer labels of another width are fine
