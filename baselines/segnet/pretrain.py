"""The synthetic profile's stand-in for ImageNet weights: pre-train the stage-3 backbone as an image classifier.

VOC and COCO start DeepLab-LargeFOV from a ResNet-101 pre-trained on ImageNet (a local file). The synthetic
profile has no such file, and a backbone trained from scratch on 300 images learns so little that its val
mIoU barely depends on the masks it is given (30.6% on ground-truth masks, 27.8% on the seeds). So the
backbone is first trained as a multi-label image classifier on the synthetic *pre-training* split, which is
disjoint from train and val, as ImageNet is from VOC. The recipe is the `cam` seed source's classifier
(timm backbone + global average pooling + linear, BCE; baselines/cam.py), so no second training loop exists.
Like ImageNet weights it is trained at the classification stride (32 in the synthetic params) and stage 3
dilates it to stride 8; the weights do not depend on the stride.

Writes the backbone's state dict (timm names, no classifier keys), the format `load_backbone_weights` reads,
and returns the classifier's mAP on held-out labelled images against chance computed the same way.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from baselines import cam
from baselines.common import check_sample
from weakclip.core.io import atomic_path
from weakclip.pretrain import chance_map, mean_ap


@torch.no_grad()
def classifier_scores(model: cam.CAMNet, dataset, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, K-1), labels (N, K-1)) of the classifier on every item of a labelled dataset, at native
    size. Items of one batch must share a size (synthetic images all do)."""
    model.eval()
    device = next(model.parameters()).device
    scores, labels = [], []
    for start in range(0, len(dataset), batch_size):
        batch = [check_sample(dataset[i]) for i in range(start, min(start + batch_size, len(dataset)))]
        x = torch.stack([cam.image_tensor(image) for _, image, _ in batch]).to(device)  # (B, 3, H, W)
        scores.append(torch.sigmoid(model(x)).cpu().numpy())
        labels.append(np.stack([lab for _, _, lab in batch]))
    return np.concatenate(scores), np.concatenate(labels)


def pretrain_backbone(pretrain_ds, eval_ds, cfg: dict, out_path: str | Path, progress: bool = True) -> dict:
    """Train the classifier on `pretrain_ds` (items with id, image, labels), save its backbone to out_path
    atomically, and score it on `eval_ds`. cfg: baselines.cam.CAMConfig fields (backbone, epochs, lr, ...)."""
    out_path = Path(out_path)
    if len(pretrain_ds) == 0:
        raise ValueError("pretrain_backbone: the pre-training split is empty")
    classifier_path = out_path.with_name(out_path.stem + ".classifier.pt")
    fit = cam.fit(pretrain_ds, cfg, str(classifier_path), progress=progress)
    model, c = cam.load_cam_model(str(classifier_path), device="cpu")
    classifier_path.unlink()  # only the backbone is an output
    with atomic_path(out_path, suffix=".pth") as tmp:
        torch.save(model.backbone.state_dict(), tmp)

    scores, labels = classifier_scores(model, eval_ds)
    val_map, _ = mean_ap(scores, labels)
    return {
        "classification": {"map": val_map, "chance_map": chance_map(labels, c.seed), "n_images": len(labels)},
        "train": {
            "steps": fit["steps"],
            "epochs": c.epochs,
            "n_pretrain_images": len(pretrain_ds),
            "loss_first": fit["loss_first"],
            "loss_last": fit["loss_last"],
            "wall_s": fit["seconds"],
            "images_per_s": fit["steps"] * c.batch_size / max(fit["seconds"], 1e-9),
        },
        "config": asdict(c),
    }
