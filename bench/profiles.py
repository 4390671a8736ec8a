"""Switch the active profile: `python -m bench.profiles use NAME [--data-root P] [--clip-weights P] [--seg-weights P]`.

A profile is a complete params file under profiles/; `use` writes it to params.yaml (the file
DVC reads), filling in the local paths of data and weights for the real profiles. Missing data
or weights for a real profile is an error that says what to download and where to put it; there
is never a silent fallback to synthetic data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from weakclip.io import write_text

from .provenance import REPO_ROOT

PROFILES_DIR = REPO_ROOT / "profiles"

WHAT_TO_GET = {
    "data.root": {
        "voc": "PASCAL VOC 2012 (VOCdevkit/VOC2012: JPEGImages, SegmentationClass, ImageSets/Segmentation) "
               "plus SBD's SegmentationClassAug and train_aug.txt",
        "coco": "COCO 2014 train/val images converted to VOC-style index masks (JPEGImages/, SegmentationClass/, "
                "ImageSets/Segmentation/{train,val}.txt, pixel values = COCO category ids)",
    },
    "clip.weights": "the CLIP ViT-B/16 checkpoint (OpenAI's ViT-B-16.pt or an open_clip ViT-B-16 state dict)",
    "segnet.config.weights": "ImageNet weights for the stage-3 backbone (a timm resnet101 state dict)",
    "seeds.folder.path": "the seed masks to refine (e.g. published MCTformer-V2 masks as <id>.png)",
}
FLAGS = {"data.root": "--data-root", "clip.weights": "--clip-weights", "segnet.config.weights": "--seg-weights",
         "seeds.folder.path": "--seed-masks"}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _set(params: dict, dotted: str, value) -> None:
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _get(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def validate_paths(params: dict) -> list[str]:
    """Problems with the external paths a real profile needs (empty list when all are present)."""
    problems = []
    for key in params.get("required_paths", []):
        value = _get(params, key)
        if value is None or not Path(str(value)).expanduser().exists():
            what = WHAT_TO_GET.get(key, key)
            if isinstance(what, dict):
                what = what.get(params["profile"], next(iter(what.values())))
            problems.append(f"{key} = {value!r} does not exist: download {what} and pass its path "
                            f"(`python -m bench.profiles use {params['profile']} {FLAGS.get(key, key)} PATH`)")
    return problems


def use(name: str, overrides: dict[str, str], out: Path = REPO_ROOT / "params.yaml") -> dict:
    src = PROFILES_DIR / f"{name}.yaml"
    if not src.is_file():
        raise SystemExit(f"unknown profile {name!r}; available: {', '.join(available_profiles())}")
    params = yaml.safe_load(src.read_text())
    for key, value in overrides.items():
        if value is not None:
            _set(params, key, str(Path(value).expanduser().resolve()))
    problems = validate_paths(params)
    if problems:
        raise SystemExit("profile {!r} cannot run here:\n  - {}".format(name, "\n  - ".join(problems)))
    header = f"# Active profile: {name} (written by `python -m bench.profiles use {name}` from profiles/{name}.yaml)\n"
    write_text(out, header + yaml.safe_dump(params, sort_keys=False))
    return params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("use", help="make NAME the active profile (writes params.yaml)")
    u.add_argument("name")
    u.add_argument("--data-root", help="dataset root for voc/coco")
    u.add_argument("--clip-weights", help="local CLIP ViT-B/16 weights file")
    u.add_argument("--seg-weights", help="local ImageNet weights for the stage-3 backbone")
    u.add_argument("--seed-masks", help="folder of seed masks (<id>.png) for the `folder` seed source")
    sub.add_parser("list", help="list the profiles")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(available_profiles()))
        return 0
    use(args.name, {"data.root": args.data_root, "clip.weights": args.clip_weights,
                    "segnet.config.weights": args.seg_weights, "seeds.folder.path": args.seed_masks})
    print(f"params.yaml now holds the {args.name!r} profile; run `dvc repro`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
