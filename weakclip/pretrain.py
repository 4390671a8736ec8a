"""Contrastive pre-training of the tiny CLIP for the synthetic profile, and its zero-shot check.

No pretrained CLIP can be downloaded for the synthetic profile, so this trains
build_clip("tiny") with open_clip's ClipLoss on the generator's pre-training split
(ImageSets/Segmentation/pretrain.txt + captions.json {id: caption}), disjoint from train/val.
WeakCLIP adapts whatever image-text knowledge the towers hold, so the zero-shot score on the
val images is the number that says whether the rest of the synthetic pipeline means anything.

Zero-shot metrics (on <root>/ImageSets/Segmentation/<eval_split>.txt, labels from cls_labels.json):
- map: mean over foreground classes (that occur at least once) of the average precision of the
  image-text cosine score, ranking images per class (multi-label). chance_map: the same
  computation on scores drawn at random (mean of 20 draws).
- top1_any: share of images whose highest-scoring class is one of its labels; chance_top1_any:
  expected value for a uniformly random class (mean of n_labels / C).
- top1_largest: share whose highest-scoring class is the one with most pixels in the ground-truth
  mask (when SegmentationClass masks exist); chance_top1_largest = 1 / C.

Default recipe (measured 2026-11-25 on the synthetic profile, 64 px, 3,000 captioned images, TINY_CLIP_CFG
with context 24, 2 cores shared with other jobs, 1 thread, ~150 images/s): batch 64, AdamW lr 2e-3
(betas 0.9/0.98, wd 0.1), 40 warm-up steps, cosine to 1e-5 over 500 steps (~10 epochs), 207 s:
zero-shot mAP 0.28 (chance 0.14), top1_any 0.41 (0.10), top1_largest 0.26 (0.05). 300 steps (125 s)
gave 0.27 / 0.37 / 0.25.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.loss import ClipLoss
from PIL import Image
from tqdm.auto import tqdm

from weakclip.clip_towers import build_clip, get_tokenizer, zero_shot_classifier
from weakclip.core.io import atomic_path, load_image, load_mask
from weakclip.core.optim import adamw
from weakclip.core.schedule import lr_at


@dataclass
class PretrainConfig:
    # build_clip("tiny", **overrides). Context 24: the generator's 3-object captions run to 22 tokens and
    # 12% of them would lose their last class at the default 16 (the prompts need only 13).
    clip_overrides: dict = field(default_factory=lambda: {"context_length": 24})
    batch_size: int = 64
    steps: int = 500  # length of the schedule (warm-up + cosine); ~3.5 min at 64 px on 2 shared cores
    time_budget_s: float | None = None  # safety stop; the metrics say when it cut the run short
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup_steps: int = 40
    weight_decay: float = 0.1  # not applied to gains, biases, embeddings or logit_scale
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    crop_scale: tuple[float, float] = (0.7, 1.0)  # random resized crop: area fraction
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # ... and aspect ratio
    flip: bool = True
    seed: int = 0
    log_every: int = 10
    eval_split: str = "val"
    eval_template: str = "a photo of a {}."
    eval_batch: int = 256
    # torch.set_num_threads for this (stage) process; None = torch's default. On 2 cores shared with other
    # jobs, 2 threads ran ~5x slower than 1 (spinning OpenMP threads fight for the cores).
    threads: int | None = 1
    progress: bool = True


def _read_ids(root: Path, split: str) -> list[str]:
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _load_images(root: Path, ids: list[str], size: int) -> torch.Tensor:
    """(N, 3, size, size) uint8; images of another size are resized (bicubic) to size x size."""
    out = torch.empty(len(ids), 3, size, size, dtype=torch.uint8)
    for i, image_id in enumerate(ids):
        img = load_image(root / "JPEGImages" / f"{image_id}.jpg")
        if img.shape[:2] != (size, size):
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
        out[i] = torch.from_numpy(img).permute(2, 0, 1)
    return out


def load_pretrain_split(
    root, size: int, split: str = "pretrain"
) -> tuple[torch.Tensor, list[str], list[str]]:
    """(images (N, 3, size, size) uint8, captions, ids) of the captioned pre-training split."""
    root = Path(root)
    ids = _read_ids(root, split)
    cap_path = root / "captions.json"
    if not cap_path.is_file():
        raise FileNotFoundError(f"captions not found: {cap_path}")
    captions = json.loads(cap_path.read_text())
    missing = [i for i in ids if i not in captions]
    if missing:
        raise KeyError(f"{cap_path}: no caption for {len(missing)} {split} images, e.g. {missing[:3]}")
    return _load_images(root, ids, size), [captions[i] for i in ids], ids


def load_labelled_split(root, size: int, split: str = "val"):
    """(images uint8 (N, 3, size, size), labels (N, C) float multi-hot over the C foreground classes,
    largest (N,) index 0..C-1 of the class with most mask pixels, or None without masks, class_names (C))."""
    root = Path(root)
    ids = _read_ids(root, split)
    meta_path = root / "cls_labels.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"image-level labels not found: {meta_path}")
    meta = json.loads(meta_path.read_text())
    class_names = meta["classes"][1:]  # index 0 is background
    labels = np.zeros((len(ids), len(class_names)), np.float32)
    for i, image_id in enumerate(ids):
        for c in meta["images"][image_id]["labels"]:
            labels[i, int(c) - 1] = 1.0
    largest = None
    if all((root / "SegmentationClass" / f"{i}.png").is_file() for i in ids):
        largest = np.zeros(len(ids), np.int64)
        for i, image_id in enumerate(ids):
            counts = np.bincount(
                load_mask(root / "SegmentationClass" / f"{image_id}.png").ravel(), minlength=256
            )
            fg = counts[1 : len(class_names) + 1]
            largest[i] = int(fg.argmax()) if fg.sum() else -1
    return _load_images(root, ids, size), labels, largest, class_names


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


def augment_batch(images_uint8: torch.Tensor, cfg: PretrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Mild random resized crop + horizontal flip as one batched affine resampling; CLIP normalisation.
    (B, 3, S, S) uint8 -> (B, 3, S, S) float."""
    b = images_uint8.shape[0]
    area = torch.empty(b).uniform_(*cfg.crop_scale, generator=gen)
    log_r = torch.empty(b).uniform_(math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), generator=gen)
    sx = (area * log_r.exp()).sqrt().clamp(max=1.0)  # crop width / image width
    sy = (area / log_r.exp()).sqrt().clamp(max=1.0)
    tx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sx)  # centre, in [-1, 1] coordinates
    ty = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, tx, sy, ty
    x = normalise(images_uint8)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float | None:
    """Non-interpolated AP of one class (mean precision at each positive's rank); None without positives."""
    n_pos = int(targets.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    hits = targets[order] > 0
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.mean())


