"""Long-format result rows: one row per (profile, method, stage, metric, seed), environment in every row.

Every stage writes its numbers through `write_rows` (a CSV for tables/plots) and `write_metrics`
(a JSON for `dvc metrics show/diff`). Both carry the profile name, so a synthetic number can
never be mistaken for a VOC number, and the git revision, versions and device that produced it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from weakclip.core.io import atomic_path, write_json

from .provenance import device_label, environment

ROW_KEYS = ("profile", "dataset", "method", "stage", "split", "metric", "seed", "value", "unit")


def env_columns(env: dict | None = None) -> dict:
    env = env or environment()
    versions = env["versions"]
    return {
        "git_sha": env["git"]["sha"],
        "git_dirty": env["git"]["dirty"],
        "device": device_label(env["device"]),
        "torch": versions.get("torch"),
        "python": versions.get("python"),
        "timestamp": env["timestamp"],
    }


def make_row(profile: str, dataset: str, method: str, stage: str, split: str, metric: str, value,
             seed: int | None = None, unit: str = "", **extra) -> dict:
    if value is not None and isinstance(value, float) and math.isnan(value):
        value = None
    return {"profile": profile, "dataset": dataset, "method": method, "stage": stage, "split": split,
            "metric": metric, "seed": seed, "value": value, "unit": unit, **extra}


def write_rows(path: str | Path, rows: Iterable[dict], env: dict | None = None) -> pd.DataFrame:
    """Write rows (dicts with at least ROW_KEYS) to CSV atomically, adding the environment columns."""
    rows = list(rows)
    if not rows:
        raise ValueError(f"{path}: refusing to write an empty result file")
    missing = [k for k in ROW_KEYS if k not in rows[0]]
    if missing:
        raise ValueError(f"{path}: result rows lack keys {missing}")
    frame = pd.DataFrame(rows)
    for key, val in env_columns(env).items():
        frame[key] = val
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def read_rows(paths: Iterable[str | Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in paths if Path(p).is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_KEYS))


def write_metrics(path: str | Path, profile: str, metrics: dict) -> None:
    """A JSON metrics file for `dvc metrics show/diff`: {profile, metrics: {...}}, numbers only below
    `metrics`. The provenance (git revision, device, versions) is in the CSV rows beside it: in here,
    a timestamp or a commit hash would show up in every `dvc metrics diff` as a changed metric."""
    write_json(path, {"profile": profile, "metrics": metrics})
