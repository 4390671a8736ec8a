"""What produced a number: git revision (with a dirty flag), package versions, device, time.

Every result file written by the pipeline embeds `environment()` so that a reviewer reading
results/ can trace each number to a commit and a machine.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("torch", "open_clip_torch", "timm", "triton", "numpy", "pandas", "dvc", "pydensecrf2")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision() -> dict:
    """{'sha': str|None, 'dirty': bool|None}; dirty ignores the pipeline's own outputs under results/."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", ":(exclude)dvc.lock")
    return {"sha": sha, "dirty": None if status is None else bool(status)}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description() -> dict:
    import torch

    if torch.cuda.is_available():
        idx = torch.cuda.current_device()
        return {"type": "cuda", "name": torch.cuda.get_device_name(idx), "count": torch.cuda.device_count(),
                "cuda": torch.version.cuda}
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def environment() -> dict:
    """The provenance block written into every result file."""
    return {
        "git": git_revision(),
        "versions": package_versions(),
        "device": device_description(),
        "host": platform.node(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
