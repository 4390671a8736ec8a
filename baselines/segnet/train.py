"""Train DeepLab-LargeFOV on (pseudo) masks: SGD + poly schedule, resumable, logged as JSONL.

Resuming gives the same weights as an uninterrupted run because nothing random depends on
history: sample order and augmentation are a function of (seed, position in the sample
stream) and the model's own randomness (dropout) is reseeded from (seed, iteration).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from baselines.segnet.model import DeepLabLargeFOV, SegNetConfig, build_segnet
from weakclip.core.checkpoint import JsonlLog, save_checkpoint
from weakclip.core.io import IGNORE_INDEX, write_json
from weakclip.core.optim import make_optimizer as build_optimizer
from weakclip.core.precision import autocast as precision_autocast
from weakclip.core.precision import precision_used
from weakclip.core.schedule import poly_factor

CHECKPOINT = "last.pt"
MODEL = "model.pt"
LOG = "train_log.jsonl"
SUMMARY = "train_summary.json"


def make_optimizer(model: DeepLabLargeFOV, cfg: SegNetConfig) -> torch.optim.Optimizer:
    """Two groups: backbone at cfg.lr, the new head at cfg.lr * cfg.head_lr_mult. SGD with momentum is the
    DeepLab recipe (voc/coco); "adamw" is the synthetic profiles' choice: in their CPU budget of a hundred
    iterations SGD learned less, from a random init and from the backbone `pretrain_backbone` trains."""
    backbone, head = model.param_groups()
    groups = [{"params": backbone, "lr_mult": 1.0}, {"params": head, "lr_mult": cfg.head_lr_mult}]
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
    return build_optimizer(groups, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, "segnet: optimizer")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g["lr_mult"]


def _stream_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class StreamBatchSampler(Sampler):
    """Batches of (index, sample_seed) for iterations start..total-1 from an endless stream of
    per-epoch permutations; batch `it` is the same whether or not the run was resumed."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, total: int):
        self.n, self.batch_size, self.seed, self.start, self.total = n, batch_size, seed, start, total
        self._perms: dict[int, np.ndarray] = {}

    def _index(self, pos: int) -> int:
        epoch = pos // self.n
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return int(self._perms[epoch][pos % self.n])

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self):
        for it in range(self.start, self.total):
            positions = range(it * self.batch_size, (it + 1) * self.batch_size)
            yield [(self._index(p), _stream_seed(self.seed, p)) for p in positions]


class SeededSamples(Dataset):
    """Seeds python, numpy and torch RNGs from the sample's stream seed before each item, so
    random augmentation does not depend on worker count or on what ran before."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        item = self.dataset[index]
        return {"image": item["image"], "mask": item["mask"]}


def _save_checkpoint(path: Path, model, optimizer, it: int, cfg: SegNetConfig) -> None:
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": it,
                           "config": cfg.as_dict()})


def _resume(out_dir: Path, model, optimizer, cfg: SegNetConfig) -> int:
    """Load last.pt if present (same training config required); return the next iteration."""
    path = out_dir / CHECKPOINT
    if not path.is_file():
        return 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    runtime = {
        "device",
        "num_workers",
        "checkpoint_every",
        "log_every",
        "test_scales",
        "test_flip",
        "crf",
        "crf_workers",
    }
    saved = SegNetConfig.from_dict(ckpt["config"]).as_dict()
    diff = sorted(k for k, v in cfg.as_dict().items() if k not in runtime and saved[k] != v)
    if diff:
        raise ValueError(
            f"{path}: checkpoint was trained with different settings {diff}; delete it to start over"
        )
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return int(ckpt["iteration"])


def train_segnet(cfg: SegNetConfig, train_dataset: Dataset, out_dir: str | Path, progress: bool = True,
                 on_iteration: Callable[[int], None] | None = None, provenance: dict | None = None) -> dict:
    """Train on items dict(image (3,H,W) float normalised, mask (H,W) long, 255 = ignore), all the
    same size (the crop). Writes out_dir/{model.pt, last.pt, train_log.jsonl, train_summary.json};
    resumes from out_dir/last.pt when it exists. Returns the summary. progress: show a bar;
    on_iteration(done) runs after every iteration; provenance (the caller's environment: commit, device,
    versions) is stored in the summary as "environment"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_dataset) == 0:
        raise ValueError("train_segnet: the training dataset is empty")
    device = cfg.resolved_device()
    torch.manual_seed(cfg.seed)  # head init
    model = build_segnet(cfg).to(device)
    optimizer = make_optimizer(model, cfg)
    start = _resume(out_dir, model, optimizer, cfg)

    sampler = StreamBatchSampler(len(train_dataset), cfg.batch_size, cfg.seed, start, cfg.iterations)
    loader = DataLoader(SeededSamples(train_dataset), batch_sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    autocast = precision_autocast(cfg.amp, device)
    model.train()
    t0 = t_window = time.perf_counter()
    window_loss, window_n, seen, loss_value = 0.0, 0, 0, math.nan
    # a log line's `it` is 0-based: a resumed run keeps the lines of the iterations before `start`
    log = JsonlLog(out_dir / LOG, True, start - 1 if start else None)
    try:
        bar = tqdm(
            loader, total=len(sampler), initial=0, desc=f"train_seg {cfg.backbone}", dynamic_ncols=True,
            disable=not progress,
        )
        for it, batch in enumerate(bar, start=start):
            lr = cfg.lr * poly_factor(it, cfg.iterations, cfg.poly_power)
            set_lr(optimizer, lr)
            torch.manual_seed(_stream_seed(cfg.seed, 1 << 30, it))  # dropout: a function of the iteration
            images = batch["image"].to(device, non_blocking=True)  # (B, 3, H, W)
            masks = batch["mask"].to(device, non_blocking=True).long()  # (B, H, W)
            with autocast:
                logits = model(images)  # (B, K, H, W)
            loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"train_segnet: loss is {loss.item()} at iteration {it} (lr {lr:.3g})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
            window_loss, window_n, seen = window_loss + loss_value, window_n + 1, seen + len(images)
            done = it + 1
            if on_iteration is not None:
                on_iteration(done)
            if done % cfg.log_every == 0 or done == cfg.iterations:
                now = time.perf_counter()
                ips = window_n * cfg.batch_size / max(now - t_window, 1e-9)
                rec = {"it": it, "loss": window_loss / window_n, "lr": lr, "images_per_s": ips}
                log.write(rec)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{lr:.2e}", ips=f"{ips:.1f}")
                window_loss, window_n, t_window = 0.0, 0, now
            if done % cfg.checkpoint_every == 0 and done < cfg.iterations:
                _save_checkpoint(out_dir / CHECKPOINT, model, optimizer, done, cfg)
    finally:
        log.close()
    seconds = time.perf_counter() - t0

    save_checkpoint(out_dir / MODEL, {"model": model.state_dict(), "config": cfg.as_dict(),
                                      "iteration": cfg.iterations})
    (out_dir / CHECKPOINT).unlink(missing_ok=True)  # finished: a rerun starts from scratch
    summary = {"backbone": cfg.backbone, "iterations": cfg.iterations, "resumed_from": start,
               "final_loss": loss_value, "seconds": seconds, "images_per_s": seen / max(seconds, 1e-9),
               "parameters": sum(p.numel() for p in model.parameters()),
               "precision": precision_used(cfg.amp, device), "config": cfg.as_dict(),
               "environment": provenance or {}}
    write_json(out_dir / SUMMARY, summary)
    return summary
