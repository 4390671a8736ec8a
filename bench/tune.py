"""Choosing the synthetic profile's settings on the tuning splits, never on the splits the report scores.

    python -m bench.tune STUDY [STUDY ...] [--profile synthetic] [--work DIR]     # STUDY: see STUDIES
    python -m bench.tune --list

Every setting of the synthetic profile that was picked by looking at scores (CLIP pre-training length,
WeakCLIP's schedule, training scales, learning rate and loss size, stage 3's backbone pre-training and
iterations) is picked here. A study is a handful of candidates around the profile's value, one factor at a
time. Each candidate runs the real pipeline, `dvc repro <target>`, in a scratch clone of the current commit
with the tuning splits in place of the reported ones (TUNING: the generator's `dev` images play train, its
`dev_val` images play val), one WeakCLIP variant and two run seeds, so that DVC's run cache shares every
stage a candidate does not change. Nothing here reads the ground truth of train or val.

The rule that picks a candidate (written beside every study's rows and in the report): the cheapest
candidate whose dev score is within TIE points of the best candidate's, where TIE is the larger of one
run-seed standard deviation of the best and 0.5 points. Settings whose cost does not differ keep the best.
Rows go to results/tuning/<study>.csv (score mean and std over run seeds, the CPU time the candidate's own
stages took, the commit), which the report renders.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from weakclip.core.io import atomic_path

from .profiles import PROFILES_DIR
from .provenance import REPO_ROOT, device_label, environment

TUNING = {  # the reported splits never appear in a tuning run
    "data.fit_split": "dev", "data.score_split": "dev", "data.val_split": "dev_val",
    "clip.pretrain.eval_split": "dev_val", "segnet.pretrain.eval_split": "dev_val",
    "run_seeds": [0, 1], "weakclip.variants": ["release"], "weakclip.ablation": [], "weakclip.deviations": [],
    "parallel.jobs": 2,
}
MIN_TIE = 0.005  # half a point of mIoU


@dataclass
class Study:
    target: str  # the dvc stage whose upstream the study runs
    score: tuple[str, str, str]  # (metrics file stem, method, metric) of the number to maximise
    candidates: dict[str, dict]  # name -> params overrides (the first one: the profile's current value)
    also: list[tuple[str, str, str]] = field(default_factory=list)  # more numbers to report beside it


STUDIES: dict[str, Study] = {
    "clip_steps": Study(
        "evaluate_pseudo", ("pseudo_masks", "weakclip[release]", "miou"),
        {f"steps {n}": {"clip.pretrain.steps": n} for n in (450, 300, 600)},
        also=[("pretrain_clip", "clip:tiny", "zero_shot.map"), ("pseudo_masks", "seeds:cam", "miou")]),
    "weakclip_iterations": Study(
        "evaluate_pseudo", ("pseudo_masks", "weakclip[release]", "miou"),
        {f"{n} iterations": {"weakclip.train.iterations": n} for n in (400, 200, 300)}),
    "weakclip_recipe": Study(
        "evaluate_pseudo", ("pseudo_masks", "weakclip[release]", "miou"),
        {"profile": {},
         "lr 0.005": {"weakclip.train.lr": 0.005},
         "scale 0.75-1.5": {"weakclip.transform.scale_range": [0.75, 1.5]},
         "scale 0.5-2.0 (VOC recipe)": {"weakclip.transform.scale_range": [0.5, 2.0]},
         "loss size 16": {"weakclip.loss.loss_size": 16}}),
    "weakclip_photometric": Study(
        "evaluate_pseudo", ("pseudo_masks", "weakclip[release]", "miou"),
        {"off (profile)": {}, "mmseg's photometric jitter": {"weakclip.transform.photometric": True}}),
    "stage3": Study(
        "evaluate_final", ("final", "weakclip[release]", "miou"),
        {f"backbone {e} epochs, {n} iterations": {"segnet.pretrain.epochs": e, "segnet.config.iterations": n}
         for e, n in ((3, 100), (1, 100), (3, 60), (2, 100))},
        also=[("final", "seeds:cam", "miou"), ("pretrain_backbone", "backbone:resnet10t", "classification.map")]),
    # The ci profile's own choices (run with --profile ci): its values are the first candidates.
    "ci_clip_steps": Study(
        "evaluate_pseudo", ("pseudo_masks", "weakclip[release]", "miou"),
        {f"steps {n}": {"clip.pretrain.steps": n} for n in (400, 200)},
        also=[("pretrain_clip", "clip:tiny", "zero_shot.map")]),
    "ci_cam_epochs": Study(
        "evaluate_pseudo", ("pseudo_masks", "seeds:cam", "miou"),
        {f"{n} epochs": {"seeds.cam.epochs": n} for n in (6, 3)},
        also=[("pseudo_masks", "weakclip[release]", "miou")]),
    "ci_weakclip_iterations": Study(
        "evaluate_pseudo", ("pseudo_masks", "weakclip[release]", "miou"),
        {f"{n} iterations": {"weakclip.train.iterations": n} for n in (300, 150)}),
    "ci_stage3": Study(
        "evaluate_final", ("final", "weakclip[release]", "miou"),
        {f"backbone {e} epochs, {n} iterations": {"segnet.pretrain.epochs": e, "segnet.config.iterations": n}
         for e, n in ((3, 100), (3, 200), (1, 200))},
        also=[("final", "seeds:cam", "miou")]),
}


def set_dotted(params: dict, dotted: str, value) -> None:
    """params[a][b] = value for 'a.b'; the sections must exist (a misspelt section is an error)."""
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise KeyError(f"tuning override {dotted!r}: the profile has no section {part!r}")
        node = node[part]
    node[last] = value


def candidate_params(profile: str, overrides: dict) -> dict:
    params = yaml.safe_load((PROFILES_DIR / f"{profile}.yaml").read_text())
    for key, value in {**TUNING, **overrides}.items():
        set_dotted(params, key, value)
    return params


def clone_head(work: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True,
                          check=True).stdout.strip()


def scratch_clone(work: Path) -> Path:
    """A clone of this commit in `work` (reused when it already holds it: its DVC cache is the point)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    if (work / ".git").is_dir():
        # the clone's own dvc.lock and results/ say which stages its last candidate ran with what, and hold
        # those stages' outputs: keep both across the checkout, so stages the new commit does not change are
        # not run again
        with tempfile.TemporaryDirectory() as keep:
            kept = [p for p in (work / "dvc.lock", work / "results") if p.exists()]
            for p in kept:
                shutil.move(str(p), Path(keep) / p.name)
            subprocess.run(["git", "fetch", "-q", str(REPO_ROOT), head], cwd=work, check=True)
            subprocess.run(["git", "checkout", "-q", "--force", head], cwd=work, check=True)
            for p in kept:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                shutil.move(str(Path(keep) / p.name), str(p))
    else:
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(work)], check=True)
        subprocess.run(["git", "checkout", "-q", head], cwd=work, check=True)
    return work


