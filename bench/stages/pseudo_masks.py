"""Stage `pseudo_masks@<variant>`: WeakCLIP's pseudo masks for every image of the fit split.

    python -m bench.stages.pseudo_masks release|paper

Multi-scale + flip sliding-window probabilities, dense CRF on the full image, argmax (background is
class 0 of the softmax; no threshold). For every run seed's model, writes data/pseudo/<variant>/s<seed>/<id>.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

from weakclip.core.config import config_from
from weakclip.core.io import write_json
from weakclip.infer import InferConfig, pseudo_masks
from weakclip.model import WeakCLIP
from weakclip.train import load_model_weights

from .common import DATA, Stage, foreach_main, fresh_dir, publish_dir
from .splits import protocol_dataset
from .train_weakclip import model_config


def infer_variant(stage: Stage, variant: str, model_dir: Path, out: Path, ablation_fidelity: str | None = None,
                  infer_overrides: dict | None = None) -> dict:
    ds = protocol_dataset(stage, "fit")
    model = WeakCLIP(model_config(stage, variant, ablation_fidelity), ds.class_names)
    load_model_weights(model, model_dir / "model.pt")
    cfg = config_from(InferConfig, {**stage.get("weakclip.infer"), **(infer_overrides or {})},
                    mean=model.cfg.image_mean, std=model.cfg.image_std)
    summary = pseudo_masks(model, ds, out, cfg, crf=stage.get("weakclip.crf"))
    write_json(out / "summary.json", {"variant": variant, "model": str(model_dir), **summary})
    return summary


def run(stage: Stage, variant: str) -> None:
    final = DATA / "pseudo" / variant
    work = fresh_dir(final)
    for seed in stage.get("run_seeds"):
        infer_variant(stage, variant, DATA / "weakclip" / variant / f"s{seed}", work / f"s{seed}")
    publish_dir(work, final)


def main(argv: list[str] | None = None) -> int:
    return foreach_main("pseudo_masks", "VARIANT", run, argv)


if __name__ == "__main__":
    sys.exit(main())
