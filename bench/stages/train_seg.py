"""Stage `train_seg@<method>-<seed>` (stage 3): DeepLab-LargeFOV trained on one method's pseudo masks.

    python -m bench.stages.train_seg seeds|<refiner>|weakclip_release|weakclip_paper

The same network, schedule and seeds for every method, so final mIoU differences come from the
pseudo masks alone. Once per run seed (WeakCLIP's masks of the same run seed): writes
data/segnet/<method>/s<seed>/model.pt, and the training logs to results/logs/segnet-<method>/.
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from baselines.segnet import SegNetConfig, train_segnet

from ..data.transforms import TorchSegDataset, TrainTransform
from ..provenance import environment
from .common import DATA, REPO_ROOT, RESULTS, Stage, foreach_main, publish_dir, seed_everything
from .methods import training_masks
from .parallel import in_worker, report_progress, train_per_seed
from .splits import protocol_dataset


def segnet_config(stage: Stage, num_classes: int, run_seed: int) -> SegNetConfig:
    section = dict(stage.get("segnet.config"))
    if section.get("weights"):
        section["weights"] = str(REPO_ROOT / section["weights"])
    cfg = SegNetConfig.from_dict(section)
    return dataclasses.replace(cfg, num_classes=num_classes, seed=cfg.seed + run_seed)


def train_one(stage: Stage, method: str, run_seed: int, out: Path, log_path: Path) -> dict:
    seed_everything(run_seed)
    _, masks = training_masks(stage, method, run_seed)
    ds = protocol_dataset(stage, "fit", mask_dir=masks)
    cfg = segnet_config(stage, ds.num_classes, run_seed)
    transform = TrainTransform(crop_size=cfg.crop_size, scale_range=cfg.scale_range, mean=cfg.mean, std=cfg.std,
                               **stage.get("segnet.transform"))
    data = TorchSegDataset(ds, transform, cache_mb=stage.get("cache_mb", 0))
    summary = train_segnet(cfg, data, out, progress=not in_worker(), on_iteration=lambda _: report_progress(),
                           provenance=environment())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "train_log.jsonl", log_path)
    (out / "last.pt").unlink(missing_ok=True)  # resumable state is not a pipeline output
    return summary


def run(stage: Stage, method: str) -> None:
    models, logs = DATA / "segnet" / method, RESULTS / "logs" / f"segnet-{method}"
    models_work, logs_work = train_per_seed(train_one, stage, method, stage.get("run_seeds"), models, logs,
                                            stage.get("segnet.config.iterations"))
    publish_dir(models_work, models)
    publish_dir(logs_work, logs)


def main(argv: list[str] | None = None) -> int:
    return foreach_main("train_seg", "METHOD", run, argv)


if __name__ == "__main__":
    sys.exit(main())
