"""`cam` seed source: class activation maps of a timm image-level classifier (CAM, Zhou et al. 2016; IRN recipe).

fit(): timm backbone (random init, or a local weights file) + global average pooling + a bias-free 1x1
classifier, trained with multi-label BCE on the image-level labels (IRN: SGD, poly schedule, classifier at
10x the learning rate, random rescale of the long side + flip + crop).
generate(): ReLU(classifier ⊙ features) at scales 1.0/0.5/1.5/2.0, each with its horizontal flip, upsampled
(to the size rounded up to the output stride, then cropped: IRN's alignment) and summed; each present class
divided by its max; background a constant (0.15 in IRN).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from weakclip.core.config import config_from
from weakclip.core.device import resolve_device
from weakclip.core.io import atomic_path
from weakclip.core.optim import make_optimizer
from weakclip.core.schedule import poly_factor

from .common import assemble_cams, check_sample, iter_samples, save_cams

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class CAMConfig:
    num_classes: int = 21  # K, background included (the classifier has K-1 outputs)
    backbone: str = "resnet50"  # timm model name (IRN: ResNet-50); synthetic: resnet18
    backbone_weights: str | None = None  # local timm weights file for the backbone (None = random init)
    output_stride: int = 16  # IRN: last stage un-strided -> 16
    epochs: int = 5
    batch_size: int = 16
    optimizer: str = "sgd"  # "sgd" (IRN PolyOptimizer: momentum 0.9) or "adamw"
    lr: float = 0.1  # IRN cam_learning_rate (backbone); classifier at 10x
    weight_decay: float = 1e-4
    resize_long: tuple = (320, 640)  # random long-side range for training (IRN)
    crop_size: int = 512  # training crop (IRN)
    scales: tuple = (1.0, 0.5, 1.5, 2.0)  # inference scales, each with its flip
    bg_score: float = 0.15  # constant background channel (IRN cam_eval_thres)
    seed: int = 0
    device: str = "auto"


class CAMNet(nn.Module):
    def __init__(self, cfg: CAMConfig):
        super().__init__()
        kw = {"output_stride": cfg.output_stride} if cfg.output_stride != 32 else {}
        if cfg.backbone_weights:
            kw.update(pretrained=True, pretrained_cfg_overlay={"file": str(cfg.backbone_weights)})
        self.backbone = timm.create_model(cfg.backbone, num_classes=0, global_pool="", **kw)
        self.classifier = nn.Conv2d(self.backbone.num_features, cfg.num_classes - 1, 1, bias=False)

    def forward(self, x):  # (B, 3, H, W) -> logits (B, K-1)
        f = self.backbone.forward_features(x)  # (B, C, h, w)
        return self.classifier(f.mean((2, 3), keepdim=True)).flatten(1)

    def cams(self, x):  # (B, 3, H, W) -> ReLU CAMs (B, K-1, h, w)
        return F.relu(F.conv2d(self.backbone.forward_features(x), self.classifier.weight))


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float, ImageNet-normalised (the classifier's input)."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _train_view(image: np.ndarray, cfg: CAMConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random long-side rescale, horizontal flip, random crop/zero-pad to crop_size: (3, S, S)."""
    x = image_tensor(image)
    h, w = x.shape[1:]
    long = rng.integers(cfg.resize_long[0], cfg.resize_long[1] + 1)
    f = long / max(h, w)
    x = F.interpolate(x[None], size=(max(1, round(h * f)), max(1, round(w * f))), mode="bilinear",
                      align_corners=False)[0]
    if rng.random() < 0.5:
        x = x.flip(-1)
    s = cfg.crop_size
    out = torch.zeros(3, s, s)
    h, w = x.shape[1:]
    y0, x0 = rng.integers(0, max(h - s, 0) + 1), rng.integers(0, max(w - s, 0) + 1)  # crop offsets
    oy, ox = rng.integers(0, max(s - h, 0) + 1), rng.integers(0, max(s - w, 0) + 1)  # paste offsets
    crop = x[:, y0:y0 + s, x0:x0 + s]
    out[:, oy:oy + crop.shape[1], ox:ox + crop.shape[2]] = crop
    return out


