"""Run another profile's whole pipeline beside the active one and keep its results for the report.

    python -m bench.side_run synthetic-b [use-args ...]      # e.g. the second generated dataset

The claims the suite tests on generated data should hold on more than one draw of it, but a second dataset does
not fit in the default `dvc repro`'s time. So it is its own committed profile: this runs `bench.profiles use
PROFILE` and `dvc repro` in a scratch clone of the current commit (nothing here is touched while it runs), then
copies that run's result files into results/profiles/<PROFILE>/ (metrics, timing, the check's table), replacing
the previous ones as a whole, and its reference into results/reference/ (a first run makes it). The report reads them beside the
active profile's; every row names its profile.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .provenance import REPO_ROOT
from .stages.common import fresh_dir, publish_dir

KEEP = ("metrics", "timing", "check.csv")


def side_results(results: Path = REPO_ROOT / "results") -> list[Path]:
    """The metrics CSVs of every side-run profile (results/profiles/<name>/metrics/*.csv)."""
    return sorted((results / "profiles").glob("*/metrics/*.csv"))


def run(profile: str, use_args: list[str]) -> Path:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix=f"weakclip-{profile}-") as tmp:
        work = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(work)], check=True)
        subprocess.run([sys.executable, "-m", "bench.profiles", "use", profile, *use_args], cwd=work, env=env,
                       check=True)
        if not (work / "results" / "reference" / f"{profile}.csv").is_file():  # a first run pins its numbers
            subprocess.run(["dvc", "repro", "evaluate_final"], cwd=work, env=env, check=True)
            subprocess.run([sys.executable, "-m", "bench.check", "--update-reference"], cwd=work, env=env,
                           check=True)
        subprocess.run(["dvc", "repro"], cwd=work, env=env, check=True)
        final = REPO_ROOT / "results" / "profiles" / profile
        staged = fresh_dir(final)
        for name in KEEP:
            src = work / "results" / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, staged / name)
        publish_dir(staged, final)
        reference = f"results/reference/{profile}.csv"
        shutil.copy2(work / reference, REPO_ROOT / reference)  # the numbers the next side run is held to
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("use_args", nargs=argparse.REMAINDER, help="passed to `bench.profiles use PROFILE`")
    args = ap.parse_args(argv)
    print(f"results kept in {run(args.profile, args.use_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
