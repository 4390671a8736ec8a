"""dvc.yaml's promises: every stage runs a module that exists and depends on its own source, and the
declared metrics and plots are files the committed results hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def stage_module(cmd: str) -> str:
    """'python -m bench.stages.seeds ${item.source}' -> 'bench/stages/seeds.py'."""
    words = cmd.split()
    assert words[:2] == ["python", "-m"], f"stage command {cmd!r} is not `python -m MODULE`"
    return words[2].replace(".", "/") + ".py"


def declared(entries) -> list[str]:
    """The paths of a dvc.yaml list whose entries are a path or {path: options}."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


@pytest.mark.parametrize("name", sorted(SPEC["stages"]))
def test_stage_runs_an_existing_module_listed_in_its_deps(name):
    stage = SPEC["stages"][name]
    source = stage_module(stage["cmd"])
    assert (ROOT / source).is_file(), f"{name}: {source} does not exist"
    deps = declared(stage["deps"])
    assert any(source == d or source.startswith(d.rstrip("/") + "/") for d in deps), (
        f"{name}: its own source {source} is not among its deps {deps}")


def test_declared_metrics_and_plots_are_committed():
    metrics = [m for stage in SPEC["stages"].values() for m in declared(stage.get("metrics", []))]
    plots = declared(SPEC["plots"])
    assert metrics and plots
    for path in metrics + plots:
        assert (ROOT / path).exists(), f"dvc.yaml declares {path}, which results/ does not hold"
    assert list((ROOT / "results" / "plots").glob("*.png")), "results/plots holds no PNG for `dvc plots`"


def _lock_mismatches(status: dict) -> list[str]:
    """What `dvc status --json` reports beyond the DVC-cached data a fresh clone lacks: code or params that
    changed since dvc.lock was written, and results/ files that are not the ones the lock records."""
    found = []
    for stage, entries in status.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict):
                found.append(f"{stage}: {entry}")
                continue
            for kind, paths in entry.items():
                if kind == "changed params":
                    found.append(f"{stage}: params {paths}")
                    continue
                for path, state in (paths.items() if isinstance(paths, dict) else []):
                    if not path.startswith("data/"):
                        found.append(f"{stage}: {kind[8:]} {path} {state}")
    return found


def test_committed_lock_matches_the_code_params_and_results():
    import json
    import os
    import subprocess
    import sys

    from bench.provenance import git_revision

    if git_revision(ROOT)["dirty"] is not False:
        pytest.skip("uncommitted code changes: the lock is checked on committed trees (CI's clean clone)")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if params != yaml.safe_load((ROOT / "profiles" / "synthetic.yaml").read_text()):
        pytest.skip("params.yaml holds another profile; dvc.lock records the default profile's run")
    out = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert out.returncode == 0, out.stderr
    mismatches = _lock_mismatches(json.loads(out.stdout or "{}"))
    assert not mismatches, "dvc.lock is stale; run `dvc repro` and commit its results:\n" + "\n".join(mismatches)


def test_lock_check_flags_code_params_and_results_but_not_missing_data():
    status = {
        "train_seg@seeds": [{"changed deps": {"data/prepared": "deleted", "bench/segnet": "modified"}},
                            {"changed outs": {"data/segnet/seeds": "not in cache"}}],
        "profile": [{"changed outs": {"results/perf/throughput.csv": "modified"}}],
        "report": [{"changed params": {"params.yaml": {"evaluate.qualitative_images": "modified"}}}],
        "prepare": [{"changed outs": {"data/prepared": "not in cache"}}],
    }
    assert _lock_mismatches(status) == [
        "train_seg@seeds: deps bench/segnet modified",
        "profile: outs results/perf/throughput.csv modified",
        "report: params {'params.yaml': {'evaluate.qualitative_images': 'modified'}}",
    ]
