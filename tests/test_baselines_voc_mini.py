"""Every seed source and every refiner of `baselines` on real VOC photos (voc-mini), scored by the evaluator.

Four voc-mini train images at their native size (~500x375; one and two classes, diningtable, a 333-high one)
go through the whole chain, as the benchmark runs it, with the smallest configs that work on CPU:
- seed sources (one module-scoped fixture, made once): `clip_es` with a tiny random-init CLIP (CLIP input at
  short side 128), `cam` from a resnet10t classifier fitted for one step by `TRAINERS["cam"]`, and `folder`
  fed "published" seeds: two index-mask PNGs (from the clip_es CAMs, with 255 bands) and two `.npy` CAMs
  (one full K channels, one foreground-only) copied from the cam source;
- refiners: every REFINERS entry run by `refine_folder` on the seeds of every source (`random_walk` with an
  affinity net fitted for one step by `TRAINERS["random_walk"]` on the clip_es seeds);
- every output: one `<id>.png` per id, uint8 at the image's size, labels in {0..20, 255} and only the
  image's classes + background (+ 255 for PAR, the one refiner whose contract has an unsure band), and
  `bench.metrics.evaluate_masks` against the VOC ground truth gives a finite mIoU in [0, 1] and a coverage
  in (0, 1] (exactly 1 for the refiners that never abstain).
Weights are random, so no quality number is asserted. Skipped when voc-mini is absent (see conftest).
"""
from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch

from baselines import REFINERS, SEED_SOURCES, TRAINERS, refine_folder
from baselines.common import load_cams
from bench.data import build_dataset
from bench.metrics import evaluate_masks
from weakclip.core.io import IGNORE_INDEX, load_mask, save_mask

os.environ.setdefault("HF_HUB_OFFLINE", "1")

K = 21
# voc-mini train ids: 1 class (tvmonitor); 2 classes (chair, dog); 2 classes (bottle, diningtable: a
# "readable name" for CLIP); 1 class (train) on a 333x500 photo.
IDS = ("2007_000039", "2007_000063", "2007_000250", "2007_000333")
PNG_IDS, NPY_IDS = IDS[:2], IDS[2:]  # folder source: published masks vs. copied CAM files
CLIP_CFG = {"arch": "tiny", "short_side": 128, "device": "cpu"}
CAM_FIT_CFG = {"num_classes": K, "backbone": "resnet10t", "epochs": 1, "batch_size": 4, "optimizer": "adamw",
               "lr": 1e-3, "resize_long": (96, 128), "crop_size": 96, "device": "cpu"}
RW_FIT_CFG = {"num_classes": K, "backbone": "tiny", "epochs": 1, "batch_size": 4, "crop_size": 96, "device": "cpu"}
ABSTAINING = {"par"}  # refiners whose masks may hold 255 with their default config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def voc(voc_mini_root):
    """(dataset, samples of IDS) from the real voc-mini train split."""
    ds = build_dataset({"kind": "voc", "root": str(voc_mini_root)}, "train")
    missing = sorted(set(IDS) - set(ds.ids))
    assert not missing, f"voc-mini train split lacks {missing}"
    samples = [ds[ds.ids.index(i)] for i in IDS]
    assert [s["id"] for s in samples] == list(IDS)
    return ds, samples


