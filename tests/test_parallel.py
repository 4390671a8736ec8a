"""bench.stages.parallel: run seeds side by side in worker processes, in order, with their errors."""
from __future__ import annotations

import pytest

from bench.stages.common import Stage, foreach_main
from bench.stages.parallel import in_worker, parallel_settings, report_progress, run_jobs, train_per_seed


def _job(seed: int, iterations: int) -> dict:
    import torch

    for _ in range(iterations):
        report_progress()
    return {"seed": seed, "threads": torch.get_num_threads(), "in_worker": in_worker()}


def _failing_job(seed: int) -> None:
    if seed == 1:
        raise ValueError(f"run seed {seed} failed")


def _train(stage, name: str, seed: int, out, log_path, tag: str = "") -> None:
    out.mkdir()
    (out / "model.txt").write_text(f"{name}{tag} seed {seed}")
    log_path.write_text(f"{stage.name} {seed}\n")
    if seed == 13:
        raise RuntimeError("seed 13 diverged")


def test_train_per_seed_fills_work_folders_and_leaves_publishing_to_the_caller(tmp_path):
    stage = Stage("train_x@m", {"parallel": {"jobs": 2, "threads": 1}})
    models, logs = tmp_path / "models" / "m", tmp_path / "logs" / "m"
    models_work, logs_work = train_per_seed(_train, stage, "m", [0, 2], models, logs, 1, "+tag")
    assert models_work == models.with_name("m.partial") and logs_work == logs.with_name("m.partial")
    assert (models_work / "s2" / "model.txt").read_text() == "m+tag seed 2"
    assert (logs_work / "s0.jsonl").read_text() == "train_x@m 0\n"
    assert not models.exists() and not logs.exists()  # nothing published yet


def test_train_per_seed_stops_on_a_failed_seed_with_nothing_published(tmp_path):
    stage = Stage("train_x@m", {"parallel": {"jobs": 1}})
    with pytest.raises(RuntimeError, match="seed 13 diverged"):
        train_per_seed(_train, stage, "m", [0, 13], tmp_path / "models", tmp_path / "logs", 1)
    assert not (tmp_path / "models").exists() and not (tmp_path / "logs").exists()


def test_foreach_main_wants_exactly_one_item():
    with pytest.raises(SystemExit, match="usage: python -m bench.stages.seeds SOURCE"):
        foreach_main("seeds", "SOURCE", lambda stage, item: None, [])
    with pytest.raises(SystemExit, match="usage"):
        foreach_main("seeds", "SOURCE", lambda stage, item: None, ["cam", "clip_es"])


def test_workers_return_results_in_order_with_their_threads():
    results = run_jobs(_job, [(s, 5) for s in (0, 1, 2)], {"jobs": 2, "threads": 1}, "test", 15)
    assert [r["seed"] for r in results] == [0, 1, 2]
    assert all(r["threads"] == 1 and r["in_worker"] for r in results)


def test_one_job_at_a_time_runs_in_the_stage_process():
    results = run_jobs(_job, [(0, 3), (1, 3)], {"jobs": 1}, "test", 6)
    assert [r["seed"] for r in results] == [0, 1]
    assert not any(r["in_worker"] for r in results)
    assert run_jobs(_job, [(4, 1)], None, "test", 1)[0]["seed"] == 4  # absent params: in-process


def test_in_process_jobs_run_on_the_worker_thread_count_and_restore_the_stage_s():
    import torch

    stage_threads = torch.get_num_threads()
    results = run_jobs(_job, [(0, 1), (1, 1)], {"jobs": 1, "threads": 1}, "test", 2)
    assert [r["threads"] for r in results] == [1, 1]  # the same as in a worker: results match
    assert torch.get_num_threads() == stage_threads


def test_a_failing_job_stops_the_stage_with_its_error():
    with pytest.raises(ValueError, match="run seed 1 failed"):
        run_jobs(_failing_job, [(0,), (1,), (2,)], {"jobs": 3, "threads": 1}, "test", 3)


@pytest.mark.parametrize("setting", [{"jobs": 0}, {"jobs": "2"}, {"jobs": 2, "threads": 0}])
def test_bad_settings_name_the_parameter(setting):
    with pytest.raises(ValueError, match="params parallel"):
        parallel_settings(setting)
