"""What every stage shares: params, the active profile, seeding, paths, output folders and per-stage timing."""
from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from weakclip.core.io import write_json

from ..params import get, load_params
from ..provenance import REPO_ROOT, environment

DATA = REPO_ROOT / "data"
RESULTS = REPO_ROOT / "results"


class UndeclaredParam(KeyError):
    """A stage read a params key that dvc.yaml does not list for it: DVC would not re-run the stage when
    that key changes, so its outputs could silently go stale."""


def declared_params(stage_name: str, spec_path: Path | None = None) -> tuple[str, ...] | None:
    """The params keys dvc.yaml lists for a stage ('train_weakclip@release' -> stage 'train_weakclip');
    None when dvc.yaml has no such stage (a stage function called from a test or a notebook)."""
    spec = yaml.safe_load((spec_path or REPO_ROOT / "dvc.yaml").read_text())
    entry = spec.get("stages", {}).get(stage_name.split("@")[0])
    if entry is None:
        return None
    return tuple(p for p in entry.get("params", []) if isinstance(p, str))


def covers(declared: str, key: str) -> bool:
    """A declared key covers itself and everything below it: 'segnet' covers 'segnet.config.lr'."""
    return key == declared or key.startswith(declared + ".")


@dataclass
class Stage:
    name: str
    params: dict
    declared: tuple[str, ...] | None = None  # None: no dvc.yaml stage to hold the reads to

    @property
    def profile(self) -> str:
        return self.get("profile")

    def get(self, dotted: str, default=...):
        if self.declared is not None and not any(covers(d, dotted) for d in self.declared):
            raise UndeclaredParam(
                f"stage {self.name!r} reads params key {dotted!r}, which dvc.yaml does not list in its params "
                f"({', '.join(self.declared)}): add it there, or DVC will not re-run the stage when it changes")
        return get(self.params, dotted, default)

    @property
    def data_cfg(self) -> dict:
        return self.get("data")

    @property
    def dataset_name(self) -> str:
        return self.get("data.kind")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stage_threads(setting, stage_name: str) -> int | None:
    """torch threads for a stage from params `threads`: null (torch's default), an int for every stage, or
    {default: n, <stage>: n} keyed by the stage name before '@'. On a 2-core machine, stages whose model
    runs while a CRF pool works (pseudo masks, stage-3 evaluation) need 1 thread: two
    threads fighting the pool's processes for the cores ran several times slower than one."""
    if isinstance(setting, dict):
        setting = setting.get(stage_name.split("@")[0], setting.get("default"))
    return int(setting) if setting else None


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc, 10 ms resolution), or None where that is unknown."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds() -> float:
    """User + system CPU time of this process and of the child processes it has waited for (pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def run_stage(name: str):
    """Load params, time the stage, and record in results/timing/<name>.json its wall time, the CPU time it
    used (with its worker processes: cpu/wall is the number of cores it kept busy), when it started and
    ended, and how long the process took to start (interpreter and imports) before the stage's work began."""
    began, cpu_before, startup = time.time(), cpu_seconds(), process_age()
    stage = Stage(name, load_params(), declared_params(name))
    threads = stage_threads(stage.get("threads", None), name)
    if threads:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    yield stage
    seconds = time.perf_counter() - start
    write_json(RESULTS / "timing" / f"{name}.json", {
        "stage": name, "profile": stage.profile, "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 2),
        "startup_seconds": round(startup, 2) if startup is not None else None,
        "started_at": round(began, 2), "ended_at": round(time.time(), 2), "threads": threads,
        "environment": environment()})
    print(f"[{name}] done in {seconds:.1f} s")


def foreach_main(stage_name: str, item: str, run: Callable[[Stage, str], object], argv: list[str] | None) -> int:
    """Entry point of a foreach stage: `python -m bench.stages.<stage_name> <ITEM>` runs run(stage, ITEM) as
    stage `<stage_name>@<ITEM>` (its params, threads and timing from run_stage)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(f"usage: python -m bench.stages.{stage_name} {item}")
    with run_stage(f"{stage_name}@{argv[0]}") as stage:
        run(stage, argv[0])
    return 0


def rel(path: Path) -> str:
    """A path relative to the repo root for result files (absolute when outside it)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def fresh_dir(final: Path) -> Path:
    """An empty work folder beside `final` ('<name>.partial'); a stage fills it, then `publish_dir` renames
    it into place, so an interrupted stage never leaves a half-written `final` for a later stage to read."""
    tmp = final.with_name(final.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
