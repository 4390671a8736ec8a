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