def mean_ap(scores: np.ndarray, labels: np.ndarray) -> tuple[float, list[float | None]]:
    aps = [average_precision(scores[:, c], labels[:, c]) for c in range(labels.shape[1])]
    return float(np.mean([a for a in aps if a is not None])), aps


def chance_map(labels: np.ndarray, seed: int = 0, draws: int = 20) -> float:
    """mean_ap of uniformly random scores for `labels` (N, C), averaged over `draws` seeded draws."""
    rng = np.random.default_rng(seed)
    return float(np.mean([mean_ap(rng.random(labels.shape), labels)[0] for _ in range(draws)]))


@torch.no_grad()
def zero_shot_eval(
    clip,
    tokenizer,
    images_uint8: torch.Tensor,
    labels: np.ndarray,
    class_names: list[str],
    template: str = "a photo of a {}.",
    largest: np.ndarray | None = None,
    batch: int = 256,
    seed: int = 0,
) -> dict:
    """Zero-shot multi-label scores of `clip` (see the module docstring for the definitions)."""
    clip.eval()
    text = zero_shot_classifier(clip, tokenizer, class_names, template)  # (C, E)
    feats = [
        F.normalize(clip.encode_image(normalise(images_uint8[i : i + batch])), dim=-1)
        for i in range(0, len(images_uint8), batch)
    ]
    scores = (torch.cat(feats) @ text.T).numpy()  # (N, C)
    m, aps = mean_ap(scores, labels)
    chance = chance_map(labels, seed)
    top = scores.argmax(1)
    out = {
        "map": m,
        "chance_map": chance,
        "ap_per_class": aps,
        "top1_any": float(labels[np.arange(len(top)), top].mean()),
        "chance_top1_any": float(labels.sum(1).mean() / labels.shape[1]),
        "top1_largest": None,
        "chance_top1_largest": 1.0 / labels.shape[1],
        "n_images": len(labels),
        "template": template,
        "class_names": list(class_names),
    }
    if largest is not None:
        ok = largest >= 0
        out["top1_largest"] = float((top[ok] == largest[ok]).mean())
    return out


