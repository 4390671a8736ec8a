"""Stage `ablation@<step>`: one step of the paper's ablation ladder, trained and inferred at run seed 0.

    python -m bench.stages.ablation matching|prompt|adapter

matching = co-attention matching alone; prompt = + learnable prompt; adapter = + pyramid adapter
(the full model, + text-guided decoder, is the `paper` variant of train_weakclip). Writes
data/weakclip/ablation-<step>/ and data/pseudo/ablation-<step>/.
"""
from __future__ import annotations

import sys

from .common import DATA, RESULTS, fresh_dir, publish_dir, run_stage
from .parallel import run_jobs
from .pseudo_masks import infer_variant
from .train_weakclip import train_variant


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m bench.stages.ablation STEP")
    variant = f"ablation-{argv[0]}"
    with run_stage(f"ablation@{argv[0]}") as stage:
        model_final, pseudo_final = DATA / "weakclip" / variant, DATA / "pseudo" / variant
        model_work = fresh_dir(model_final)
        logs = RESULTS / "logs" / f"weakclip-{variant}"
        logs_work = fresh_dir(logs)
        fidelity = stage.get("weakclip.ablation_fidelity")
        # Through run_jobs, as train_weakclip trains the `paper` model the ladder ends in: same threads.
        run_jobs(train_variant, [(stage, variant, 0, model_work, logs_work / "s0.jsonl", fidelity)],
                 stage.get("parallel", None), f"ablation@{argv[0]}", stage.get("weakclip.train.iterations"))
        pseudo_work = fresh_dir(pseudo_final)
        infer_variant(stage, variant, model_work, pseudo_work, fidelity)
        publish_dir(model_work, model_final)
        publish_dir(pseudo_work, pseudo_final)
        publish_dir(logs_work, logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
