"""Stage `refine@<refiner>`: one baseline refiner over the main seed source's CAMs.

    python -m bench.stages.refine threshold|crf|caa|par|random_walk

Writes data/refined/<refiner>/masks/<id>.png (255 where the refiner is unsure). Trained refiners
(random_walk) fit on the fit split's images and seeds first; every fit image gets a mask. Every refiner gets the same seeds.
"""
from __future__ import annotations

import sys

from baselines import REFINERS, TRAINERS, refine_folder
from weakclip.core.io import write_json

from .common import DATA, REPO_ROOT, Stage, foreach_main, fresh_dir, publish_dir, seed_everything
from .splits import protocol_dataset


def run(stage: Stage, refiner: str) -> dict:
    if refiner not in REFINERS:
        raise SystemExit(f"unknown refiner {refiner!r}; known: {sorted(REFINERS)}")
    seed_everything(int(stage.get("seeds.seed", 0)))
    ds = protocol_dataset(stage, "fit")
    cam_dir = DATA / "seeds" / stage.get("seeds.main") / "cams"
    final = DATA / "refined" / refiner
    work = fresh_dir(final)
    cfg = dict(stage.get(f"refine.{refiner}", {}) or {})
    workers = cfg.pop("workers", None)
    if refiner == "caa":  # CAA needs the same CLIP as the seeds
        cfg.update(arch=stage.get("clip.arch"), weights=str(REPO_ROOT / stage.get("clip.weights")))
    if refiner in TRAINERS:
        fit_cfg = dict(cfg.pop("fit", {}) or {})
        fit_cfg.setdefault("num_classes", ds.num_classes)
        TRAINERS[refiner](ds, str(cam_dir), fit_cfg, str(work / "model.pt"))
        cfg["checkpoint"] = str(work / "model.pt")
    summary = refine_folder(ds, cam_dir, work / "masks", refiner, cfg, workers=workers)
    write_json(work / "summary.json", {"refiner": refiner, "seeds": stage.get("seeds.main"), **summary})
    publish_dir(work, final)
    return summary


def main(argv: list[str] | None = None) -> int:
    return foreach_main("refine", "REFINER", run, argv)


if __name__ == "__main__":
    sys.exit(main())