def _optimizer(clip, cfg: PretrainConfig) -> torch.optim.AdamW:
    def no_decay(name, p):
        return (
            p.ndim < 2
            or "bn" in name
            or "ln" in name
            or "bias" in name
            or "logit_scale" in name
            or "embedding" in name
            or "token" in name
        )

    named = [(n, p) for n, p in clip.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
    ]
    return adamw(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def _contrastive_training(clip, images: torch.Tensor, tokens: torch.Tensor, cfg: PretrainConfig,
                          log) -> tuple[list[float], bool, float]:
    """cfg.steps contrastive steps over (images, tokens) in seeded epoch permutations; returns (each step's
    loss, whether cfg.time_budget_s stopped it early, wall seconds). log: an open text file for JSONL lines
    (step, loss, lr, logit_scale, elapsed_s) every cfg.log_every steps, or None."""
    n = len(images)
    optimizer = _optimizer(clip, cfg)
    loss_fn = ClipLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = n // cfg.batch_size
    losses: list[float] = []
    stopped_by_budget = False
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=gen)
    bar = tqdm(total=cfg.steps, desc="pretrain clip", disable=not cfg.progress, dynamic_ncols=True)
    for step in range(cfg.steps):
        if cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s:
            stopped_by_budget = True
            break
        k = step % per_epoch
        if k == 0 and step > 0:
            perm = torch.randperm(n, generator=gen)
        idx = perm[k * cfg.batch_size : (k + 1) * cfg.batch_size]
        lr = lr_at(step, cfg.lr, cfg.steps, cfg.min_lr, cfg.warmup_steps, warmup_ratio=0.0)
        for g in optimizer.param_groups:
            g["lr"] = lr
        x = augment_batch(images[idx], cfg, gen)
        img_f = F.normalize(clip.encode_image(x), dim=-1)
        txt_f = F.normalize(clip.encode_text(tokens[idx]), dim=-1)
        loss = loss_fn(img_f, txt_f, clip.logit_scale.exp())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain_clip: non-finite contrastive loss at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, math.log(100))  # as open_clip does
        losses.append(loss.item())
        bar.update(1)
        if (step + 1) % cfg.log_every == 0:
            recent = float(np.mean(losses[-cfg.log_every :]))
            bar.set_postfix(loss=f"{recent:.3f}", lr=f"{lr:.1e}")
            if log:
                log.write(json.dumps({"step": step + 1, "loss": recent, "lr": lr,
                                      "logit_scale": clip.logit_scale.exp().item(),
                                      "elapsed_s": time.perf_counter() - t0}) + "\n")
                log.flush()
    bar.close()
    return losses, stopped_by_budget, time.perf_counter() - t0


def pretrain_clip(dataset_root, out_path, cfg: PretrainConfig, log_path=None) -> dict:
    """Train the tiny CLIP contrastively, evaluate it zero-shot, write {"cfg", "state_dict", "metrics"}
    to out_path atomically (readable by build_clip("tiny", weights=out_path)); returns the metrics.
    log_path: optional JSONL of (step, loss, lr, logit_scale, elapsed)."""
    root = Path(dataset_root)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    clip = build_clip("tiny", **cfg.clip_overrides).train()
    size = clip.tiny_cfg["vision_cfg"]["image_size"]
    tokenizer = get_tokenizer(clip)
    images, captions, _ = load_pretrain_split(root, size)
    tokens = tokenizer(captions)  # (N, context_length)
    n = len(images)
    if n < cfg.batch_size:
        raise ValueError(f"pretrain split of {root} has {n} images, fewer than batch_size {cfg.batch_size}")
    # The log appears under its name only when training finishes: an interrupted run leaves no partial log.
    with (atomic_path(log_path) if log_path else contextlib.nullcontext()) as tmp_log, \
            (open(tmp_log, "w") if tmp_log else contextlib.nullcontext()) as log:
        losses, stopped_by_budget, wall = _contrastive_training(clip, images, tokens, cfg, log)
    steps_done = len(losses)

    val_images, labels, largest, class_names = load_labelled_split(root, size, cfg.eval_split)
    t_eval = time.perf_counter()
    zs = zero_shot_eval(
        clip, tokenizer, val_images, labels, class_names, cfg.eval_template, largest, cfg.eval_batch, cfg.seed
    )
    metrics = {
        "zero_shot": zs,
        "train": {
            "steps": steps_done,
            "images_seen": steps_done * cfg.batch_size,
            "epochs": steps_done * cfg.batch_size / n,
            "n_pretrain_images": n,
            "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "chance_loss": math.log(cfg.batch_size),
            "wall_s": wall,
            "images_per_s": steps_done * cfg.batch_size / max(wall, 1e-9),
            "stopped_by_time_budget": stopped_by_budget,
            "eval_s": time.perf_counter() - t_eval,
        },
        "config": json.loads(json.dumps(asdict(cfg))),
        "clip_cfg": clip.tiny_cfg,
    }
    clip.eval()
    with atomic_path(out_path, suffix=".pt") as tmp:
        torch.save({"cfg": clip.tiny_cfg, "state_dict": clip.state_dict(), "metrics": metrics}, tmp)
    return metrics
