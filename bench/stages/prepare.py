"""Stage `prepare`: make the dataset the profile names available and describe it.

synthetic/ci: generate the VOC-format synthetic dataset into data/prepared/dataset.
voc/coco/voc-mini: check the user's dataset at `data.root` (clear error saying what to download when it is
missing; never a fallback to synthetic) and record its split sizes. A profile that needs split lists the
dataset lacks (voc-mini's CI-sized splits, `data.make_lists`) gets them written under data/prepared/lists,
never into the dataset's own folder.
Writes data/prepared/manifest.json (what downstream stages depend on) and results/metrics/prepare.json.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from weakclip.core.io import write_json, write_text

from ..data import build_dataset
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


def spread(ids: list[str], n: int) -> list[str]:
    """n ids spread evenly over a list (VOC's lists are sorted by year and number: every k-th id samples them all)."""
    if n > len(ids):
        raise ValueError(f"params data.make_lists asks for {n} ids of a list that has {len(ids)}")
    return ids[:: max(1, len(ids) // n)][:n]


def make_lists(data: dict) -> dict[str, int]:
    """Write the profile's derived split lists (params data.make_lists: name -> {from: list, n: count}) into
    data.lists_dir, in order (a list may be drawn from one written before it). Returns their sizes."""
    out = REPO_ROOT / data["lists_dir"]
    sizes = {}
    for name, spec in data["make_lists"].items():
        source = build_dataset({**data, "with_masks": False}, spec["from"]).ids
        ids = spread(source, int(spec["n"]))
        write_text(out / f"{name}.txt", "".join(f"{i}\n" for i in ids))
        sizes[name] = len(ids)
    return sizes


def prepare(stage: Stage) -> dict:
    data = stage.data_cfg
    root = REPO_ROOT / data["root"]
    if data["kind"] == "synthetic":
        generate_synthetic(root, data["synthetic"])
    if data.get("make_lists"):  # lists the dataset does not have (voc-mini's CI-sized splits), under data/
        make_lists(data)
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
