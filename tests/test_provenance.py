"""The dirty flag: code changes make a tree dirty; a params.yaml holding a committed profile does not.
The device label names the CPU model and the vector ISA behind a CPU number."""
import shutil
import subprocess

import pytest
import yaml

from bench.provenance import device_description, device_label, git_revision


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tmp_path / "profiles").mkdir()
    for name, iters in (("synthetic", 320), ("ci", 60)):
        (tmp_path / "profiles" / f"{name}.yaml").write_text(yaml.safe_dump({"profile": name, "iters": iters}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"profile": "synthetic", "iters": 320}))
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_clean_tree(repo):
    rev = git_revision(repo)
    assert rev["dirty"] is False and len(rev["sha"]) == 40


def test_results_and_lock_do_not_count(repo):
    (repo / "results").mkdir()
    (repo / "results" / "x.csv").write_text("a\n")
    _git(repo, "add", "results")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r")
    (repo / "results" / "x.csv").write_text("b\n")
    assert git_revision(repo)["dirty"] is False


def test_a_code_change_is_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    assert git_revision(repo)["dirty"] is True


def test_params_switched_to_another_committed_profile_is_clean(repo):
    # what `python -m bench.profiles use ci` writes: a header comment, then the profile's params
    (repo / "params.yaml").write_text("# Active profile: ci\n" + yaml.safe_dump({"profile": "ci", "iters": 60}))
    assert git_revision(repo)["dirty"] is False


@pytest.mark.parametrize("params", [{"profile": "ci", "iters": 61}, {"profile": "nope", "iters": 60}])
def test_params_that_are_no_committed_profile_are_dirty(repo, params):
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert git_revision(repo)["dirty"] is True


def test_params_matching_an_edited_profile_file_are_dirty(repo):
    (repo / "profiles" / "ci.yaml").write_text(yaml.safe_dump({"profile": "ci", "iters": 61}))
    (repo / "params.yaml").write_text(yaml.safe_dump({"profile": "ci", "iters": 61}))
    assert git_revision(repo)["dirty"] is True


def test_a_copy_names_its_commit_from_the_environment(tmp_path, repo, monkeypatch):
    monkeypatch.setenv("WEAKCLIP_GIT_SHA", "a" * 40)
    assert git_revision(tmp_path / "no-history") == {"sha": "a" * 40, "dirty": None}
    assert git_revision(repo) == {"sha": "a" * 40, "dirty": None}  # a stale .git does not win
    monkeypatch.delenv("WEAKCLIP_GIT_SHA")
    assert git_revision(repo)["sha"] != "a" * 40


def test_cpu_rows_name_the_model_and_the_isa(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dev = device_description()
    assert dev["type"] == "cpu" and dev["name"] and dev["isa"] == torch.backends.cpu.get_cpu_capability()
    assert device_label(dev) == f'cpu:{dev["name"]} ({dev["isa"]})'
    assert device_label({"type": "cuda", "name": "NVIDIA H200"}) == "cuda:NVIDIA H200"
