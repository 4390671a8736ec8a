"""Stage `evaluate_pseudo`: score every method's pseudo masks on the score split, one evaluator.

Methods: the seed masks of every seed source (`seeds:<source>`), every refiner on the main seeds,
WeakCLIP for each fidelity and run seed (`weakclip[<variant>]`), and the ablation steps
(`weakclip[abl_<step>]`). Also the background-threshold sweep of the main seeds' CAMs (reported,
never used to pick the reported threshold) and a qualitative grid.
Writes results/metrics/{pseudo_masks.csv, pseudo_masks.json, threshold_sweep.csv} and
results/figures/qualitative.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from weakclip.core.io import load_mask

from .. import plots
from ..data.base import check_mask_values
from ..metrics import evaluate_masks, iter_cams, threshold_sweep
from ..results import make_row, write_metrics, write_rows
from .common import DATA, RESULTS, Stage, rel, run_stage
from .methods import describe, pseudo_mask_dirs
from .splits import check_score_within_fit, protocol_dataset, scored_row_fields


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    with Image.open(path) as im:
        return im.size


def check_unscored_masks(stage: Stage, fit_ds, score_ids) -> int:
    """Every method writes one mask per fit image, but only the score split is scored (on VOC, train_aug's
    other 9,118 images are stage 3's training targets). Those masks are checked here the way the evaluator
    checks scored ones: present, the image's size, labels in 0..K-1 or 255. Returns how many were checked."""
    unscored = [i for i in fit_ds.ids if i not in set(score_ids)]
    for _, folder, _ in pseudo_mask_dirs(stage):
        for image_id in unscored:
            path = folder / f"{image_id}.png"
            if not path.is_file():
                raise FileNotFoundError(f"missing mask for fit image {image_id!r}: {path} not found")
            mask = load_mask(path)
            check_mask_values(mask, fit_ds.num_classes, path)
            width, height = image_size(fit_ds.image_path(image_id))
            if mask.shape != (height, width):
                raise ValueError(f"{path}: size {mask.shape[::-1]} (W, H) differs from its image "
                                 f"{fit_ds.image_path(image_id)} ({width}, {height})")
    return len(unscored)


def score_methods(stage: Stage, ds, gt_dir: Path) -> tuple[list[dict], dict]:
    rows, summary = [], {}
    pred_ignore = stage.get("evaluate.pred_ignore")
    scored = scored_row_fields(stage, "score", ds)
    for method, folder, seed in pseudo_mask_dirs(stage):
        res = evaluate_masks(folder, gt_dir, ds.ids, ds.num_classes, pred_ignore=pred_ignore,
                             exclude_classes=getattr(ds, "unused_classes", ()), class_names=ds.class_names)
        common = {"profile": stage.profile, "dataset": ds.name, "method": method, "stage": "pseudo_mask",
                  "seed": seed, "pred_ignore": pred_ignore, "masks": rel(folder), **scored,
                  **describe(stage, method)}
        rows.append(make_row(metric="miou", value=res["miou"], **common))
        rows.append(make_row(metric="coverage", value=res["coverage"], **common))
        for name, iou in zip(ds.class_names, res["iou"]):
            rows.append(make_row(metric=f"iou:{name}", value=iou, **common))
        summary.setdefault(method, []).append(res["miou"])
    return rows, {m: float(np.mean(v)) for m, v in summary.items()}


def sweep_rows(stage: Stage, ds, gt_dir: Path) -> list[dict]:
    source = stage.get("seeds.main")
    chosen = float(stage.get("refine.threshold.bg_threshold"))
    sweep = threshold_sweep(iter_cams(DATA / "seeds" / source / "cams", gt_dir, ds.ids),
                            stage.get("evaluate.sweep_thresholds"), chosen, ds.num_classes,
                            pred_ignore=stage.get("evaluate.pred_ignore"),
                            exclude_classes=getattr(ds, "unused_classes", ()))
    scored = scored_row_fields(stage, "score", ds)
    split = scored.pop("split")
    return [make_row(stage.profile, ds.name, f"seeds:{source}", "threshold_sweep", split,
                     "miou", point["miou"], threshold=point["threshold"], chosen_threshold=chosen,
                     oracle_threshold=sweep["oracle_threshold"], **scored) for point in sweep["sweep"]]


def qualitative(stage: Stage, ds, n: int) -> Path:
    cols = [("seed", DATA / "seeds" / stage.get("seeds.main") / "masks")]
    cols += [(r, DATA / "refined" / r / "masks") for r in stage.get("refine.methods")]
    first_seed = stage.get("run_seeds")[0]
    cols += [(f"WeakCLIP {v}", DATA / "pseudo" / v / f"s{first_seed}") for v in stage.get("weakclip.variants")]
    rows = []
    for image_id in ds.ids[:n]:
        gt = ds.load_mask(image_id)
        panel = [("image", ds.load_image(image_id)), ("ground truth", plots.colorize(gt))]
        panel += [(title, plots.colorize(load_mask(folder / f"{image_id}.png"))) for title, folder in cols]
        rows.append((image_id, panel))
    return plots.qualitative_grid(rows, RESULTS / "figures" / "qualitative.png")


def main() -> int:
    with run_stage("evaluate_pseudo") as stage:
        ds, fit = protocol_dataset(stage, "score"), protocol_dataset(stage, "fit")
        check_score_within_fit(stage, fit.ids, ds.ids)
        check_unscored_masks(stage, fit, ds.ids)
        gt_dir = ds.gt_mask_dir
        rows, summary = score_methods(stage, ds, gt_dir)
        write_rows(RESULTS / "metrics" / "pseudo_masks.csv", rows)
        write_rows(RESULTS / "metrics" / "threshold_sweep.csv", sweep_rows(stage, ds, gt_dir))
        write_metrics(RESULTS / "metrics" / "pseudo_masks.json", stage.profile, {"miou": summary})
        qualitative(stage, ds, int(stage.get("evaluate.qualitative_images")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
