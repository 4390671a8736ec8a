"""WeakCLIP training losses (spec "Losses"): class-balanced seeding, CRF boundary, auxiliary CE.

All main-head terms work on the logits resized (bilinear) to ``loss_size`` x ``loss_size`` (64): P = softmax.
Seeds (B, H, W) with 255 = no cue are nearest-resized to the same size and one-hot encoded (cues C).

- seeding  = -mean_b[ sum(C_bg log P_bg) / #bg cues ] - mean_b[ sum(C_fg log P_fg) / #fg cues ]
  (an image with no cue of a kind contributes 0 to that term's mean);
- boundary = mean_{b,pixels} sum_k Q_k log(clip(Q_k / P_k, 0.05, 20)), Q = dense CRF of the detached P on a
  loss_size copy of the image (preset "weakclip_loss": Gaussian 3/3, bilateral 80/13/10, 10 iterations).
  The clip is applied in the log domain (identical values, no inf/nan gradients when P underflows).
  Q comes from pydensecrf on the CPU (``crf_backend="pydensecrf"``, the release's CRF) or from the same
  model evaluated exactly on the logits' device (``"exact"``, weakclip.core.crf_exact: no host round trip);
- aux      = cross-entropy of aux_logits (S / 0.07) upsampled to the crop, ignore 255;
- total    = seeding + boundary + aux_weight * aux.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from weakclip.core.crf import crf_params, default_workers, dense_crf_many
from weakclip.core.crf_exact import dense_crf_exact
from weakclip.core.io import IGNORE_INDEX
from weakclip.core.resize import resize_bilinear

RATIO_MIN, RATIO_MAX = 0.05, 20.0


class CRFPool:
    """Dense CRFs of a batch in a reusable process pool (``workers=1``: in-process, no pool).

    The pool is created on first use and kept until ``close()``. Workers are forked where the platform
    allows it: they only run numpy and pydensecrf (never torch or CUDA), and unlike "spawn" a fork does not
    re-import the caller's ``__main__`` (which breaks for stdin / notebook / unguarded scripts).
    """

    def __init__(self, workers: int | None = 1, params="weakclip_loss"):
        workers = default_workers() if workers is None else workers
        if workers < 1:
            raise ValueError(f"CRFPool: workers must be >= 1, got {workers}")
        self.workers = workers
        self.params = crf_params(params)
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, images: list[np.ndarray], probs: list[np.ndarray]) -> list[np.ndarray]:
        """images: B x (h, w, 3) uint8; probs: B x (K, h, w) -> B x Q (K, h, w) float32."""
        if self.workers == 1 or len(images) <= 1:
            return dense_crf_many(images, probs, self.params, workers=1)
        if self._pool is None:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method))
        return dense_crf_many(images, probs, self.params, pool=self._pool)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # a pool cannot be pickled; a copy starts without one
        state = dict(self.__dict__)
        state["_pool"] = None
        return state


def seeds_to_cues(seeds: torch.Tensor, num_classes: int, size: int) -> torch.Tensor:
    """(B, H, W) long seeds, 255 = no cue -> (B, K, size, size) float one-hot cues (nearest resize)."""
    s = F.interpolate(seeds[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    bad = (s != IGNORE_INDEX) & ((s < 0) | (s >= num_classes))
    if bad.any():
        raise ValueError(
            f"seed masks hold labels outside 0..{num_classes - 1} (and 255): "
            f"{sorted(set(s[bad].unique().tolist()))[:5]}"
        )
    valid = s != IGNORE_INDEX
    cues = F.one_hot(torch.where(valid, s, torch.zeros_like(s)), num_classes).permute(0, 3, 1, 2).float()
    return cues * valid[:, None]


def seeding_loss(log_probs: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
    """Class-balanced seeding loss. log_probs, cues: (B, K, h, w); channel 0 = background."""
    bg_count = cues[:, 0].sum(dim=(1, 2)).clamp_min(1.0)  # (B,)
    fg_count = cues[:, 1:].sum(dim=(1, 2, 3)).clamp_min(1.0)
    bg = (cues[:, 0] * log_probs[:, 0]).sum(dim=(1, 2)) / bg_count
    fg = (cues[:, 1:] * log_probs[:, 1:]).sum(dim=(1, 2, 3)) / fg_count
    return -bg.mean() - fg.mean()


def boundary_loss(log_probs: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean over (B, h, w) of sum_k Q_k log clip(Q_k / P_k, 0.05, 20). log_probs, q: (B, K, h, w)."""
    log_ratio = (torch.log(q.clamp_min(1e-12)) - log_probs).clamp(math.log(RATIO_MIN), math.log(RATIO_MAX))
    return (q * log_ratio).sum(dim=1).mean()


