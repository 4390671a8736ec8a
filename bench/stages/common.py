"""What every stage shares: params, the active profile, seeding, paths and per-stage timing."""
from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weakclip.io import write_json

from ..params import get, load_params
from ..provenance import REPO_ROOT, environment

DATA = REPO_ROOT / "data"
RESULTS = REPO_ROOT / "results"


@dataclass
class Stage:
    name: str
    params: dict

    @property
    def profile(self) -> str:
        return self.params["profile"]

    def get(self, dotted: str, default=...):
        return get(self.params, dotted, default)

    @property
    def data_cfg(self) -> dict:
        return self.params["data"]

    @property
    def dataset_name(self) -> str:
        return self.params["data"]["kind"]


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


@contextlib.contextmanager
def run_stage(name: str):
    """Load params, time the stage, and record its wall time in results/timing/<name>.json."""
    params = load_params()
    stage = Stage(name, params)
    threads = stage_threads(params.get("threads"), name)
    if threads:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    yield stage
    seconds = time.perf_counter() - start
    write_json(RESULTS / "timing" / f"{name}.json",
               {"stage": name, "profile": stage.profile, "seconds": round(seconds, 2), "environment": environment()})
    print(f"[{name}] done in {seconds:.1f} s")


def rel(path: Path) -> str:
    """A path relative to the repo root for result files (absolute when outside it)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
