"""Stage `train_weakclip@<variant>-<seed>`: train WeakCLIP on the main seed masks.

    python -m bench.stages.train_weakclip release|paper

`release` and `paper` are the two fidelity modes (docs/method.md: unchained vs chained decoder
layers, frozen vs trainable pyramid adapter). Trains once per run seed (params `run_seeds`) and writes
data/weakclip/<variant>/s<seed>/{model.pt, train_log.jsonl, summary.json}; the training logs are
copied to results/logs/weakclip-<variant>/ for the report.
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from weakclip.core.config import config_from
from weakclip.core.io import write_json
from weakclip.losses import WeakCLIPLoss
from weakclip.model import WeakCLIP, WeakCLIPConfig
from weakclip.train import TrainConfig, train

from ..data.transforms import TorchSegDataset, TrainTransform
from .common import DATA, REPO_ROOT, RESULTS, Stage, foreach_main, publish_dir, seed_everything
from .parallel import in_worker, report_progress, train_per_seed
from .splits import protocol_dataset

FIDELITIES = ("release", "paper")


def model_config(stage: Stage, variant: str, ablation_fidelity: str | None = None) -> WeakCLIPConfig:
    """The params' model section + the profile's CLIP + the variant's switches.

    variant: "release" | "paper" (fidelity modes), or "ablation-<step>" (a step of the paper's ablation
    ladder, in `ablation_fidelity`: the ablation stage passes `weakclip.ablation_fidelity`, a key the
    other stages neither read nor declare)."""
    section = dict(stage.get("weakclip.model"))
    section.update(arch=stage.get("clip.arch"), weights=str(REPO_ROOT / stage.get("clip.weights")))
    cfg = WeakCLIPConfig.from_dict(section)
    if variant in FIDELITIES:
        return dataclasses.replace(cfg, fidelity=variant)
    if variant.startswith("ablation-"):
        step = variant.removeprefix("ablation-")
        if ablation_fidelity is None:
            raise ValueError(f"WeakCLIP variant {variant!r} needs the ablation's fidelity (weakclip.ablation_fidelity)")
        cfg = dataclasses.replace(cfg, fidelity=ablation_fidelity)
        return cfg.with_step(step if step == "matching" else f"+{step}")
    raise SystemExit(f"unknown WeakCLIP variant {variant!r}: expected one of {FIDELITIES} or ablation-<step>")


def seed_mask_dataset(stage: Stage):
    masks = DATA / "seeds" / stage.get("seeds.main") / "masks"
    return protocol_dataset(stage, "fit", mask_dir=masks)


def train_variant(stage: Stage, variant: str, run_seed: int, out: Path, log_path: Path,
                  ablation_fidelity: str | None = None, transform_overrides: dict | None = None) -> dict:
    seed_everything(run_seed)
    ds = seed_mask_dataset(stage)
    model = WeakCLIP(model_config(stage, variant, ablation_fidelity), ds.class_names)
    train_cfg = config_from(TrainConfig, stage.get("weakclip.train"))
    train_cfg = dataclasses.replace(train_cfg, seed=train_cfg.seed + run_seed, progress=not in_worker())
    transform = TrainTransform(**{**stage.get("weakclip.transform"), **(transform_overrides or {})},
                               mean=model.cfg.image_mean, std=model.cfg.image_std)
    loss_params = dict(stage.get("weakclip.loss"))
    if in_worker():  # a worker has one core's share: its CRFs run in-process, not in a pool of their own
        loss_params["crf_workers"] = 1
    loss = WeakCLIPLoss(**loss_params)
    try:
        data = TorchSegDataset(ds, transform, cache_mb=stage.get("cache_mb", 0))
        summary = train(model, loss, data, train_cfg, out, resume=False, callback=lambda it, terms: report_progress())
    finally:
        loss.crf.close()
    summary["parameters"] = model.count_parameters()
    summary["model_config"] = model.cfg.to_dict()
    write_json(out / "summary.json", summary)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "train_log.jsonl", log_path)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # resumable state is not a pipeline output
    return summary


def run(stage: Stage, variant: str) -> None:
    models, logs = DATA / "weakclip" / variant, RESULTS / "logs" / f"weakclip-{variant}"
    models_work, logs_work = train_per_seed(train_variant, stage, variant, stage.get("run_seeds"), models, logs,
                                            stage.get("weakclip.train.iterations"))
    publish_dir(models_work, models)
    publish_dir(logs_work, logs)


def main(argv: list[str] | None = None) -> int:
    return foreach_main("train_weakclip", "VARIANT", run, argv)


if __name__ == "__main__":
    sys.exit(main())