def fit(dataset, cfg: dict | CAMConfig, out_path: str, progress: bool = True) -> dict:
    """Train the classifier on (image, labels) of `dataset`; save {"cfg", "state_dict", "history"} to out_path."""
    c = config_from(CAMConfig, cfg)
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    dev = resolve_device(c.device)
    samples = dataset if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__") else list(dataset)
    n = len(samples)
    model = CAMNet(c).to(dev).train()
    groups = [{"params": model.backbone.parameters(), "lr": c.lr},
              {"params": model.classifier.parameters(), "lr": 10 * c.lr}]
    opt = make_optimizer(groups, c.optimizer, c.lr, c.weight_decay, what="cam: optimizer")
    steps = c.epochs * max(1, n // c.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: poly_factor(i, steps))  # IRN's poly
    history, t0, step = [], time.perf_counter(), 0
    bar = tqdm(total=steps, desc="cam.fit", disable=not progress)
    for _ in range(c.epochs):
        order = rng.permutation(n)
        for b in range(max(1, n // c.batch_size)):
            batch = [samples[int(i)] for i in order[b * c.batch_size:(b + 1) * c.batch_size]]
            checked = [check_sample(s, c.num_classes) for s in batch]
            x = torch.stack([_train_view(img, c, rng) for _, img, _ in checked]).to(dev)
            y = torch.from_numpy(np.stack([lab for _, _, lab in checked])).to(dev)
            loss = F.binary_cross_entropy_with_logits(model(x), y)  # = multilabel soft-margin loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(loss.item())
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    bar.close()
    with atomic_path(out_path, suffix=".pt") as tmp:
        torch.save({"cfg": asdict(c), "state_dict": model.state_dict(), "history": history}, tmp)
    return {"source": "cam", "steps": step, "seconds": time.perf_counter() - t0,
            "loss_first": history[0] if history else None, "loss_last": history[-1] if history else None,
            "checkpoint": str(out_path), "config": asdict(c)}


def load_cam_model(checkpoint: str, device: str = "auto") -> tuple[CAMNet, CAMConfig]:
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"cam classifier checkpoint not found: {checkpoint} (run baselines.cam.fit first)")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    c = config_from(CAMConfig, ckpt["cfg"], device=device, backbone_weights=None)
    model = CAMNet(c)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(resolve_device(device)).eval(), c


@torch.no_grad()
def image_cams(model: CAMNet, image: np.ndarray, labels: np.ndarray, c: CAMConfig) -> np.ndarray:
    """Contract CAMs (K, H, W) for one image: multi-scale + flip, per-class max-normalised, constant bg."""
    dev = next(model.parameters()).device
    H, W = image.shape[:2]
    s = c.output_stride
    up = (int(np.ceil(H / s)) * s, int(np.ceil(W / s)) * s)
    x = image_tensor(image).to(dev)[None]
    total = torch.zeros(c.num_classes - 1, H, W, device=dev)
    for scale in c.scales:
        xs = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        cam = model.cams(torch.cat([xs, xs.flip(-1)]))  # (2, K-1, h, w)
        cam = cam[0] + cam[1].flip(-1)
        total += F.interpolate(cam[None], size=up, mode="bilinear", align_corners=False)[0, :, :H, :W]
    total /= F.adaptive_max_pool2d(total, 1) + 1e-5
    return assemble_cams(total.cpu().numpy(), labels, c.bg_score)


def generate(sample_iter: Iterable[dict], out_dir: str, checkpoint: str | None = None, progress: bool = True,
             device: str = "auto", **overrides) -> dict:
    """Write contract CAMs for every sample from a fitted classifier (`checkpoint`, from fit()).

    overrides: inference-time fields of CAMConfig (scales, bg_score)."""
    if checkpoint is None:
        raise ValueError("cam.generate: checkpoint= (the file written by baselines.cam.fit) is required")
    allowed = {"scales", "bg_score"}
    if set(overrides) - allowed:
        raise ValueError(f"cam.generate: unknown options {sorted(set(overrides) - allowed)}; allowed {allowed}")
    model, c = load_cam_model(checkpoint, device)
    c = config_from(CAMConfig, c, **overrides)
    out_dir, n, t0 = Path(out_dir), 0, time.perf_counter()
    for sample in tqdm(iter_samples(sample_iter), desc="cam", disable=not progress):
        sid, image, labels = check_sample(sample, c.num_classes)
        save_cams(out_dir / f"{sid}.npy", image_cams(model, image, labels, c))
        n += 1
    dt = time.perf_counter() - t0
    return {"source": "cam", "n_images": n, "seconds": dt, "images_per_s": n / max(dt, 1e-9),
            "checkpoint": str(checkpoint), "config": asdict(c)}
