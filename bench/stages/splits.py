"""The protocol's three splits (docs/protocol.md) and the dataset each stage reads for them.

    data.fit_split    models are fitted on these images (seed classifiers, refiners that train, WeakCLIP,
                      stage 3) and every mask-making stage writes a mask for each of them (VOC: train_aug)
    data.score_split  pseudo masks are scored on these images, a subset of fit_split (VOC: train)
    data.val_split    stage-3 models are scored on these images (VOC: val)

Scores are computed against `data.gt_masks` (VOC: the official SegmentationClass, never SBD's coarser
SegmentationClassAug where an official mask exists); the fit split's image-level labels come from the label
file or `data.label_masks` (VOC: SegmentationClassAug). On the synthetic profiles fit and score are one split.
"""
from __future__ import annotations

from pathlib import Path

from ..data import build_dataset
from .common import Stage

ROLES = {"fit": "fit_split", "score": "score_split", "val": "val_split"}


def split_name(stage: Stage, role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"split role must be one of {sorted(ROLES)}, got {role!r}")
    return stage.data_cfg[ROLES[role]]


def protocol_dataset(stage: Stage, role: str, mask_dir: str | Path | None = None):
    """The dataset of one split role. `mask_dir`: masks to train on (seeds, pseudo masks) in place of ground
    truth; a fit split read without one reads no masks at all (VOC's train_aug has no official masks)."""
    cfg = dict(stage.data_cfg)
    if mask_dir is not None:
        cfg["mask_dir"] = str(mask_dir)
    elif role == "fit":
        cfg["with_masks"] = False
    return build_dataset(cfg, split_name(stage, role))


def scored_row_fields(stage: Stage, role: str, ds) -> dict:
    """The columns every scored result row carries: the split it was scored on (`split`), the split the
    models were fitted on, and the ground-truth folder it was scored against."""
    return {"split": split_name(stage, role), "fit_split": split_name(stage, "fit"),
            "gt": stage.data_cfg.get("gt_masks") or ds.gt_mask_dir.name}


def check_score_within_fit(stage: Stage, fit_ids, score_ids) -> None:
    """Pseudo masks exist for fit images only: a scored image outside the fit split is a params error."""
    outside = sorted(set(score_ids) - set(fit_ids))
    if outside:
        raise ValueError(f"params data.score_split {split_name(stage, 'score')!r} has {len(outside)} image(s) "
                         f"outside data.fit_split {split_name(stage, 'fit')!r} (e.g. {outside[:3]}): pseudo "
                         "masks are made for the fit split only")