def tool_env() -> dict:
    """This interpreter's environment with its bin folder first (dvc, and the `python` dvc.yaml runs)."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def read_number(results: Path, key: tuple[str, str, str]) -> tuple[float, float, int]:
    """(mean, std, n) over run seeds of one (metrics file, method, metric)."""
    stem, method, metric = key
    rows = pd.read_csv(results / "metrics" / f"{stem}.csv")
    values = rows[(rows["method"] == method) & (rows["metric"] == metric)]["value"].dropna()
    if values.empty:
        raise KeyError(f"{stem}.csv has no {method} {metric}")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)


def run_candidate(work: Path, profile: str, study: Study, name: str, overrides: dict) -> dict:
    params = candidate_params(profile, overrides)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = {p.name: p.stat().st_mtime for p in (work / "results" / "timing").glob("*.json")}
    t0 = time.time()
    log = work / "tune.log"
    with open(log, "a") as f:
        f.write(f"\n=== {name}: {json.dumps(overrides)}\n")
        f.flush()
        # --no-run-cache: a candidate's stages really run, so their time is its cost
        proc = subprocess.run(["dvc", "repro", "--no-run-cache", study.target], cwd=work, stdout=f,
                              stderr=subprocess.STDOUT, check=False, env=tool_env())
    if proc.returncode:
        raise RuntimeError(f"candidate {name!r}: `dvc repro {study.target}` failed; see {log}")
    # CPU seconds, not wall: a candidate's cost should not depend on what else the machine was doing. Every
    # stage's timing file is read, re-run now or not: a stage DVC found up to date holds the timing of the run
    # that made its outputs with these very settings (the profile's own candidate is often that one).
    timings = {p: json.loads(p.read_text()) for p in (work / "results" / "timing").glob("*.json")}
    seconds = {t["stage"]: t.get("cpu_seconds") or t["seconds"] for t in timings.values()}
    reran = sorted(t["stage"] for p, t in timings.items() if before.get(p.name) != p.stat().st_mtime)
    row = {"candidate": name, "overrides": json.dumps(overrides), "stage_seconds": json.dumps(seconds),
           "reran": json.dumps(reran), "wall_s": round(time.time() - t0, 1)}
    for key in [study.score, *study.also]:
        mean, std, n = read_number(work / "results", key)
        label = f"{key[1]} {key[2]}"
        row.update({f"{label} mean": mean, f"{label} std": std, f"{label} n": n})
    return row


def choose(rows: pd.DataFrame, score_label: str) -> pd.Series:
    """True for the chosen candidate: the cheapest (own_cost_s) within TIE of the best (module docstring)."""
    mean, std = rows[f"{score_label} mean"], rows[f"{score_label} std"]
    best = int(mean.idxmax())
    tie = max(float(std.iloc[best]), MIN_TIE)
    within = rows[mean >= mean.iloc[best] - tie]
    return rows.index == within["own_cost_s"].idxmin()


def run_study(name: str, profile: str, work: Path, out_dir: Path) -> pd.DataFrame:
    study = STUDIES[name]
    rows = [run_candidate(work, profile, study, cand, over) for cand, over in study.candidates.items()]
    frame = pd.DataFrame(rows)
    frame["own_cost_s"] = own_costs(frame["stage_seconds"].map(json.loads), frame["reran"].map(json.loads))
    label = f"{study.score[1]} {study.score[2]}"
    frame["chosen"] = choose(frame, label)
    env = environment()  # this process's device and time; the commit is the scratch clone's, where the stages ran
    frame = frame.assign(study=name, profile=profile, split="dev (score) / dev_val (stage 3)",
                         score=label, rule=f"cheapest within max(1 std of the best, {MIN_TIE}) of the best",
                         git_sha=clone_head(work), device=device_label(env["device"]), timestamp=env["timestamp"])
    with atomic_path(out_dir / f"{name}.csv", suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def own_costs(stage_seconds: pd.Series, reran: pd.Series) -> list[float]:
    """Each candidate's CPU seconds in the stages its setting changes: those some candidate had to re-run.
    A stage DVC found up to date for a candidate is priced from the timing file of the run that made it
    (stage_seconds holds every stage's), so a candidate whose stages all came from an earlier study is not
    free. Stages no candidate changed (the first candidate's upstream) are left out: not its setting's price."""
    changed = set().union(*(set(r) for r in reran))
    return [round(sum(seconds.get(s, float("nan")) for s in changed), 1) for seconds in stage_seconds]


def threshold_study(work: Path, out_dir: Path) -> pd.DataFrame:
    """The `threshold` refiner's background threshold: the best of the sweep evaluate_pseudo writes, read from
    the scratch clone's last run on dev (at the profile's own seed settings). Costs nothing. Written to
    threshold.csv for the synthetic profile, <profile>_threshold.csv for another."""
    sweep = pd.read_csv(work / "results" / "metrics" / "threshold_sweep.csv")
    if set(sweep["split"]) != {TUNING["data.score_split"]}:
        raise RuntimeError(f"{work}: its threshold sweep is not on the tuning split; run a study first")
    label = f"{sweep['method'].iloc[0]} thresholded miou"
    frame = pd.DataFrame({"candidate": [f"bg_threshold {t:g}" for t in sweep["threshold"]],
                          "overrides": [json.dumps({"refine.threshold.bg_threshold": t}) for t in sweep["threshold"]],
                          f"{label} mean": sweep["value"], f"{label} std": 0.0, f"{label} n": 1,
                          "own_cost_s": 0.0, "stage_seconds": "{}", "reran": "[]", "wall_s": 0.0})
    frame["chosen"] = frame.index == int(frame[f"{label} mean"].idxmax())
    env = environment()
    profile = str(sweep["profile"].iloc[0])
    study = "threshold" if profile == "synthetic" else f"{profile}_threshold"  # as the other ci_* studies
    frame = frame.assign(study=study, profile=profile, split="dev", score=label,
                         rule="the best on dev (deterministic: no run seeds)", git_sha=sweep["git_sha"].iloc[0],
                         device=sweep["device"].iloc[0], timestamp=env["timestamp"])
    with atomic_path(out_dir / f"{study}.csv", suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", nargs="*", help=f"one or more of {', '.join(STUDIES)}, threshold")
    ap.add_argument("--profile", default="synthetic")
    ap.add_argument("--work", default=None, help="scratch clone (default: a folder under the system temp dir)")
    ap.add_argument("--out", default=str(REPO_ROOT / "results" / "tuning"))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list or not args.studies:
        for name, study in STUDIES.items():
            print(f"{name}: {', '.join(study.candidates)} (target {study.target})")
        return 0
    unknown = [s for s in args.studies if s not in STUDIES and s != "threshold"]
    if unknown:
        raise SystemExit(f"unknown study {unknown}; known: {list(STUDIES)}")
    work = Path(args.work or Path(tempfile.gettempdir()) / f"weakclip-tune-{args.profile}")
    if any(name != "threshold" for name in args.studies):
        work = scratch_clone(work)
    for name in args.studies:
        frame = (threshold_study(work, Path(args.out)) if name == "threshold"
                 else run_study(name, args.profile, work, Path(args.out)))
        print(frame.drop(columns=["overrides", "stage_seconds"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
