"""A generic, resumable training loop (single process or torchrun/DDP).

The loop knows nothing about WeakCLIP: `model(batch["image"])` must return a dict of outputs
and `loss_fn(outputs, batch)` a dict of scalar loss terms with a "total". The WeakCLIP recipe
(docs/method.md "Training recipe") is the default TrainConfig: AdamW lr 1e-4, weight decay 3e-5,
cosine to 1e-6 with 1,500 linear warm-up iterations, seed 504; parameter groups whose rate is 0
(the CLIP towers) are frozen.

Exact resume: every source of randomness is a function of the iteration number. The sampler's
stream is fixed by (seed, iteration) (weakclip.core.distributed.InfiniteSampler), each sample is
loaded under RNGs seeded by its stream position, and the global RNGs are re-seeded from
(seed, iteration, rank) at the start of every iteration, so an interrupted run resumed from
`last.pt` follows the uninterrupted trajectory bit for bit on the CPU.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from weakclip.core.checkpoint import (  # load_model_weights and model_state are this module's API too
    JsonlLog,
    load_model_weights,
    model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from weakclip.core.distributed import (
    InfiniteSampler,
    SeededItems,
    cleanup_distributed,
    init_distributed,
    sample_seed,
)
from weakclip.core.optim import adamw
from weakclip.core.precision import precision_used
from weakclip.core.schedule import lr_at, lr_scale_at


@dataclass
class TrainConfig:
    iterations: int = 20_000
    batch_size: int = 16  # global: split evenly over the ranks
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 3e-5
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6  # warm-up starts at lr·warmup_ratio (mmcv 'linear')
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None  # max global grad norm; None = no clipping
    seed: int = 504
    num_workers: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int | None = None  # keep only the newest N ckpt_{it}.pt (None = all)
    log_every: int = 10
    amp: str = "bf16"  # "bf16" autocast where the device has native bf16 (weakclip.core.precision), else fp32 | "none"
    # Speed switches of the step (results identical up to rounding; bench/stages/profile.py measures each):
    cudnn_benchmark: bool = False  # cuDNN picks its convolution algorithms by timing them (CUDA only)
    channels_last: bool = False  # the model's convolution weights in NHWC, so cuDNN runs NHWC kernels
    bf16_image_tower: bool = False  # the frozen image tower stored in bf16 and run outside autocast
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    deterministic: bool = False
    save_frozen: bool = False  # store the full state even when the model has head_state_dict()
    find_unused_parameters: bool = True  # DDP: allow parameters that get no gradient in a step (safe default)
    input_key: str = "image"
    keep_on_cpu: tuple[str, ...] = field(default_factory=lambda: ("image_uint8", "id"))
    progress: bool = True


def _param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """The model's own groups (model.param_groups(lr, wd)) or one group of everything trainable.
    Groups with rate 0 are frozen (requires_grad False) and left out of the optimizer, as is any
    parameter the groups do not mention."""
    if hasattr(model, "param_groups"):
        groups = [dict(g) for g in model.param_groups(cfg.lr, cfg.weight_decay)]
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    kept, seen = [], set()
    for g in groups:
        params = [p for p in g["params"] if p.requires_grad]
        g.setdefault("lr", cfg.lr)
        g.setdefault("weight_decay", cfg.weight_decay)
        if g["lr"] == 0:
            for p in params:
                p.requires_grad_(False)
            continue
        if any(id(p) in seen for p in params):
            raise ValueError("param_groups: a parameter appears in two groups")
        seen.update(id(p) for p in params)
        if params:
            kept.append({**g, "params": params, "initial_lr": g["lr"]})
    for p in model.parameters():
        if id(p) not in seen:
            p.requires_grad_(False)
    if not kept:
        raise ValueError("train: the model has no trainable parameters")
    return kept


def seed_iteration(seed: int, it: int, rank: int, world: int) -> None:
    s = sample_seed(seed ^ 0x5EED, it * world + rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def _to_device(batch: dict, device: torch.device, keep_on_cpu) -> dict:
    return {
        k: (v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in keep_on_cpu else v)
        for k, v in batch.items()
    }


def _loss_terms(losses: dict, world: int) -> dict[str, float]:
    """Scalar loss terms as floats, averaged over ranks (so every rank sees the same values)."""
    names = [k for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1]
    vals = torch.stack([losses[k].detach().float().reshape(()) for k in names])
    if world > 1:
        dist.all_reduce(vals)
        vals /= world
    return dict(zip(names, vals.tolist()))


def _configure_determinism(cfg: TrainConfig) -> None:
    if cfg.deterministic and cfg.cudnn_benchmark:
        raise ValueError("TrainConfig: deterministic and cudnn_benchmark exclude each other (autotuning picks "
                         "algorithms by timing them)")
    if cfg.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def prepare_model(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """Move the model to `device` in the layout the config's speed switches ask for (in place)."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.bf16_image_tower:
        if not hasattr(model, "store_image_tower_in"):
            raise ValueError(f"TrainConfig.bf16_image_tower: {type(model).__name__} has no frozen image tower")
        model.store_image_tower_in(torch.bfloat16)
    elif hasattr(model, "store_image_tower_for"):  # a bf16 step on the CPU: the tower in bf16 (WeakCLIP)
        model.store_image_tower_for(step_precision(cfg, device), device)
    return model


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, list]:
    """(AdamW over the model's trainable groups, the trainable parameters); frozen groups are left out."""
    groups = _param_groups(model, cfg)
    trainable = [p for g in groups for p in g["params"]]
    return adamw(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay), trainable


