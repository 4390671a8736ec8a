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

from weakclip.io import load_mask

from .. import plots
from ..metrics import evaluate_masks, iter_cams, threshold_sweep
from ..results import make_row, write_metrics, write_rows
from .common import DATA, RESULTS, Stage, rel, run_stage
from .methods import describe, pseudo_mask_dirs
from .splits import check_score_within_fit, protocol_dataset, scored_row_fields


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
    return [make_row(stage.profile, ds.name, f"seeds:{source}", "threshold_sweep", scored.pop("split"),
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
        ds = protocol_dataset(stage, "score")
        check_score_within_fit(stage, protocol_dataset(stage, "fit").ids, ds.ids)
        gt_dir = ds.gt_mask_dir
        rows, summary = score_methods(stage, ds, gt_dir)
        write_rows(RESULTS / "metrics" / "pseudo_masks.csv", rows)
        write_rows(RESULTS / "metrics" / "threshold_sweep.csv", sweep_rows(stage, ds, gt_dir))
        write_metrics(RESULTS / "metrics" / "pseudo_masks.json", stage.profile, {"miou": summary})
        qualitative(stage, ds, int(stage.get("evaluate.qualitative_images")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