def aux_ce_loss(aux_logits: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """CE of aux logits (B, K, h, w) upsampled (bilinear) to the seeds (B, H, W); 255 ignored (0 if all)."""
    up = resize_bilinear(aux_logits, tuple(seeds.shape[-2:]))
    if not (seeds != IGNORE_INDEX).any():
        return up.sum() * 0.0
    return F.cross_entropy(up, seeds, ignore_index=IGNORE_INDEX)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, size, size, 3) uint8 (bilinear, antialiased) on the same device."""
    x = images.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def resize_images_uint8(images: torch.Tensor, size: int) -> list[np.ndarray]:
    """(B, H, W, 3) uint8 -> B x (size, size, 3) uint8 numpy arrays for pydensecrf."""
    return [np.ascontiguousarray(im) for im in resize_images(images, size).cpu().numpy()]


CRF_BACKENDS = ("pydensecrf", "exact")


class WeakCLIPLoss:
    """``(outputs, batch) -> dict(total, seeding, boundary, aux)``.

    outputs: WeakCLIP.forward's dict (logits (B,K,h4,w4), aux_logits (B,K,h,w)).
    batch: "mask" (B, H, W) long seeds with 255 = no cue; "image_uint8" (B, H, W, 3) uint8 crop (any device).
    crf_workers: processes for the boundary-loss CRFs (None = all cores, 1 = in-process); call close() (or
    let the process end) to release the pool.
    crf_backend: "pydensecrf" (CPU, permutohedral lattice; the release) or "exact" (weakclip.core.crf_exact, on
    the logits' device; the fast GPU configuration).
    """

    def __init__(
        self,
        aux_weight: float = 0.4,
        crf_workers: int | None = None,
        loss_size: int = 64,
        crf_params="weakclip_loss",
        crf_backend: str = "pydensecrf",
    ):
        if crf_backend not in CRF_BACKENDS:
            raise ValueError(f"WeakCLIPLoss: crf_backend must be one of {CRF_BACKENDS}, got {crf_backend!r}")
        self.aux_weight = aux_weight
        self.loss_size = loss_size
        self.crf_backend = crf_backend
        self.crf = CRFPool(crf_workers, crf_params)

    def __call__(self, outputs: dict, batch: dict) -> dict:
        logits = outputs["logits"]
        seeds = batch["mask"].to(logits.device).long()
        images = batch["image_uint8"]
        images = torch.as_tensor(images) if not torch.is_tensor(images) else images
        if seeds.dim() != 3 or images.dim() != 4 or images.shape[:3] != seeds.shape:
            raise ValueError(
                f"WeakCLIPLoss: batch 'mask' must be (B,H,W) and 'image_uint8' (B,H,W,3) of the "
                f"same size, got {tuple(seeds.shape)} and {tuple(images.shape)}"
            )
        size = self.loss_size
        small = resize_bilinear(logits.float(), (size, size))
        log_probs = F.log_softmax(small, dim=1)  # (B, K, s, s)
        cues = seeds_to_cues(seeds, logits.shape[1], size)
        seed = seeding_loss(log_probs, cues)

        q = self.crf_marginals(images, log_probs.detach().exp())
        boundary = boundary_loss(log_probs, q)

        aux = aux_ce_loss(outputs["aux_logits"].float(), seeds)
        total = seed + boundary + self.aux_weight * aux
        return {"total": total, "seeding": seed, "boundary": boundary, "aux": aux}

    def crf_marginals(self, images: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """images (B, H, W, 3) uint8 (any device), probs (B, K, s, s) -> Q (B, K, s, s) on probs' device."""
        size = probs.shape[-1]
        if self.crf_backend == "exact":
            return dense_crf_exact(resize_images(images.to(probs.device), size), probs, self.crf.params)
        qs = self.crf(resize_images_uint8(images, size), list(probs.cpu().numpy().astype(np.float32)))
        return torch.from_numpy(np.stack(qs)).to(probs.device)

    def close(self) -> None:
        self.crf.close()
