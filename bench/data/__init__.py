"""Datasets behind one interface (see base.SegDataset): VOC 2012 (+SBD), COCO 2014, and the synthetic set.

    build_dataset({"kind": "voc", "root": "/data/VOC2012"}, "train_aug")
    build_dataset({"kind": "coco", "root": "/data/coco", "label_space": "coco91"}, "val")
    build_dataset({"kind": "synthetic", "root": "data/synthetic"}, "train")

Optional keys: "mask_dir" (masks to use instead of the ground truth, e.g. pseudo masks), "gt_masks" (the
ground-truth folder under root: scores are computed against it), "label_masks" (the folder image-level labels
come from when the label file lacks an image), "lists_dir" (a folder searched first for split lists, e.g. lists
the prepare stage wrote under data/), "cls_labels" (image-level label file), "with_masks" (default
True), "name" (overrides the dataset's name, e.g. "voc-mini"). Other keys (a profile's whole `data:` section:
fit_split, synthetic, ...) are ignored. A relative root is
taken relative to the repository (params.yaml paths are repo-relative). A missing root is an error saying
what to download and where to put it; there is no fallback to synthetic.
"""

from __future__ import annotations

from pathlib import Path

from bench.data.base import SegDataset, labels_from_mask, load_cls_labels, read_id_list
from bench.data.coco import COCO_DOWNLOAD_HINT, LABEL_SPACES, COCODataset
from bench.data.voc import VOC_CLASSES, VOC_DOWNLOAD_HINT, VOCDataset
from bench.provenance import REPO_ROOT

__all__ = [
    "KINDS",
    "VOC_CLASSES",
    "COCODataset",
    "SegDataset",
    "VOCDataset",
    "build_dataset",
    "labels_from_mask",
    "load_cls_labels",
    "read_id_list",
]

KINDS = ("voc", "coco", "synthetic")


def build_dataset(cfg: dict, split: str) -> SegDataset:
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise ValueError(f"dataset kind must be one of {KINDS}, got {kind!r}")
    root = cfg.get("root")
    if root and not Path(root).is_absolute():
        root = REPO_ROOT / root
    if not root or not Path(root).is_dir():
        raise FileNotFoundError(_missing_root_message(kind, root))
    common = {
        "mask_dir": cfg.get("mask_dir"),
        "cls_labels": cfg.get("cls_labels"),
        "with_masks": cfg.get("with_masks", True),
        "gt_masks": cfg.get("gt_masks"),
        "label_masks": cfg.get("label_masks"),
    }
    lists_dir = cfg.get("lists_dir")
    if lists_dir and not Path(lists_dir).is_absolute():
        lists_dir = REPO_ROOT / lists_dir
    if kind == "coco":
        if "label_space" not in cfg:
            raise ValueError(
                f"a COCO dataset needs 'label_space' (one of {LABEL_SPACES}): it is written into every result"
            )
        ds = COCODataset(root, split, label_space=cfg["label_space"], **common)
    elif kind == "voc":
        ds = VOCDataset(_voc_root(Path(root)), split, name="voc", lists_dir=lists_dir, **common)
    else:
        ds = VOCDataset(root, split, name="synthetic", lists_dir=lists_dir, **common)
    if cfg.get("name"):
        ds.name = str(cfg["name"])
    return ds


def _voc_root(root: Path) -> Path:
    """Accept the VOC2012 folder itself or a parent holding VOC2012/ or VOCdevkit/VOC2012/ (e.g. voc-mini)."""
    if (root / "JPEGImages").is_dir():
        return root
    for sub in ("VOC2012", "VOCdevkit/VOC2012"):
        if (root / sub / "JPEGImages").is_dir():
            return root / sub
    return root


def _missing_root_message(kind: str, root) -> str:
    where = f"dataset root {root!r} not found" if root else "no dataset root given (cfg['root'])"
    if kind == "voc":
        return f"{where}: {VOC_DOWNLOAD_HINT}"
    if kind == "coco":
        return f"{where}: {COCO_DOWNLOAD_HINT}"
    return (
        f"{where}: generate it with `python -m bench.data.synthetic --out {root or 'DIR'} --train N --val M "
        "--pretrain P --size S --seed K` (the pipeline's prepare stage does this)"
    )
