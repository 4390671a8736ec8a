"""Stage `deviation@<name>`: the synthetic profile's departures from the paper's recipe, undone one at a time.

    python -m bench.stages.deviation no_labels|voc_scales

The synthetic profile departs from the VOC recipe where its data require it (README, "Profiles"); a reader
should see what each departure costs on the scored split, not only on dev. Each deviation here is the release
model at run seed 0 with one setting put back to the paper's:

    no_labels    inference without the image-level labels (restrict_to_labels: false), as WeakCLIP on VOC:
                 the trained release model of train_weakclip, run seed 0, inferred again
    voc_scales   training at the VOC recipe's random scales 0.5-2.0 (weakclip.transform.scale_range), trained
                 at run seed 0 and inferred as the release model is

Writes data/pseudo/deviation-<name>/ (scored as `weakclip[release/<name>]`), data/weakclip/deviation-<name>/
(the trained model in s0/, or a note naming the model it reuses) and results/logs/weakclip-deviation-<name>/.
"""
from __future__ import annotations

import sys

from weakclip.core.io import write_json

from .common import DATA, RESULTS, Stage, foreach_main, fresh_dir, publish_dir, rel
from .parallel import train_per_seed
from .pseudo_masks import infer_variant
from .train_weakclip import train_variant

# name -> (the training transform's overrides, or None to reuse the release model; inference overrides)
DEVIATIONS: dict[str, tuple[dict | None, dict]] = {
    "no_labels": (None, {"restrict_to_labels": False}),
    "voc_scales": ({"scale_range": [0.5, 2.0]}, {}),
}


def run(stage: Stage, name: str) -> None:
    """Train (or reuse) the deviation's model, infer its pseudo masks; publish model folder, masks and logs
    together. A reused model's folder holds only a note naming the model it reuses."""
    if name not in DEVIATIONS:
        raise SystemExit(f"unknown deviation {name!r}; known: {sorted(DEVIATIONS)}")
    transform, infer = DEVIATIONS[name]
    variant = f"deviation-{name}"
    models, logs, pseudo = DATA / "weakclip" / variant, RESULTS / "logs" / f"weakclip-{variant}", DATA / "pseudo" / variant
    if transform is None:
        models_work, logs_work = fresh_dir(models), fresh_dir(logs)
        model_dir = DATA / "weakclip" / "release" / "s0"
        note = {"model": rel(model_dir), "changed": {"infer": infer}}
        write_json(models_work / "reuses.json", note)
        # the log folder is a git-tracked output: an empty one would vanish from a clone and re-run the stage
        write_json(logs_work / "reuses.json", note)
    else:
        # one training: on all the stage's threads, not the one thread of a side-by-side run seed (the
        # release model it is compared with was trained at 1 thread; the difference is rounding, ~40 s faster)
        models_work, logs_work = train_per_seed(train_variant, stage, "release", [0], models, logs,
                                                stage.get("weakclip.train.iterations"), None, transform,
                                                parallel={"jobs": 1, "threads": None})
        model_dir = models_work / "s0"
    pseudo_work = fresh_dir(pseudo)
    infer_variant(stage, "release", model_dir, pseudo_work, infer_overrides=infer)
    publish_dir(models_work, models)
    publish_dir(pseudo_work, pseudo)
    publish_dir(logs_work, logs)


def main(argv: list[str] | None = None) -> int:
    return foreach_main("deviation", "NAME", run, argv)


if __name__ == "__main__":
    sys.exit(main())
