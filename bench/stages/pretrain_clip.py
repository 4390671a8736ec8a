"""Stage `pretrain_clip`: the CLIP towers the rest of the pipeline adapts.

synthetic/ci: no pretrained CLIP can be downloaded here, so a tiny open_clip CLIP is trained
contrastively on the synthetic pre-training split (captions from the labels) and its zero-shot
classification of the val images is measured against chance — WeakCLIP has nothing to adapt unless
that score is clearly above chance.
voc/coco: the user's local ViT-B/16 checkpoint is loaded once (a bad path or a mismatched checkpoint
fails here, with what to download) and recorded with its SHA-256; nothing is trained.
voc-mini (`clip.random_init`): a seeded random ViT-B/16 is written in the checkpoint's place (no real weights
exist on the CI machines), then loaded the same way.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from weakclip.clip_towers import build_clip
from weakclip.core.config import config_from
from weakclip.core.io import atomic_path, write_json, write_text
from weakclip.pretrain import PretrainConfig, pretrain_clip

from ..results import make_row, write_metrics, write_rows
from .common import DATA, REPO_ROOT, RESULTS, Stage, run_stage

CLIP_DIR = DATA / "clip"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def flat_scalars(tree: dict, prefix: str = "") -> dict:
    """{'zero_shot': {'map': 0.3}} -> {'zero_shot.map': 0.3}; only numbers are kept."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_scalars(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def write_random_clip(arch: str, path: Path, seed: int) -> None:
    """voc-mini: no real CLIP weights exist on the CI machines, so this writes a seeded random ViT-B/16 in the
    form of OpenAI's checkpoint (fp16 tensors, QuickGELU: what a user's ViT-B-16.pt is), once, for every later
    stage to load as it would load real weights. The file must be this stage's output (data/clip/)."""
    if path.resolve().parent != CLIP_DIR.resolve():
        raise ValueError(f"params clip.weights = {path} must lie directly in {CLIP_DIR} when clip.random_init "
                         "is set (the pretrain_clip stage writes it there)")
    torch.manual_seed(seed)
    model = build_clip(arch, None, quick_gelu=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def run(stage: Stage) -> dict:
    clip_cfg = stage.get("clip")
    weights = REPO_ROOT / clip_cfg["weights"]
    if clip_cfg["arch"] == "tiny":
        cfg = config_from(PretrainConfig, clip_cfg["pretrain"])
        (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
        metrics = pretrain_clip(REPO_ROOT / stage.data_cfg["root"], weights, cfg,
                                log_path=RESULTS / "logs" / "pretrain_clip.jsonl")
    else:
        if clip_cfg.get("random_init") is not None:
            write_random_clip(clip_cfg["arch"], weights, int(clip_cfg["random_init"].get("seed", 0)))
        build_clip(clip_cfg["arch"], str(weights))  # validates the checkpoint against the architecture
        metrics = {"weights": str(weights), "sha256": sha256(weights)}
        # the stage's declared log: one line saying nothing was trained (the real CLIP is used as given)
        write_text(RESULTS / "logs" / "pretrain_clip.jsonl",
                   json.dumps({"trained": False, "arch": clip_cfg["arch"], **metrics}) + "\n")
    write_json(CLIP_DIR / "clip.json", {"arch": clip_cfg["arch"], "weights": str(weights), "metrics": metrics})
    return metrics


def main() -> int:
    with run_stage("pretrain_clip") as stage:
        metrics = run(stage)
        scalars = flat_scalars({k: metrics[k] for k in ("zero_shot", "train") if k in metrics})
        write_metrics(RESULTS / "metrics" / "pretrain_clip.json", stage.profile, scalars)
        eval_split = metrics.get("config", {}).get("eval_split", "val")
        rows = [make_row(stage.profile, stage.dataset_name, f"clip:{stage.get('clip.arch')}", "pretrain_clip",
                         eval_split if key.startswith("zero_shot.") else "pretrain", key, value)
                for key, value in scalars.items()]
        write_rows(RESULTS / "metrics" / "pretrain_clip.csv", rows or [
            make_row(stage.profile, stage.dataset_name, f"clip:{stage.get('clip.arch')}", "pretrain_clip", "",
                     "pretrained_weights_loaded", 1)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
