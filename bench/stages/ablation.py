"""Stage `ablation@<step>`: one step of the paper's ablation ladder, trained and inferred at run seed 0.

    python -m bench.stages.ablation matching|prompt|adapter

matching = co-attention matching alone; prompt = + learnable prompt; adapter = + pyramid adapter
(the full model, + text-guided decoder, is the `paper` variant of train_weakclip). Writes
data/weakclip/ablation-<step>/s0/ (as train_weakclip lays out a run seed) and data/pseudo/ablation-<step>/.
"""
from __future__ import annotations

import sys

from .common import DATA, RESULTS, Stage, foreach_main, fresh_dir, publish_dir
from .parallel import train_per_seed
from .pseudo_masks import infer_variant
from .train_weakclip import train_variant


def run(stage: Stage, step: str) -> None:
    """Train the ladder's `step` model at run seed 0 and infer its pseudo masks; publish both with the log."""
    variant = f"ablation-{step}"
    models, logs = DATA / "weakclip" / variant, RESULTS / "logs" / f"weakclip-{variant}"
    pseudo = DATA / "pseudo" / variant
    fidelity = stage.get("weakclip.ablation_fidelity")
    # Through train_per_seed, as train_weakclip trains the `paper` model the ladder ends in: same threads.
    models_work, logs_work = train_per_seed(train_variant, stage, variant, [0], models, logs,
                                            stage.get("weakclip.train.iterations"), fidelity)
    pseudo_work = fresh_dir(pseudo)
    infer_variant(stage, variant, models_work / "s0", pseudo_work, fidelity)
    publish_dir(models_work, models)
    publish_dir(pseudo_work, pseudo)
    publish_dir(logs_work, logs)


def main(argv: list[str] | None = None) -> int:
    return foreach_main("ablation", "STEP", run, argv)


if __name__ == "__main__":
    sys.exit(main())