def published_mask(cams: np.ndarray) -> np.ndarray:
    """A 'published' seed mask from contract CAMs: argmax, 255 on the unsure band and a border stripe."""
    mask = cams.argmax(0).astype(np.uint8)  # absent classes are 0 and lose ties to background
    mask[cams.max(0) < 0.6] = IGNORE_INDEX  # max(fg, 1 - fg) < 0.6: fg near 0.5
    mask[:, mask.shape[1] // 2] = IGNORE_INDEX
    return mask


@pytest.fixture(scope="module")
def seeds(voc, tmp_path_factory):
    """Seeds of every source, made once: {"dirs": {source: cam_dir}, "summaries", "rw_checkpoint", ...}."""
    ds, samples = voc
    root = tmp_path_factory.mktemp("voc_mini_seeds")
    torch.manual_seed(0)
    dirs, summaries = {}, {}

    dirs["clip_es"] = root / "clip_es"
    summaries["clip_es"] = SEED_SOURCES["clip_es"](samples, dirs["clip_es"], class_names=list(ds.class_names),
                                                   progress=False, **CLIP_CFG)

    fit_cam = TRAINERS["cam"](samples, CAM_FIT_CFG, root / "cam_cls.pt", progress=False)
    dirs["cam"] = root / "cam"
    summaries["cam"] = SEED_SOURCES["cam"](samples, dirs["cam"], checkpoint=str(root / "cam_cls.pt"),
                                           scales=(1.0, 0.5), device="cpu", progress=False)

    src = root / "published"  # what a paper's release would hold: masks for some ids, CAM files for others
    src.mkdir()
    masks = {}
    for s in samples:
        sid = s["id"]
        if sid in PNG_IDS:
            masks[sid] = published_mask(load_cams(dirs["clip_es"] / f"{sid}.npy"))
            save_mask(src / f"{sid}.png", masks[sid])
        elif sid == NPY_IDS[0]:
            shutil.copy(dirs["cam"] / f"{sid}.npy", src / f"{sid}.npy")  # full K channels
        else:
            np.save(src / f"{sid}.npy", np.load(dirs["cam"] / f"{sid}.npy")[1:])  # foreground only (K-1)
    dirs["folder"] = root / "folder"
    summaries["folder"] = SEED_SOURCES["folder"](samples, dirs["folder"], src_dir=str(src), num_classes=K,
                                                 progress=False)

    fit_rw = TRAINERS["random_walk"](samples, dirs["clip_es"], RW_FIT_CFG, root / "affinity.pt", progress=False)
    return {"dirs": dirs, "summaries": summaries, "masks": masks, "fit_cam": fit_cam, "fit_rw": fit_rw,
            "rw_checkpoint": str(root / "affinity.pt")}


def test_every_method_is_covered():
    assert set(SEED_SOURCES) == {"clip_es", "cam", "folder"}, "new seed source: add it to this file"
    assert set(REFINERS) == {"threshold", "crf", "caa", "par", "random_walk"}, "new refiner: add it here"
    assert set(TRAINERS) == {"cam", "random_walk"}


def test_trainers_ran_on_voc_mini(seeds):
    cam, rw = seeds["fit_cam"], seeds["fit_rw"]
    assert cam["steps"] == 1 and math.isfinite(cam["loss_last"])
    assert rw["n_images"] == len(IDS) and rw["steps"] == 1 and math.isfinite(rw["loss_last"])
    assert 0 < rw["confident_share"] <= 1


@pytest.mark.parametrize("source", ["clip_es", "cam", "folder"])
def test_seed_source_writes_contract_cams(voc, seeds, source):
    """One float16 (K, H, W) `<id>.npy` per id at the photo's size, passing the team-wide CAM contract."""
    _, samples = voc
    cam_dir = seeds["dirs"][source]
    summary = seeds["summaries"][source]
    assert summary["n_images"] == len(IDS)
    assert sorted(p.name for p in cam_dir.iterdir()) == sorted(f"{i}.npy" for i in IDS)
    for s in samples:
        h, w = s["image"].shape[:2]
        raw = np.load(cam_dir / f"{s['id']}.npy")
        assert raw.dtype == np.float16 and raw.shape == (K, h, w), s["id"]
        # finite, in [0, 1], absent classes exactly 0 (load_cams raises naming the file otherwise)
        cams = load_cams(cam_dir / f"{s['id']}.npy", num_classes=K, size=(h, w), labels=s["labels"])
        present = np.flatnonzero(s["labels"]) + 1
        peaks = cams[present].reshape(len(present), -1).max(1)
        for c, peak in zip(present, peaks):  # per-class max-normalised (an all-zero map stays 0)
            assert peak == 0 or peak == pytest.approx(1.0, abs=2e-3), (s["id"], c, peak)
    if source == "clip_es":
        assert summary["mean_gradcam_mass"] > 0
    if source == "cam":  # IRN's constant background
        assert np.all(load_cams(cam_dir / f"{IDS[0]}.npy")[0] == np.float32(np.float16(0.15)))
    if source == "folder":
        assert summary["from_png"] == len(PNG_IDS) and summary["from_npy"] == len(NPY_IDS)
        for sid, mask in seeds["masks"].items():  # masks come back one-hot where decided
            cams = load_cams(cam_dir / f"{sid}.npy")
            decided = mask != IGNORE_INDEX
            np.testing.assert_array_equal(cams.argmax(0)[decided], mask[decided])
        np.testing.assert_allclose(  # a full-K CAM file passes through unchanged
            load_cams(cam_dir / f"{NPY_IDS[0]}.npy"), load_cams(seeds["dirs"]["cam"] / f"{NPY_IDS[0]}.npy"))
        fg_only = load_cams(cam_dir / f"{NPY_IDS[1]}.npy")  # background rebuilt as 1 - max fg
        np.testing.assert_allclose(fg_only[0], 1 - fg_only[1:].max(0), atol=2e-3)


def refiner_cfg(refiner: str, seeds: dict) -> dict:
    return {"threshold": {}, "crf": {"preset": "psa"}, "caa": dict(CLIP_CFG), "par": {"preset": "afa"},
            "random_walk": {"checkpoint": seeds["rw_checkpoint"]}}[refiner]


@pytest.mark.parametrize("source", ["clip_es", "cam", "folder"])
@pytest.mark.parametrize("refiner", ["threshold", "crf", "caa", "par", "random_walk"])
def test_refiner_masks_are_valid_and_scored(voc, seeds, tmp_path, refiner, source):
    ds, samples = voc
    out = tmp_path / "masks"
    workers = 2 if refiner == "crf" else 1  # crf also goes through the process pool (its intended use)
    summary = refine_folder(samples, seeds["dirs"][source], out, refiner, refiner_cfg(refiner, seeds),
                            workers=workers, progress=False)
    assert summary["n_images"] == len(IDS) and summary["workers"] == workers
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in IDS)
    for s in samples:
        mask = load_mask(out / f"{s['id']}.png")
        assert mask.dtype == np.uint8 and mask.shape == s["image"].shape[:2], s["id"]
        values = set(np.unique(mask).tolist())
        assert values <= set(range(K)) | {IGNORE_INDEX}, (s["id"], values)
        allowed = {0, *(np.flatnonzero(s["labels"]) + 1).tolist()}
        if refiner in ABSTAINING:
            allowed.add(IGNORE_INDEX)
        assert values <= allowed, f"{refiner}/{source} {s['id']}: labels {sorted(values - allowed)} not allowed"

    result = evaluate_masks(out, ds.mask_dir, IDS, K, pred_ignore="ignore")
    assert result["n_images"] == len(IDS)
    n_scored = sum(int((load_mask(ds.mask_path(i)) != IGNORE_INDEX).sum()) for i in IDS)
    assert result["n_pixels"] == n_scored
    assert result["miou"] is not None and math.isfinite(result["miou"]) and 0.0 <= result["miou"] <= 1.0
    assert 0.0 < result["coverage"] <= 1.0
    if refiner not in ABSTAINING:
        assert result["coverage"] == 1.0 and summary["coverage"] == 1.0
