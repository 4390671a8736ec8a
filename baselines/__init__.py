"""Seed generators and CAM refiners behind one small interface (one file per method).

Seed sources: `generate(sample_iter, out_dir, **cfg) -> summary dict` writes `<id>.npy` contract CAMs
(float16 (K, H, W), channel 0 background, foreground in [0, 1] per-class max-normalised, absent classes 0).
Refiners: `refine(image uint8 (H, W, 3), cams (K, H, W), labels (K-1,), **cfg) -> (probs (K, H, W) float32,
mask uint8 (H, W), 255 = unsure)`; `refine_folder` runs one over a folder of CAMs in a process pool.
Trained methods keep their training separate: `cam.fit(dataset, cfg, out_path)`,
`random_walk.fit(dataset, cam_dir, cfg, out_path)`.
"""
from __future__ import annotations

from . import caa, cam, clip_es, crf, folder, par, random_walk, threshold
from .runner import refine_folder

SEED_SOURCES = {
    "clip_es": clip_es.generate,
    "cam": cam.generate,
    "folder": folder.generate,
}

REFINERS = {
    "threshold": threshold.refine,
    "crf": crf.refine,
    "caa": caa.refine,
    "par": par.refine,
    "random_walk": random_walk.refine,
}

TRAINERS = {"cam": cam.fit, "random_walk": random_walk.fit}

__all__ = ["REFINERS", "SEED_SOURCES", "TRAINERS", "refine_folder"]
