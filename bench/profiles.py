"""Switch the active profile, or check the active one.

    python -m bench.profiles use NAME [--data-root P] [--clip-weights P] [--seg-weights P] [--cam-weights P]
                                      [--affinity-weights P] [--seed-masks P]
    python -m bench.profiles check [--params FILE]
    python -m bench.profiles list

A profile is a complete params file under profiles/; `use` writes it to params.yaml (the file
DVC reads), filling in the local paths of data and weights for the real profiles. Missing data
or weights for a real profile is an error that says what to download and where to put it; there
is never a silent fallback to synthetic data. Before writing, a real profile's whole setup is
validated (bench.setup_check: splits, images, masks, seed masks, CLIP and ImageNet weights): any
problem is an error listing them all, and params.yaml is left untouched. `check` validates the
active params.yaml the same way (after a hand edit).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from weakclip.core.io import write_text

from .provenance import REPO_ROOT
from .setup_check import FLAGS, SetupReport, check_setup, get_param, resolve_path

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
    "seeds.cam.backbone_weights": "ImageNet weights for the `cam` classifier's ResNet-50, as in IRN "
                                  "(a timm or torchvision resnet50 state dict)",
    "refine.random_walk.fit.backbone_weights": "ImageNet weights for the random-walk affinity net's "
                                               "ResNet-50, as in IRN (a timm or torchvision resnet50 "
                                               "state dict)",
    "seeds.folder.path": "the seed masks to refine (e.g. published MCTformer-V2 masks as <id>.png)",
}
# Flag of each path `use` fills in -> the parameter it sets.
OVERRIDES = {flag.removeprefix("--").replace("-", "_"): key for key, flag in FLAGS.items()}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _set(params: dict, dotted: str, value) -> None:
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _missing_paths(params: dict) -> list[str]:
    """The required_paths keys whose path is unset or does not exist."""
    return [key for key in params.get("required_paths", [])
            if get_param(params, key) is None or not resolve_path(get_param(params, key)).exists()]


def validate_paths(params: dict) -> list[str]:
    """Problems with the external paths a real profile needs (empty list when all are present)."""
    problems = []
    profile = params.get("profile", "NAME")
    for key in _missing_paths(params):
        what = WHAT_TO_GET.get(key, key)
        if isinstance(what, dict):
            what = what.get(profile, next(iter(what.values())))
        problems.append(f"{key} = {get_param(params, key)!r} does not exist: download {what} and pass its "
                        f"path (`python -m bench.profiles use {profile} {FLAGS.get(key, key)} PATH`)")
    return problems


def setup_problems(params: dict, progress: bool = True, passed=()) -> tuple[list[str], SetupReport]:
    """validate_paths + check_setup: every problem of the setup, each missing path reported once (by
    validate_paths, which says what to download). `passed`: parameters set from flags, which must exist too."""
    problems = validate_paths(params)
    report = check_setup(params, progress=progress, external={*params.get("required_paths", []), *passed})
    return problems + report.problem_lines(skip_keys=set(_missing_paths(params))), report


def _problem_exit(what: str, problems: list[str]) -> SystemExit:
    return SystemExit("{}:\n  - {}".format(what, "\n  - ".join(problems)))


def use(name: str, overrides: dict[str, str], out: Path = REPO_ROOT / "params.yaml",
        progress: bool = True) -> dict:
    """Write profile `name` with `overrides` ({dotted key: path}) to `out`; a real profile (one with
    required_paths) is validated first and, on any problem, nothing is written (SystemExit lists them)."""
    src = PROFILES_DIR / f"{name}.yaml"
    if not src.is_file():
        raise SystemExit(f"unknown profile {name!r}; available: {', '.join(available_profiles())}")
    params = yaml.safe_load(src.read_text())
    passed = [key for key, value in overrides.items() if value is not None]
    for key in passed:
        _set(params, key, str(Path(overrides[key]).expanduser().resolve()))
    if "seeds.folder.path" in passed:  # seed masks given: they are the seeds (the paper's MCTformer-V2 masks)
        _set(params, "seeds.main", "folder")
        sources = list(get_param(params, "seeds.sources") or [])
        _set(params, "seeds.sources", sources + ["folder"] * ("folder" not in sources))
    report = None
    if params.get("required_paths"):  # the synthetic profiles generate their data and weights
        problems, report = setup_problems(params, progress=progress, passed=passed)
        if problems:
            raise _problem_exit(f"profile {name!r} cannot run here ({out} not written)", problems)
    header = (f"# Active profile: {name} (written by `python -m bench.profiles use {name}` "
              f"from profiles/{name}.yaml)\n")
    write_text(out, header + yaml.safe_dump(params, sort_keys=False))
    if report is not None:
        print(report.summary())
    return params


def check(path: Path = REPO_ROOT / "params.yaml", progress: bool = True) -> SetupReport | None:
    """Validate a params file as `use` does (after a hand edit); SystemExit listing the problems."""
    if not Path(path).is_file():
        raise SystemExit(f"params file not found: {path}")
    params = yaml.safe_load(Path(path).read_text()) or {}
    if not params.get("required_paths"):
        print(f"{path}: profile {params.get('profile')!r} generates its data and weights; nothing to check")
        return None
    problems, report = setup_problems(params, progress=progress)
    if problems:
        raise _problem_exit(f"{path} cannot run here", problems)
    print(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("use", help="make NAME the active profile (writes params.yaml)")
    u.add_argument("name")
    u.add_argument("--data-root", help="dataset root for voc/coco")
    u.add_argument("--clip-weights", help="local CLIP ViT-B/16 weights file")
    u.add_argument("--seg-weights", help="local ImageNet weights for the stage-3 backbone")
    u.add_argument("--cam-weights", help="local ImageNet weights for the `cam` classifier's ResNet-50")
    u.add_argument("--affinity-weights",
                   help="local ImageNet weights for the random-walk affinity net's ResNet-50")
    u.add_argument("--seed-masks", help="folder of seed masks (<id>.png) for the `folder` seed source")
    c = sub.add_parser("check", help="validate the active params.yaml (data, masks, weights) as `use` does")
    c.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml", help="params file to check")
    sub.add_parser("list", help="list the profiles")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(available_profiles()))
    elif args.cmd == "check":
        check(args.params)
        print(f"{args.params}: ok")
    else:
        use(args.name, {key: getattr(args, dest) for dest, key in OVERRIDES.items()})
        print(f"params.yaml now holds the {args.name!r} profile; run `dvc repro`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
