"""Run one refiner over a folder of seed CAMs in a process pool (all cores), writing `<id>.png` masks.

Workers are forked (cheap: the parent's imports and read-only memory are shared) and pin torch to one
thread each: forking a process whose torch thread pool has run deadlocks the child's first parallel op
otherwise (measured here), and one thread per worker is the right split on a pool anyway.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from weakclip.core.io import IGNORE_INDEX, save_mask, save_probs

from .common import check_sample, iter_samples, load_cams


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _worker_init() -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _resolve(refiner: str | Callable) -> Callable:
    if callable(refiner):
        return refiner
    from . import REFINERS

    try:
        return REFINERS[refiner]
    except KeyError:
        raise ValueError(f"unknown refiner {refiner!r}; known: {sorted(REFINERS)}") from None


def _refine_one(job: tuple) -> dict:
    refiner, sid, image, labels, cam_path, cfg, out_png, out_probs = job
    t0 = time.perf_counter()
    k = labels.shape[0] + 1
    cams = load_cams(cam_path, num_classes=k, size=image.shape[:2], labels=labels)
    probs, mask = _resolve(refiner)(image, cams, labels, **cfg)
    if mask.shape != image.shape[:2] or mask.dtype != np.uint8:
        raise RuntimeError(f"refiner returned a mask of {mask.shape} {mask.dtype} for {sid}")
    save_mask(out_png, mask)
    if out_probs is not None:
        save_probs(out_probs, probs)
    return {"id": sid, "seconds": time.perf_counter() - t0,
            "labelled": int((mask != IGNORE_INDEX).sum()), "pixels": int(mask.size)}


def refine_folder(images: Iterable[dict] | Any, cam_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  refiner: str | Callable, cfg: dict | None = None, workers: int | None = None,
                  probs_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Refine `<cam_dir>/<id>.npy` for every sample into `<out_dir>/<id>.png` (and optional probabilities).

    images: samples (dicts with id, image, labels) or a dataset; refiner: a REFINERS name or a callable
    with the refine() signature (a module-level function so that workers can import it); workers:
    processes (default all cores; 1 runs in this process). Returns a summary dict.
    """
    cam_dir, out_dir = Path(cam_dir), Path(out_dir)
    cfg = dict(cfg or {})
    workers = workers or default_workers()
    _resolve(refiner)  # unknown names fail before any work
    samples = list(iter_samples(images)) if not hasattr(images, "__len__") else images
    n = len(samples)
    missing = [str(s["id"]) for s in iter_samples(samples) if not (cam_dir / f"{s['id']}.npy").is_file()]
    if missing:
        raise FileNotFoundError(f"{cam_dir}: no CAM file for {len(missing)} of {n} ids, e.g. "
                                f"{[str(cam_dir / f'{m}.npy') for m in missing[:3]]}")

    def jobs():
        for s in iter_samples(samples):
            sid, image, labels = check_sample(s)
            yield (refiner, sid, image, labels, cam_dir / f"{sid}.npy", cfg, out_dir / f"{sid}.png",
                   None if probs_dir is None else Path(probs_dir) / f"{sid}.npy")

    t0 = time.perf_counter()
    results = []
    bar = tqdm(total=n, desc=f"refine[{getattr(refiner, '__name__', refiner)}]", disable=not progress)
    if workers == 1:
        for job in jobs():
            results.append(_refine_one(job))
            bar.update()
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as ex:
            pending, window = set(), 4 * workers  # bounded queue: images are loaded as they are needed
            for job in jobs():
                pending.add(ex.submit(_refine_one, job))
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    results += [f.result() for f in done]
                    bar.update(len(done))
            for f in pending:
                results.append(f.result())
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    labelled = sum(r["labelled"] for r in results)
    pixels = sum(r["pixels"] for r in results)
    return {"refiner": getattr(refiner, "__name__", refiner), "n_images": len(results), "workers": workers,
            "seconds": elapsed, "images_per_s": len(results) / max(elapsed, 1e-9),
            "coverage": labelled / max(pixels, 1), "config": cfg}
