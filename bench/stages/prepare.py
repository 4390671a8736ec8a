"""Stage `prepare`: make the dataset the profile names available and describe it.

synthetic/ci: generate the VOC-format synthetic dataset into data/prepared/dataset.
voc/coco: check the user's dataset at `data.root` (clear error saying what to download when it is
missing; never a fallback to synthetic) and record its split sizes.
Writes data/prepared/manifest.json (what downstream stages depend on) and results/metrics/prepare.json.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from weakclip.io import write_json

from ..results import write_metrics
from .common import DATA, REPO_ROOT, RESULTS, Stage, run_stage
from .splits import ROLES, check_score_within_fit, protocol_dataset

PREPARED = DATA / "prepared"


def generate_synthetic(out: Path, cfg: dict) -> None:
    from ..data.synthetic import main as synthetic_main

    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    synthetic_main(["--out", str(tmp), "--train", str(cfg["train"]), "--val", str(cfg["val"]),
                    "--pretrain", str(cfg["pretrain"]), "--dev", str(cfg.get("dev", 0)),
                    "--dev-val", str(cfg.get("dev_val", 0)), "--size", str(cfg["size"]), "--seed", str(cfg["seed"])])
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # the dataset appears whole or not at all


def list_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def prepare(stage: Stage) -> dict:
    data = stage.data_cfg
    root = REPO_ROOT / data["root"]
    if data["kind"] == "synthetic":
        generate_synthetic(root, data["synthetic"])
    splits, ids = {}, {}
    for role in ROLES:  # a missing real dataset fails here with what to download
        ds = protocol_dataset(stage, role)
        ids[role] = ds.ids
        splits[role] = {"split": ds.split, "n_images": len(ds), "ids_sha256_16": list_digest(ds.ids),
                        "ground_truth": None if role == "fit" else str(ds.gt_mask_dir)}
    check_score_within_fit(stage, ids["fit"], ids["score"])
    manifest = {"profile": stage.profile, "dataset": ds.name, "kind": data["kind"], "root": str(root),
                "num_classes": ds.num_classes, "class_names": ds.class_names, "splits": splits}
    write_json(PREPARED / "manifest.json", manifest)
    return manifest


def main() -> int:
    with run_stage("prepare") as stage:
        manifest = prepare(stage)
        write_metrics(RESULTS / "metrics" / "prepare.json", stage.profile,
                      {f"{role}:{v['split']}": v["n_images"] for role, v in manifest["splits"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
