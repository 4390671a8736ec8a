"""dvc.yaml's promises: every stage runs a module that exists and depends on its own source and on every
repository module that source imports, a stage reads no params key it does not declare, and the declared
metrics and plots are files the committed results hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from bench.params import get

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


PACKAGES = ("bench", "weakclip", "baselines")


def module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Repository modules a file imports anywhere in it (module level or inside functions), as dotted
    names; `from pkg import name` yields both pkg and pkg.name, since name may be a submodule. A file
    that imports by name at run time (importlib, e.g. the baselines' lazy registry) imports its package."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).parent.parts)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            found.update(f"{package}.{p.stem}" for p in path.parent.glob("*.py"))
    return {m for m in found if m.split(".")[0] in PACKAGES}


def import_closure(module: str) -> set[Path]:
    """Every repository file that running `python -m module` can import (parent packages included)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path))
    return seen


def is_code(path: Path) -> bool:
    """False for a file holding nothing but a docstring (a package marker)."""
    body = ast.parse(path.read_text()).body
    return not (len(body) <= 1 and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body))


def test_import_closure_follows_relative_lazy_and_parent_imports():
    files = {str(p.relative_to(ROOT)) for p in import_closure("bench.stages.refine")}
    assert {"bench/stages/common.py", "bench/params.py", "weakclip/core/io.py", "bench/stages/__init__.py"} <= files
    assert "baselines/crf.py" in files  # only reachable through the registry's importlib call
    assert "weakclip/model.py" not in files


@pytest.mark.parametrize("name", sorted(SPEC["stages"]))
def test_stage_declares_every_repository_module_it_imports(name):
    stage = SPEC["stages"][name]
    deps = declared(stage["deps"])
    module = stage["cmd"].split()[2]
    missing = sorted(str(p.relative_to(ROOT)) for p in import_closure(module)
                     if is_code(p) and not any(covers_path(d, str(p.relative_to(ROOT))) for d in deps))
    assert not missing, f"{name} imports {missing}, which dvc.yaml does not list in its deps: DVC would not " \
                        "re-run it when they change"


def covers_path(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")


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
        "train_seg@seeds": [{"changed deps": {"data/prepared": "deleted", "baselines/segnet": "modified"}},
                            {"changed outs": {"data/segnet/seeds": "not in cache"}}],
        "profile": [{"changed outs": {"results/perf/throughput.csv": "modified"}}],
        "report": [{"changed params": {"params.yaml": {"evaluate.qualitative_images": "modified"}}}],
        "prepare": [{"changed outs": {"data/prepared": "not in cache"}}],
    }
    assert _lock_mismatches(status) == [
        "train_seg@seeds: deps baselines/segnet modified",
        "profile: outs results/perf/throughput.csv modified",
        "report: params {'params.yaml': {'evaluate.qualitative_images': 'modified'}}",
    ]


def test_a_stage_reads_only_the_params_its_dvc_stage_declares():
    from bench.stages.common import Stage, UndeclaredParam, declared_params

    params = yaml.safe_load((ROOT / "profiles" / "synthetic.yaml").read_text())
    stage = Stage("refine@crf", params, declared_params("refine@crf"))
    assert stage.get("refine.crf") == params["refine"]["crf"]  # under the declared `refine`
    assert stage.get("seeds.main") == params["seeds"]["main"]
    assert stage.data_cfg == params["data"]
    for key in ("seeds", "weakclip.model", "segnet"):  # a parent of a declared key, or undeclared
        with pytest.raises(UndeclaredParam, match=f"'{key}'.*dvc.yaml"):
            stage.get(key)
    assert declared_params("not_a_stage") is None  # a stage function called outside the pipeline
    assert Stage("not_a_stage", params).get("segnet.methods") == params["segnet"]["methods"]


def _is_stage_get(node) -> bool:
    """`stage.get("literal", ...)` or `self.get("literal", ...)` (inside Stage)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("stage", "self")
            and bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _definitions(path: Path) -> tuple[dict, dict]:
    """({top-level function or class name: (keys it reads, names it calls)}, {name: sibling stage file it
    is imported from}) for one file of bench/stages."""
    tree = ast.parse(path.read_text())
    defs, imported = {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            keys = {n.args[0].value for n in ast.walk(node) if _is_stage_get(n)}
            calls = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            defs[node.name] = (keys, calls)
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                imported[alias.name] = path.parent / f"{node.module}.py"
    return defs, imported


def stage_param_reads(module_path: Path) -> set[str]:
    """Literal params keys a stage can read: everything in its own module, plus what the helpers it imports
    from other stage modules read, following their calls (a sibling's unused functions do not count)."""
    _, own_imports = _definitions(module_path)
    keys = {n.args[0].value for n in ast.walk(ast.parse(module_path.read_text())) if _is_stage_get(n)}
    todo = [(own_imports[name], name) for name in own_imports]
    seen = set()
    while todo:
        path, name = todo.pop()
        if (path, name) in seen or not path.is_file():
            continue
        seen.add((path, name))
        defs, imports = _definitions(path)
        if name not in defs:
            continue
        reads, calls = defs[name]
        keys |= reads
        todo += [(path, c) for c in calls if c in defs] + [(imports[c], c) for c in calls if c in imports]
    return keys


@pytest.mark.parametrize("name", sorted(SPEC["stages"]))
def test_stage_declares_every_params_key_its_stage_code_reads(name):
    """Statically: a read that dvc.yaml does not declare would otherwise only fail at run time (Stage.get
    raises UndeclaredParam), after every stage before it has run."""
    from bench.stages.common import covers

    stage = SPEC["stages"][name]
    declared_keys = [p for p in stage.get("params", []) if isinstance(p, str)]
    reads = stage_param_reads(ROOT / stage_module(stage["cmd"]))
    missing = sorted(k for k in reads if not any(covers(d, k) for d in declared_keys))
    assert not missing, f"{name}'s code reads params {missing}, which dvc.yaml does not list in its params"


def test_stage_param_reads_follow_helpers_imported_from_another_stage():
    reads = stage_param_reads(ROOT / "bench" / "stages" / "evaluate_final.py")
    assert {"seeds.main", "refine.methods"} <= reads  # through methods.training_masks
    assert "segnet.transform" not in reads  # train_seg's training code, which evaluate_final never calls


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_declared_params_key_exists_in_every_profile(profile):
    """DVC stops on a declared key that params.yaml lacks; every profile must be one `use` away from running."""
    params = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text())
    for name, stage in SPEC["stages"].items():
        for key in stage.get("params", []):
            assert get(params, key, _ABSENT) is not _ABSENT, (
                f"profiles/{profile}.yaml lacks {key!r}, which dvc.yaml stage {name} declares")


_ABSENT = object()
