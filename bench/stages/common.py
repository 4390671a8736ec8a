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


@contextlib.contextmanager
def run_stage(name: str):
    """Load params, time the stage, and record its wall time in results/timing/<name>.json."""
    params = load_params()
    stage = Stage(name, params)
    if params.get("threads"):
        # On a small shared CPU one torch thread per process is several times faster than two
        # (the CRF pools use the other core); real profiles leave this unset.
        import torch

        torch.set_num_threads(int(params["threads"]))
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
