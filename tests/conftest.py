"""Shared test fixtures: automatic seeding, real-data locations, GPU skipping."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

# Without CUDA the Triton kernels run under the interpreter. TRITON_INTERPRET is read when the kernels are
# defined (first import of weakclip.kernels.triton), so it is set here, before any test module imports them
# in whatever order pytest collects the files.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
VOC_MINI_DEFAULT = REPO_ROOT.parent / "shared" / "data" / "voc-mini"


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state (python, numpy, torch)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of small CPU ops: on a shared 2-core machine OpenMP spin contention
    makes tiny tensors up to ~100x slower with two. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_clip():
    """The tiny open_clip model (random init, seed 0), shared by a module's tests: they must not modify it."""
    from weakclip.clip_towers import build_clip

    torch.manual_seed(0)
    return build_clip("tiny")


@pytest.fixture(scope="module")
def vitb_clip():
    """open_clip ViT-B/16 (random init, seed 0), shared by a module's tests: they must not modify it."""
    from weakclip.clip_towers import build_clip

    torch.manual_seed(0)
    return build_clip("ViT-B-16")


@pytest.fixture(scope="session")
def voc_mini_root() -> Path:
    """The voc-mini folder (real VOC photos; holds VOC2012/ and cls_labels.json); env VOC_MINI overrides."""
    root = Path(os.environ.get("VOC_MINI", VOC_MINI_DEFAULT))
    if not (root / "VOC2012" / "JPEGImages").is_dir():
        pytest.skip(f"voc-mini not found at {root} (set VOC_MINI to its folder)")
    return root


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none available)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def write_voc_tree(
    root: Path, splits: dict[str, list[str]], size=(24, 32), num_classes: int = 21, seed: int = 0
) -> Path:
    """Write a tiny VOC-layout dataset (random JPEGs, palette masks with a few classes and some 255) under
    `root`; returns root. Image i of a split has classes {i % (C-1) + 1, 0} and a 255 stripe."""
    from PIL import Image

    from weakclip.core.io import save_mask

    rng = np.random.default_rng(seed)
    h, w = size
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for k, image_id in enumerate(ids):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
                root / "JPEGImages" / f"{image_id}.jpg", quality=90
            )
            mask = np.zeros((h, w), np.uint8)
            mask[h // 4 :, w // 4 :] = k % (num_classes - 1) + 1
            mask[:, w // 2] = 255
            save_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
    return root


@pytest.fixture
def tiny_voc_root(tmp_path) -> Path:
    """A 3-train / 2-val VOC-layout tree with random images (no label file: labels come from the masks)."""
    return write_voc_tree(tmp_path / "voc", {"train": ["a_0", "a_1", "a_2"], "val": ["b_0", "b_1"]})


@pytest.fixture
def make_voc_tree():
    """The `write_voc_tree(root, splits, size, num_classes, seed)` helper, for tests needing a custom tree."""
    return write_voc_tree
