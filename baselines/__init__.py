"""Seed generators and CAM refiners behind one small interface (one file per method).

Seed sources: `generate(sample_iter, out_dir, **cfg) -> summary dict` writes `<id>.npy` contract CAMs
(float16 (K, H, W), channel 0 background, foreground in [0, 1] per-class max-normalised, absent classes 0).
Refiners: `refine(image uint8 (H, W, 3), cams (K, H, W), labels (K-1,), **cfg) -> (probs (K, H, W) float32,
mask uint8 (H, W), 255 = unsure)`; `refine_folder` runs one over a folder of CAMs in a process pool.
Trained methods keep their training separate: `cam.fit(dataset, cfg, out_path)`,
`random_walk.fit(dataset, cam_dir, cfg, out_path)`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

from .runner import refine_folder  # light: numpy and tqdm only


class _LazyRegistry(Mapping):
    """name -> function, importing the method's module on first use: a stage that runs the threshold
    refiner does not pay for importing open_clip, timm and torchvision (about 5 s per stage process)."""

    def __init__(self, entries: dict[str, str]):
        self._entries = entries  # name -> "module:function", module relative to this package

    def __getitem__(self, name: str) -> Callable:
        module, function = self._entries[name].split(":")
        return getattr(importlib.import_module(f".{module}", __name__), function)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


SEED_SOURCES = _LazyRegistry({"clip_es": "clip_es:generate", "cam": "cam:generate", "folder": "folder:generate"})

REFINERS = _LazyRegistry(
    {
        "threshold": "threshold:refine",
        "crf": "crf:refine",
        "caa": "caa:refine",
        "par": "par:refine",
        "random_walk": "random_walk:refine",
    }
)

TRAINERS = _LazyRegistry({"cam": "cam:fit", "random_walk": "random_walk:fit"})


__all__ = ["REFINERS", "SEED_SOURCES", "TRAINERS", "refine_folder"]