def step_precision(cfg: TrainConfig, device: torch.device) -> str:
    """The precision the step runs in: "bf16" only where asked for and native on `device`, else "fp32"."""
    if cfg.amp not in ("bf16", "none"):
        raise ValueError(f"TrainConfig.amp must be 'bf16' or 'none', got {cfg.amp!r}")
    return precision_used(cfg.amp, device)


def train_step(net, loss_fn, optimizer, batch: dict, cfg: TrainConfig, precision: str, trainable: list,
               world: int = 1, it: int = 0) -> dict[str, float]:
    """One optimisation step on a batch already on the device; returns the loss terms (averaged over ranks).

    The step `train()` runs and the one the profile stage times (bench/step_harness.py): forward under
    bf16 autocast when `precision` is bf16 (outputs cast back to fp32 for the losses), the losses, a check
    that they are finite (naming iteration `it`), backward, optional gradient clipping, the optimizer step."""
    torch.backends.cudnn.benchmark = cfg.cudnn_benchmark  # a process-wide switch: set by every step
    use_amp = precision == "bf16"
    device_type = batch[cfg.input_key].device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_amp):
        outputs = net(batch[cfg.input_key])
    if use_amp:
        outputs = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in outputs.items()}
    losses = loss_fn(outputs, batch)
    terms = _loss_terms(losses, world)
    if not all(math.isfinite(v) for v in terms.values()):
        raise FloatingPointError(
            f"non-finite loss at iteration {it + 1} (0-based step {it}): "
            + ", ".join(f"{k}={v}" for k, v in terms.items())
        )
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
    optimizer.step()
    return terms


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[dict, dict], dict],
    dataset,
    cfg: TrainConfig,
    out_dir,
    resume: bool = True,
    stop_after: int | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train `model` for cfg.iterations on `dataset` (any map-style torch Dataset of dicts).

    Writes out_dir/train_log.jsonl, out_dir/checkpoints/{ckpt_<it>,last}.pt every
    cfg.checkpoint_every iterations and out_dir/model.pt at the end (rank 0 only, atomically).
    resume: continue from checkpoints/last.pt when it exists. stop_after: end (with a checkpoint)
    after that many iterations, as a pre-empted job would. callback(it, loss_terms) runs after
    every iteration on every rank. Returns a summary dict.
    """
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    info = init_distributed(cfg.device)
    try:
        return _train(model, loss_fn, dataset, cfg, out_dir, ckpt_dir, info, resume, stop_after, callback)
    finally:
        cleanup_distributed(info)


def _resume(last_path: Path | None, model, optimizer, cfg: TrainConfig) -> tuple[dict | None, int, dict, float]:
    """(checkpoint or None, next iteration, log window, seconds trained before) from checkpoints/last.pt
    (None: start afresh), loading the model, optimizer and RNGs from it; a checkpoint of another batch size or
    seed is an error."""
    if last_path is None or not last_path.exists():
        return None, 0, {"n": 0, "sums": {}}, 0.0
    ckpt = torch.load(last_path, map_location="cpu", weights_only=False)
    for key in ("batch_size", "seed"):
        if ckpt["config"][key] != getattr(cfg, key):
            raise ValueError(
                f"{last_path}: cannot resume with {key}={getattr(cfg, key)}; "
                f"the checkpoint was trained with {key}={ckpt['config'][key]}"
            )
    load_model_weights(model, ckpt)
    optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"])
    return ckpt, ckpt["iteration"], ckpt["log_window"], ckpt["elapsed_s"]


def _loader(dataset, cfg: TrainConfig, info, start_it: int) -> DataLoader:
    """Batches of this rank's share of the seeded sample stream, from iteration start_it on."""
    sampler = InfiniteSampler(len(dataset), cfg.batch_size, cfg.seed, info.rank, info.world_size,
                              start_iter=start_it)
    return DataLoader(
        SeededItems(dataset),
        batch_size=sampler.local_batch,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _save_state(ckpt_dir: Path, model, optimizer, cfg: TrainConfig, it_done: int, window: dict,
                elapsed_s: float) -> None:
    """checkpoints/ckpt_<it>.pt and last.pt: everything a resumed run needs to follow this one."""
    state, frozen = model_state(model, cfg.save_frozen)
    obj = {
        "iteration": it_done,
        "model": state,
        "frozen_keys": frozen,
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
        "sampler": {"seed": cfg.seed, "position": it_done * cfg.batch_size},
        "log_window": window,
        "elapsed_s": elapsed_s,
        "config": asdict(cfg),
    }
    save_checkpoint(ckpt_dir / f"ckpt_{it_done}.pt", obj)
    save_checkpoint(ckpt_dir / "last.pt", obj)
    if cfg.keep_checkpoints:
        old = sorted(ckpt_dir.glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for p in old[: -cfg.keep_checkpoints]:
            p.unlink(missing_ok=True)


def _log_record(it: int, cfg: TrainConfig, window: dict, window_s: float, elapsed_s: float) -> dict:
    """One train_log.jsonl line: the mean of each loss term over the window since the last line."""
    return {
        "it": it,
        "lr": lr_at(it - 1, cfg.lr, cfg.iterations, cfg.min_lr, cfg.warmup_iters, cfg.warmup_ratio),
        **{f"loss_{k}": s / window["n"] for k, s in window["sums"].items()},
        "images_per_s": window["n"] * cfg.batch_size / max(window_s, 1e-9),
        "elapsed_s": elapsed_s,
    }


def _train(model, loss_fn, dataset, cfg, out_dir, ckpt_dir, info, resume, stop_after, callback) -> dict:
    _configure_determinism(cfg)
    torch.manual_seed(cfg.seed)
    device, world = info.device, info.world_size
    prepare_model(model, cfg, device)
    optimizer, trainable = build_optimizer(model, cfg)
    last_path = ckpt_dir / "last.pt"
    ckpt, start_it, window, elapsed_before = _resume(last_path if resume else None, model, optimizer, cfg)

    net = model
    if world > 1:
        net = DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )
    loader = _loader(dataset, cfg, info, start_it)
    precision = step_precision(cfg, device)

    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log = JsonlLog(out_dir / "train_log.jsonl", info.is_main, start_it if ckpt else None)
    end_it = cfg.iterations if stop_after is None else min(cfg.iterations, stop_after)
    bar = tqdm(total=cfg.iterations, initial=start_it, disable=not (info.is_main and cfg.progress), desc="train",
               dynamic_ncols=True)
    net.train()
    t_start = t_window = time.perf_counter()
    terms: dict[str, float] = {}
    it = start_it
    try:
        data_iter = iter(loader)
        while it < end_it:
            seed_iteration(cfg.seed, it, info.rank, world)
            scale = lr_scale_at(it, cfg.lr, cfg.iterations, cfg.min_lr, cfg.warmup_iters, cfg.warmup_ratio)
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * scale
            batch = _to_device(next(data_iter), device, cfg.keep_on_cpu)
            terms = train_step(net, loss_fn, optimizer, batch, cfg, precision, trainable, world, it)
            it += 1
            bar.update(1)
            window["n"] += 1
            for k, v in terms.items():
                window["sums"][k] = window["sums"].get(k, 0.0) + v
            if it % cfg.log_every == 0 or it == cfg.iterations:
                now = time.perf_counter()
                rec = _log_record(it, cfg, window, now - t_window, elapsed_before + now - t_start)
                log.write(rec)
                bar.set_postfix(loss=f"{rec['loss_total']:.4f}", lr=f"{rec['lr']:.2e}")
                window, t_window = {"n": 0, "sums": {}}, now
            if callback is not None:
                callback(it, terms)
            if info.is_main and (it % cfg.checkpoint_every == 0 or (it == end_it and end_it < cfg.iterations)):
                _save_state(ckpt_dir, model, optimizer, cfg, it, window,
                            elapsed_before + time.perf_counter() - t_start)
    finally:
        bar.close()
        log.close()

    wall = time.perf_counter() - t_start
    if it >= cfg.iterations and info.is_main:
        state, frozen = model_state(model, cfg.save_frozen)
        save_checkpoint(
            out_dir / "model.pt",
            {"model": state, "frozen_keys": frozen, "iteration": it, "config": asdict(cfg)},
        )
    return {
        "iterations": it,
        "start_iteration": start_it,
        "resumed": ckpt is not None,
        "stopped_early": it < cfg.iterations,
        "final_loss": terms,
        "wall_s": wall,
        "elapsed_s": elapsed_before + wall,
        "images_per_s": (it - start_it) * cfg.batch_size / max(wall, 1e-9),
        "trainable_params": sum(p.numel() for p in trainable),
        "total_params": sum(p.numel() for p in model.parameters()),
        "world_size": world,
        "device": str(device),
        "precision": precision,
        "model_path": str(out_dir / "model.pt"),
    }
