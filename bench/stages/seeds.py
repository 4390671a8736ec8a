"""Stage `seeds@<source>`: seed CAMs and seed masks for every image of the fit split.

    python -m bench.stages.seeds clip_es|cam|folder

Writes data/seeds/<source>/cams/<id>.npy (the CAM contract: float16 (K, H, W), channel 0 the
source's own background score) and data/seeds/<source>/masks/<id>.png (argmax of those CAMs: the
seed masks every refiner and WeakCLIP start from). The folder is built under a temporary name and
renamed when complete, so an interrupted run leaves nothing a later stage could consume.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from baselines import SEED_SOURCES, TRAINERS
from baselines.common import load_cams
from weakclip.core.io import save_mask, write_json

from .common import DATA, REPO_ROOT, Stage, foreach_main, fresh_dir, publish_dir, seed_everything
from .splits import protocol_dataset


def masks_from_cams(cam_dir: Path, mask_dir: Path, ids: list[str]) -> None:
    for image_id in tqdm(ids, desc="seed masks", unit="img"):
        cams = load_cams(cam_dir / f"{image_id}.npy")
        save_mask(mask_dir / f"{image_id}.png", np.argmax(cams, axis=0).astype(np.uint8))


def source_config(stage: Stage, source: str, class_names: list[str]) -> dict:
    cfg = dict(stage.get(f"seeds.{source}", {}) or {})
    if source == "clip_es":
        cfg.update(class_names=tuple(class_names), arch=stage.get("clip.arch"),
                   weights=str(REPO_ROOT / stage.get("clip.weights")))
    elif source == "folder":
        path = cfg.pop("path", None)
        if not path:
            raise ValueError("params.yaml: seeds.folder.path must name a folder of seed masks or CAMs")
        cfg.update(src_dir=str(REPO_ROOT / path), num_classes=len(class_names))
    return cfg


def run(stage: Stage, source: str) -> dict:
    if source not in SEED_SOURCES:
        raise SystemExit(f"unknown seed source {source!r}; known: {sorted(SEED_SOURCES)}")
    seed_everything(int(stage.get("seeds.seed", 0)))
    ds = protocol_dataset(stage, "fit")
    final = DATA / "seeds" / source
    work = fresh_dir(final)
    cfg = source_config(stage, source, ds.class_names)
    if source in TRAINERS:  # e.g. cam: fit the image-level classifier first
        fit_cfg = {k: v for k, v in cfg.items() if k != "generate"}
        fit_cfg.setdefault("num_classes", ds.num_classes)
        TRAINERS[source](ds, fit_cfg, str(work / "model.pt"))
        cfg = {"checkpoint": str(work / "model.pt"), **dict(cfg.get("generate", {}))}
    summary = SEED_SOURCES[source](ds, str(work / "cams"), **cfg)
    masks_from_cams(work / "cams", work / "masks", ds.ids)
    write_json(work / "summary.json", {"source": source, "split": ds.split, **summary})
    publish_dir(work, final)
    return summary


def main(argv: list[str] | None = None) -> int:
    return foreach_main("seeds", "SOURCE", run, argv)


if __name__ == "__main__":
    sys.exit(main())
