"""Stage `evaluate_final`: every stage-3 model predicts the val split (multi-scale + flip + CRF as in
params) and is scored with the same evaluator. Writes data/final/<method>/s<seed>/<id>.png and
results/metrics/{final.csv, final.json}."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

from baselines.segnet import load_segnet, predict_folder

from ..metrics import evaluate_masks
from ..results import make_row, write_metrics, write_rows
from .common import DATA, RESULTS, Stage, fresh_dir, publish_dir, run_stage
from .methods import describe, training_masks
from .parallel import in_worker, report_progress, run_jobs
from .splits import protocol_dataset, scored_row_fields


def evaluate_one(stage: Stage, method: str, seed: int) -> tuple[str, list[dict], float]:
    """Predict val with one stage-3 model and score it: (method name, result rows, mIoU)."""
    ds = protocol_dataset(stage, "val")
    gt_dir = ds.gt_mask_dir
    name, _ = training_masks(stage, method, seed)
    model, cfg = load_segnet(DATA / "segnet" / method / f"s{seed}" / "model.pt")
    if in_worker():  # the jobs side by side already fill the cores: one CRF process each
        cfg = dataclasses.replace(cfg, crf_workers=1)
    final = DATA / "final" / method / f"s{seed}"
    work = fresh_dir(final)
    predict_folder(model, ds, work, cfg, progress=not in_worker(), on_image=report_progress)
    publish_dir(work, final)
    res = evaluate_masks(final, gt_dir, ds.ids, ds.num_classes,
                         exclude_classes=getattr(ds, "unused_classes", ()), class_names=ds.class_names)
    common = {"profile": stage.profile, "dataset": ds.name, "method": name, "stage": "final", "seed": seed,
              "backbone": cfg.backbone, **scored_row_fields(stage, "val", ds), **describe(stage, name)}
    rows = [make_row(metric="miou", value=res["miou"], **common)]
    for cls, iou in zip(ds.class_names, res["iou"]):
        rows.append(make_row(metric=f"iou:{cls}", value=iou, **common))
    return name, rows, res["miou"]


def main() -> int:
    with run_stage("evaluate_final") as stage:
        jobs = [(stage, method, seed) for method in stage.get("segnet.methods") for seed in stage.get("run_seeds")]
        n_val = len(protocol_dataset(stage, "val"))
        results = run_jobs(evaluate_one, jobs, stage.get("parallel", None), "evaluate_final", len(jobs) * n_val)
        rows, summary = [], {}
        for name, job_rows, miou in results:
            rows += job_rows
            summary.setdefault(name, []).append(miou)
        write_rows(RESULTS / "metrics" / "final.csv", rows)
        write_metrics(RESULTS / "metrics" / "final.json", stage.profile,
                      {"miou": {m: float(np.mean(v)) for m, v in summary.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
