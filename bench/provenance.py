"""What produced a number: git revision (with a dirty flag), package versions, device, time.

Every result file written by the pipeline embeds `environment()` so that a reviewer reading
results/ can trace each number to a commit and a machine.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("torch", "open_clip_torch", "timm", "triton", "numpy", "pandas", "dvc", "pydensecrf2")


def _git(*args: str, cwd: Path = REPO_ROOT) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision(root: Path = REPO_ROOT) -> dict:
    """{'sha': str|None, 'dirty': bool|None}; dirty ignores the pipeline's own outputs (results/, dvc.lock),
    and a params.yaml that holds a committed profile exactly (`python -m bench.profiles use NAME` with no
    path overrides): that run is the commit's own profile NAME, which every result row names.
    A copy of the tree whose git metadata is missing or stale (the lent GPU machine gets the working tree
    with the .git of the session's first commit) names the commit it was taken from in WEAKCLIP_GIT_SHA,
    which then wins; the copy's dirtiness is unknown (None)."""
    if os.environ.get("WEAKCLIP_GIT_SHA"):
        return {"sha": os.environ["WEAKCLIP_GIT_SHA"], "dirty": None}
    sha = _git("rev-parse", "HEAD", cwd=root)
    # tracked files that differ from HEAD, staged or not
    status = _git("diff", "--name-only", "HEAD", "--", ".", ":(exclude)results", ":(exclude)dvc.lock", cwd=root)
    if status is None:
        return {"sha": sha, "dirty": None}
    changed = status.splitlines()
    profile_switch = changed == ["params.yaml"] and _params_are_a_committed_profile(root)
    return {"sha": sha, "dirty": bool(changed) and not profile_switch}


def _params_are_a_committed_profile(root: Path) -> bool:
    import yaml

    try:
        params = yaml.safe_load((root / "params.yaml").read_text())
        profile = root / "profiles" / f"{params['profile']}.yaml"
        if _git("status", "--porcelain", "--", str(profile.relative_to(root)), cwd=root) != "":
            return False  # the profile file itself is modified or untracked
        return params == yaml.safe_load(profile.read_text())
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return False


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> dict:
    """The device behind a number. On the CPU it names the model and the vector ISA torch dispatches to:
    float results differ in the last bits between ISAs (AVX2 vs AVX512 kernels), and a trained model
    carries that into its mIoU, so two hosts can give slightly different numbers for the same commit."""
    import torch

    if torch.cuda.is_available():
        idx = torch.cuda.current_device()
        return {"type": "cuda", "name": torch.cuda.get_device_name(idx), "count": torch.cuda.device_count(),
                "cuda": torch.version.cuda}
    from weakclip.core.precision import native_bf16

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"type": "cpu", "name": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(),
            "arch": platform.machine(), "cores": cores, "threads": torch.get_num_threads(),
            "native_bf16": native_bf16("cpu")}


def device_label(device: dict) -> str:
    """'cuda:NVIDIA H200', 'cpu:AMD EPYC (AVX512)': the `device` column of result rows."""
    isa = f' ({device["isa"]})' if device.get("isa") else ""
    return f'{device["type"]}:{device["name"]}{isa}'


def environment() -> dict:
    """The provenance block written into every result file."""
    return {
        "git": git_revision(),
        "versions": package_versions(),
        "device": device_description(),
        "host": platform.node(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
