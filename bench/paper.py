"""Published numbers (mIoU, %) that the report puts next to ours.

Sources: WeakCLIP, Zhu et al., IJCV 133 (2025) 1085–1105 and its public release, and the papers of
the baselines, as collected in the project's docs (docs/method.md, docs/baselines.md). Rows
marked `caveat` come from the paper's text as reported by others. Each row says which split it is
on, so a reader never compares train with train_aug or val with test.
"""
from __future__ import annotations

import pandas as pd

# (table, method key, method label, split, metric, value, caveat)
_PUBLISHED = [
    # Pseudo masks on VOC 2012 train (seeds -> refined), docs/baselines.md "Published anchor numbers".
    ("pseudo_voc", "cam", "CAM (ResNet-50)", "train", "seed_miou", 48.3, ""),
    ("pseudo_voc", "random_walk", "IRN (ResNet-50)", "train", "pseudo_miou", 66.5, ""),
    ("pseudo_voc", "affinitynet", "AffinityNet (ResNet-38)", "train", "pseudo_miou", 59.7, "range 58.1–61.0"),
    ("pseudo_voc", "clip_es", "CLIP-ES seeds, no CAA", "train", "seed_miou", 58.6, ""),
    ("pseudo_voc", "caa", "CLIP-ES seeds + CAA", "train", "seed_miou", 70.8, ""),
    ("pseudo_voc", "crf", "CLIP-ES + CAA + CRF", "train", "pseudo_miou", 75.0, "68.7 on train_aug"),
    ("pseudo_voc", "mctformer", "MCTformer-V2 (WeakCLIP's seeds)", "train", "pseudo_miou", 69.1, ""),
    ("pseudo_voc", "weakclip", "WeakCLIP", "train", "pseudo_miou", 77.2, ""),
    # Final segmentation (stage 3) on VOC val / test.
    ("final_voc", "random_walk", "IRN", "val", "final_miou", 63.5, ""),
    ("final_voc", "clip_es", "CLIP-ES", "val", "final_miou", 73.8, ""),
    ("final_voc", "mctformer", "MCTformer-V2", "val", "final_miou", 71.9, ""),
    ("final_voc", "weakclip", "WeakCLIP", "val", "final_miou", 74.0, ""),
    ("final_voc", "weakclip", "WeakCLIP", "test", "final_miou", 73.8, "paper"),
    # COCO 2014 (label space as in each paper).
    ("coco", "weakclip", "WeakCLIP", "train", "pseudo_miou", 48.4, ""),
    ("coco", "weakclip", "WeakCLIP", "val", "final_miou", 46.1, "one survey lists 47.4"),
    ("coco", "clip_es", "CLIP-ES", "val", "final_miou", 45.4, ""),
    ("coco", "random_walk", "IRN", "val", "final_miou", 41.4, ""),
    # WeakCLIP ablation, VOC val (paper).
    ("ablation_voc", "abl_matching", "co-attention matching", "val", "final_miou", 67.4, "paper"),
    ("ablation_voc", "abl_prompt", "+ learnable prompt", "val", "final_miou", 68.9, "paper"),
    ("ablation_voc", "abl_adapter", "+ pyramid adapter", "val", "final_miou", 70.3, "paper"),
    ("ablation_voc", "full", "+ text-guided decoder (WeakCLIP)", "val", "final_miou", 72.6, "paper"),
]

PAPER_TRAINABLE_SHARE = 0.124  # "12.4% of parameters trained" (paper)


def published() -> pd.DataFrame:
    cols = ["table", "method", "label", "split", "metric", "value", "caveat"]
    frame = pd.DataFrame(_PUBLISHED, columns=cols)
    frame["value"] = frame["value"] / 100.0  # fractions, like every mIoU the suite computes
    return frame
