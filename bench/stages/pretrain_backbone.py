"""Stage `pretrain_backbone`: the weights stage 3 starts from.

synthetic/ci (`segnet.pretrain` set): no ImageNet weights can be downloaded here, so the stage-3 backbone is
pre-trained as a multi-label image classifier on the synthetic pre-training split (disjoint from train and
val) and written to `segnet.config.weights` under data/backbone/; its classification mAP on the val images'
labels is measured against chance (baselines/segnet/pretrain.py says why stage 3 needs it).
voc/coco (`segnet.pretrain: null`): the user's local ImageNet weights are loaded into the backbone once (a bad
path or a file for another network fails here, with what to download) and recorded with their SHA-256;
nothing is trained.
"""
from __future__ import annotations

import sys
from pathlib import Path

from baselines.segnet import SegNetConfig, build_segnet
from baselines.segnet.pretrain import pretrain_backbone
from weakclip.core.io import write_json

from ..data import build_dataset
from ..results import make_row, write_metrics, write_rows
from .common import DATA, REPO_ROOT, RESULTS, Stage, fresh_dir, publish_dir, rel, run_stage, seed_everything
from .pretrain_clip import flat_scalars, sha256

BACKBONE_DIR = DATA / "backbone"


def weights_target(weights: str | None, out_dir: Path = BACKBONE_DIR) -> Path:
    """The file the pre-training writes: `segnet.config.weights`, which must lie directly in out_dir
    (data/backbone/, the stage's DVC output, so train_seg depends on it)."""
    if not weights:
        raise ValueError("params.yaml: segnet.pretrain is set, so segnet.config.weights must name the file it "
                         "writes, e.g. data/backbone/resnet10t.pth")
    target = (REPO_ROOT / weights).resolve()
    if target.parent != out_dir.resolve():
        raise ValueError(f"params.yaml: segnet.config.weights = {weights!r} must be a file directly in "
                         f"{rel(out_dir)}/ when segnet.pretrain is set (the stage's output)")
    return target


def run(stage: Stage, out_dir: Path = BACKBONE_DIR) -> dict:
    """Pre-train or check the stage-3 backbone; out_dir is published whole or not at all."""
    seg = stage.get("segnet.config")
    pretrain = stage.get("segnet.pretrain", None)
    target = weights_target(seg.get("weights"), out_dir) if pretrain else None  # checked before any work
    work = fresh_dir(out_dir)
    if pretrain:
        options = dict(pretrain)
        split, eval_split = options.pop("split"), options.pop("eval_split")
        seed_everything(int(options.get("seed", 0)))
        pretrain_ds = build_dataset(stage.data_cfg, split)
        eval_ds = build_dataset(stage.data_cfg, eval_split)
        cfg = {**options, "backbone": seg["backbone"], "num_classes": pretrain_ds.num_classes}
        metrics = pretrain_backbone(pretrain_ds, eval_ds, cfg, work / target.name)
        metrics.update(split=split, eval_split=eval_split)
    elif seg.get("weights"):
        weights = REPO_ROOT / seg["weights"]
        build_segnet(SegNetConfig(backbone=seg["backbone"], weights=str(weights)))  # validates the file
        metrics = {"weights": str(weights), "sha256": sha256(weights)}
    else:
        metrics = {"weights": None}  # random init, said in backbone.json
    write_json(work / "backbone.json", {"backbone": seg["backbone"], "weights": seg.get("weights"),
                                        "metrics": metrics})
    publish_dir(work, out_dir)
    return metrics


def main() -> int:
    with run_stage("pretrain_backbone") as stage:
        metrics = run(stage)
        scalars = flat_scalars({k: metrics[k] for k in ("classification", "train") if k in metrics})
        write_metrics(RESULTS / "metrics" / "pretrain_backbone.json", stage.profile, scalars)
        method = f"backbone:{stage.get('segnet.config.backbone')}"
        rows = [make_row(stage.profile, stage.dataset_name, method, "pretrain_backbone",
                         metrics["eval_split"] if key.startswith("classification.") else metrics["split"],
                         key, value) for key, value in scalars.items()]
        write_rows(RESULTS / "metrics" / "pretrain_backbone.csv", rows or [
            make_row(stage.profile, stage.dataset_name, method, "pretrain_backbone", "",
                     "pretrained_weights_loaded", int(metrics["weights"] is not None))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
