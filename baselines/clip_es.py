"""`clip_es` seed source: training-free Grad-CAM on the CLIP image tower (CLIP-ES, Lin et al. CVPR 2023).

Per image and per present class c: score_c = softmax over (the image's classes + background prompts) of
logit_scale·cos(image embedding, text embedding), prompt "a clean origami {}."; Grad-CAM of score_c at the
last block's input on the patch tokens (weights = spatial mean of the gradient, ReLU), min-max normalised on
the token grid; optional CAA (baselines.caa); upsampled to the image; background (1 - max fg)^t.

Global image embedding: CLIP-ES's forward_last_layer pools the mean of the final patch tokens (`pool="mean"`,
default); `pool="cls"` uses the class token (open_clip's own pooling). For the 4-block tiny CLIP, CAA
averages all 4 blocks' attention (the "last 8" of ViT-B/16 do not exist there).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from weakclip.core.config import config_from

from .caa import apply_caa, attention_affinity, upsample_minmax
from .clip_dense import dense_forward, grad_cam, load_clip, preprocess, text_embeddings
from .common import assemble_cams, background_score, check_sample, iter_samples, save_cams

# CLIP-ES's background categories for VOC.
BACKGROUND_PROMPTS = ("ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water", "river",
                      "sea", "railway", "railroad", "keyboard", "helmet", "cloud", "house", "mountain", "ocean",
                      "road", "rock", "street", "valley", "bridge", "sign")
# Raw VOC names that are not words; the text tower sees the readable form.
READABLE = {"diningtable": "dining table", "pottedplant": "potted plant", "tvmonitor": "tv monitor",
            "aeroplane": "aeroplane", "motorbike": "motorbike"}


@dataclass
class ClipESConfig:
    class_names: tuple = ()  # K names, index 0 = background (required: samples carry no names)
    arch: str = "tiny"  # "tiny" (synthetic profile) or "ViT-B-16"
    weights: str | None = None  # local CLIP weights; None = random init (meaningless seeds, tests only)
    clip_overrides: dict = field(default_factory=dict)  # tiny-CLIP overrides (weakclip.clip_towers)
    template: str = "a clean origami {}."  # CLIP-ES prompt for classes and background prompts
    bg_prompts: tuple = BACKGROUND_PROMPTS  # background categories competing in the softmax
    readable_names: bool = True  # map raw VOC names (diningtable -> dining table) before prompting
    logit_scale: float = 100.0  # softmax temperature on cosine similarities
    pool: str = "mean"  # global image embedding: "mean" patch token (CLIP-ES) or "cls"
    grad_at: str = "block_input"  # Grad-CAM activation: last block's input, or "ln_1" (its first LN output)
    scales: tuple = (1.0,)  # image scales; CAMs summed then re-normalised (CLIP-ES VOC uses 1.0)
    short_side: int | None = None  # resize the short side before CLIP (None = native size, CLIP-ES)
    caa: bool = True  # class-aware attention affinity
    caa_blocks: int = 8  # attention of the last N blocks
    sinkhorn_iters: int = 3
    box_threshold: float = 0.4
    bg_power: float = 1.0  # background (1 - max fg)^t, t in {1, 2}
    device: str = "auto"


def _prompt_names(cfg: ClipESConfig) -> list[str]:
    names = list(cfg.class_names[1:])
    return [READABLE.get(n, n) for n in names] if cfg.readable_names else names


class ClipES:
    """Holds the model and the text embeddings; `__call__(image, labels)` -> contract CAMs (K, H, W)."""

    def __init__(self, cfg: ClipESConfig):
        if len(cfg.class_names) < 2:
            raise ValueError("clip_es: class_names (K names, background first) is required")
        self.cfg = cfg
        self.model, tok = load_clip(cfg.arch, cfg.weights, cfg.clip_overrides, cfg.device)
        self.device = next(self.model.parameters()).device
        self.patch = self.model.visual.patch_size[0]
        self.fg_text = text_embeddings(self.model, tok, _prompt_names(cfg), cfg.template)  # (K-1, E)
        self.bg_text = text_embeddings(self.model, tok, cfg.bg_prompts, cfg.template)  # (B, E)
        self.last_grad_norm = 0.0

    def grid_cams(self, image: np.ndarray, labels: np.ndarray, scale: float = 1.0):
        """Grad-CAMs (C, h, w) of the present classes (min-max normalised) and the CAA matrix (N, N)."""
        c = self.cfg
        present = np.flatnonzero(labels > 0.5)
        x = preprocess(image, self.patch, c.short_side, scale, self.device)
        out = dense_forward(self.model, x, pool=c.pool, grad_at=c.grad_at, with_grad=True)
        img = torch.nn.functional.normalize(out.image_embed, dim=-1)  # (1, E)
        text = torch.cat([self.fg_text[present], self.bg_text], 0)  # (C + B, E)
        probs = (c.logit_scale * img @ text.T).softmax(-1)[0]  # (C + B,)
        cams, gnorm = [], 0.0
        for i in range(len(present)):
            cam = grad_cam(probs[i], out.activation, out.grid, retain_graph=i + 1 < len(present))
            cams.append(cam)
            gnorm += float(cam.abs().sum())
        self.last_grad_norm = gnorm
        cams = torch.stack(cams) if cams else torch.zeros((0,) + out.grid)
        flat = cams.reshape(len(present), -1)
        lo, hi = flat.min(1)[0][:, None, None], flat.max(1)[0][:, None, None]
        cams = ((cams - lo) / (hi - lo + 1e-7)).cpu().numpy()  # scale_cam_image on the token grid
        trans = attention_affinity(out.attentions, c.caa_blocks, c.sinkhorn_iters) if c.caa else None
        return present, cams, trans

    def __call__(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        c = self.cfg
        H, W = image.shape[:2]
        K = len(c.class_names)
        if labels.shape[0] != K - 1:
            raise ValueError(f"clip_es: labels have {labels.shape[0]} entries for {K} class names")
        fg = np.zeros((K - 1, H, W), np.float32)
        for s in c.scales:
            present, cams, trans = self.grid_cams(image, labels, s)
            if trans is not None:
                cams = np.stack([apply_caa(cam, trans, c.box_threshold) for cam in cams]) if len(cams) else cams
            if len(present):
                fg[present] += upsample_minmax(cams, (H, W))
        fg /= np.maximum(fg.reshape(K - 1, -1).max(1), 1e-5)[:, None, None]
        return assemble_cams(fg, labels, background_score(fg, c.bg_power))


def generate(sample_iter: Iterable[dict], out_dir: str, progress: bool = True, **cfg) -> dict:
    """Write `<out_dir>/<id>.npy` contract CAMs for every sample; returns a summary dict."""
    c = config_from(ClipESConfig, cfg)
    runner = ClipES(c)
    out_dir = Path(out_dir)
    n, t0, gsum = 0, time.perf_counter(), 0.0
    for sample in tqdm(iter_samples(sample_iter), desc="clip_es", disable=not progress):
        sid, image, labels = check_sample(sample, len(c.class_names))
        save_cams(out_dir / f"{sid}.npy", runner(image, labels))
        gsum += runner.last_grad_norm
        n += 1
    dt = time.perf_counter() - t0
    return {"source": "clip_es", "n_images": n, "seconds": dt, "images_per_s": n / max(dt, 1e-9),
            "mean_gradcam_mass": gsum / max(n, 1), "device": str(runner.device), "config": asdict(c)}
