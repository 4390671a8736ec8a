"""Run a stage's per-run-seed jobs (trainings, evaluations) side by side in worker processes (params `parallel`).

On a small CPU, single-threaded trainings running side by side get more done per second than the
same trainings one after another on all threads: a tiny model's ops are mostly too small to split
across threads. Measured here (2 cores, WeakCLIP paper mode, batch 16 at 64 px): 258 ms a step with
2 threads alone, 402 ms with 1 thread alone, and 605 ms a step each for 3 side by side (202 ms a step
overall).

    parallel: {jobs: 3, threads: 1}

jobs: worker processes at once (1: every job in the stage process, one after another: the GPU
profiles). threads: torch threads of each job, in a worker or in the stage process (null: the stage's
own). A job's result depends on its thread count, never on how many jobs share the machine, so `jobs`
is a speed setting only.

Workers are forked where the platform allows it, as DataLoader workers are: the stage process has only
imported its modules (about 5 s a process that a spawned worker would pay again) and has not started
any thread yet, and each worker sets its own thread count before torch runs an op. A job that fails
stops the stage with its error; the other jobs are cancelled or left to finish, and their outputs are
in the stage's work folder, which the stage never publishes after a failure.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path

from tqdm import tqdm

from .common import Stage, fresh_dir

_progress = None  # a shared counter of finished iterations, set in each worker


def _init_worker(threads: int, counter) -> None:
    global _progress
    import torch

    torch.set_num_threads(threads)
    _progress = counter


def in_worker() -> bool:
    """True in a run_jobs worker: the job's own progress bars stay off (the stage shows one)."""
    return _progress is not None


def report_progress(n: int = 1) -> None:
    """Count n finished iterations towards the stage's progress bar (a no-op outside a worker)."""
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def parallel_settings(setting: dict | None) -> tuple[int, int | None]:
    """(jobs, threads) from params `parallel` (absent: one job at a time, the stage's threads)."""
    setting = setting or {}
    jobs, threads = setting.get("jobs", 1), setting.get("threads")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"params parallel.jobs must be an integer >= 1, got {jobs!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"params parallel.threads must be null or an integer >= 1, got {threads!r}")
    return jobs, threads


def _run_in_process(fn: Callable, jobs_args: Sequence[tuple], threads: int | None) -> list:
    """One job after another in this process, on `threads` torch threads when given (as a worker would)."""
    import torch

    stage_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return [fn(*args) for args in jobs_args]
    finally:
        torch.set_num_threads(stage_threads)


def run_jobs(fn: Callable, jobs_args: Sequence[tuple], setting: dict | None, desc: str,
             total_iterations: int) -> list:
    """fn(*args) for each args in jobs_args; returns their results in order.

    fn must be importable (a module-level function) and its args picklable. In workers, fn reports its
    iterations with report_progress(); the parent shows one bar over `total_iterations`.
    """
    jobs, threads = parallel_settings(setting)
    if jobs == 1 or len(jobs_args) == 1:
        return _run_in_process(fn, jobs_args, threads)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    counter = context.Value("q", 0)
    with ProcessPoolExecutor(min(jobs, len(jobs_args)), mp_context=context, initializer=_init_worker,
                             initargs=(threads or 1, counter)) as pool, \
            tqdm(total=total_iterations, desc=f"{desc} ({len(jobs_args)} runs side by side)",
                 dynamic_ncols=True) as bar:
        futures = [pool.submit(fn, *args) for args in jobs_args]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
            bar.update(counter.value - bar.n)
            for future in done:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()
        bar.update(counter.value - bar.n)
    return [f.result() for f in futures]


def train_per_seed(fn: Callable, stage: Stage, name: str, seeds: Sequence[int], models: Path, logs: Path,
                   iterations: int, *extra, parallel: dict | None = None) -> tuple[Path, Path]:
    """One training per run seed, side by side as params `parallel` says (or `parallel`, when given):
    fn(stage, name, seed, <models work>/s<seed>, <logs work>/s<seed>.jsonl, *extra), with `iterations`
    each towards the progress bar.

    Returns the work folders beside `models` and `logs` (see fresh_dir). The caller publishes them,
    after any step of its own: the models and their logs go out together, and not at all if a seed failed.
    """
    models_work, logs_work = fresh_dir(models), fresh_dir(logs)
    jobs = [(stage, name, seed, models_work / f"s{seed}", logs_work / f"s{seed}.jsonl", *extra) for seed in seeds]
    run_jobs(fn, jobs, parallel if parallel is not None else stage.get("parallel", None), stage.name,
             len(seeds) * iterations)
    return models_work, logs_work
