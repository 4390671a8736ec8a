"""`random_walk` refiner: AffinityNet (Ahn & Kwak, CVPR 2018) / IRN (Ahn et al., CVPR 2019)-style.

fit(): from each seed CAM, confident labels (IRN: a class wins over a background of 0.30 -> that class;
no class beats 0.05 -> background; else unsure), optionally snapped by IRN's label CRF; an affinity network
(stride-4 embeddings f) is trained on pixel pairs within radius 5 at stride 4 with affinity
a_ij = exp(-mean|f_i - f_j|) and the AffinityNet loss L = L_bg+/4 + L_fg+/4 + L_neg/2
(-log a for same-class pairs, background and foreground separately; -log(1 - a) for different-class pairs).
refine(): random walk of the stride-4 CAMs on T = D^-1 A^beta (column-normalised, beta 10), t = 2^8 = 256
steps; upsampled x4, divided by the global max, background a constant (IRN 0.25), argmax.

Dense vs sparse: A is non-zero only within the radius. When the grid has <= dense_max_nodes nodes (64-128 px
images: <= 1024) T is built dense and squared 8 times (IRN/AffinityNet); larger grids (VOC at stride 4:
~12k nodes, a 0.5 GB matrix cubed 8 times) take 256 sparse steps over shifted views of the radius-5
neighbourhood instead - the same T^256, in O(256 * N * 69) work. tests check that both paths agree.

Geometry. IRN's pixel constants (walk radius 5 at stride 4, label-CRF sxy 3 / 50) were set for its 512 px
crops. `geometry="absolute"` (default) uses them as published on any image; `geometry="relative"` keeps
them at the same fraction of the image, s = short side / 512 px (= stride-4 map short side / 128):
    radius' = max(2, round_half_up(radius * s))      (walk_radius; fit: on the crop's map, refine: the image's)
    sxy'    = max(1 px, sxy * s)                     (label_crf_params, per image, in fit)
A 64 px image (map 16): radius 2, the 8-neighbourhood; CRF sxy 1 / 6.25.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from weakclip.core.config import config_from
from weakclip.core.crf import CRFParams, dense_crf
from weakclip.core.device import resolve_device
from weakclip.core.io import IGNORE_INDEX, atomic_path
from weakclip.core.optim import OPTIMIZERS, make_optimizer
from weakclip.core.schedule import poly_factor

from .affinity_net import AffinityNet, load_affinity_net, pair_affinity
from .common import check_sample, iter_samples, load_cams, present_mask

IRN_LABEL_CRF = CRFParams(3, 3, 50, 5, 10, 10)  # IRN imutils.crf_inference_label
STRIDE = 4  # the affinity map's stride (AffinityNet.forward)
# IRN (Ahn et al. CVPR 2019, run_sample.py --irn_crop_size 512) trains its affinity network on 512 x 512 crops
# and walks with radius=5 on the stride-4 map (make_sem_seg_labels.py: propagate_to_edge(..., radius=5)): the
# radius was chosen for a 512 / 4 = 128 cell map. The crop also holds a whole VOC image (long side <= 500 px),
# where the label CRF's sxy 3 / 50 px were set: one reference side for all of IRN's pixel constants.
REFERENCE_SIDE = 512
# The pair disc is |o| < radius (AffinityNet; IRN's PathIndex): radius 1 holds no pair at all, so the smallest
# working radius is 2 (the 8-neighbourhood).
MIN_RADIUS = 2
GEOMETRIES = ("absolute", "relative")


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def check_geometry(geometry: str) -> None:
    if geometry not in GEOMETRIES:
        raise ValueError(f"random_walk: unknown geometry {geometry!r}; known {list(GEOMETRIES)}")


def walk_radius(radius: int, geometry: str, map_short_side: int) -> int:
    """Pair/walk radius on a stride-4 map: as given ("absolute") or radius * map_short_side / 128 ("relative",
    rounded half up, at least MIN_RADIUS); `radius` is the published value (5) in both cases."""
    check_geometry(geometry)
    if geometry == "absolute":
        return int(radius)
    return max(MIN_RADIUS, _round_half_up(radius * map_short_side * STRIDE / REFERENCE_SIDE))


def label_crf_params(geometry: str, image_short_side: int) -> CRFParams:
    """IRN's label CRF, its two spatial widths scaled by short side / 512 ("relative", at least 1 px)."""
    check_geometry(geometry)
    if geometry == "absolute":
        return IRN_LABEL_CRF
    s = image_short_side / REFERENCE_SIDE
    return replace(IRN_LABEL_CRF, gauss_sxy=max(1.0, IRN_LABEL_CRF.gauss_sxy * s),
                   bilateral_sxy=max(1.0, IRN_LABEL_CRF.bilateral_sxy * s))


def half_offsets(radius: int = 5) -> list[tuple[int, int]]:
    """AffinityNet's pair offsets: one half-plane of the disc |o| < radius (each unordered pair once)."""
    offs = [(0, dx) for dx in range(1, radius)]
    offs += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dy * dy + dx * dx < radius ** 2]
    return offs


def confident_labels(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, fg_threshold: float = 0.30,
                     bg_threshold: float = 0.05, label_crf: bool = True,
                     crf: CRFParams = IRN_LABEL_CRF) -> np.ndarray:
    """IRN's cam_to_ir_label: (H, W) uint8 with the class, 0 (confident background) or 255 (unsure)."""
    keep = present_mask(labels)
    fg = np.where(keep[1:, None, None], cams[1:], -1.0)
    out = []
    for thr in (fg_threshold, bg_threshold):
        scores = np.concatenate([np.full((1,) + fg.shape[1:], thr, np.float32), fg])
        lab = scores.argmax(0)
        if label_crf:  # unary from labels with 0.7 on the label (pydensecrf's unary_from_labels, gt_prob 0.7)
            valid = np.flatnonzero(keep)
            k = len(valid)
            probs = np.full((k,) + lab.shape, 0.3 / max(k - 1, 1), np.float32)
            idx = np.searchsorted(valid, lab)
            np.put_along_axis(probs, idx[None], 0.7, axis=0)
            lab = valid[dense_crf(np.ascontiguousarray(image), probs, crf).argmax(0)]
        out.append(lab)
    conf_fg, conf_bg = out
    conf = conf_fg.astype(np.uint8)
    conf[conf_fg == 0] = IGNORE_INDEX
    conf[(conf_fg == 0) & (conf_bg == 0)] = 0
    return conf


@dataclass
class RWConfig:
    num_classes: int = 21  # K, background included
    backbone: str = "tiny"  # "tiny" conv net on the image, or a timm model name (features_only)
    backbone_weights: str | None = None  # local timm weights for the backbone
    embed_dim: int = 32  # affinity embedding channels
    radius: int = 5  # pair radius at stride 4 (AffinityNet/IRN); "relative" geometry rescales it (walk_radius)
    geometry: str = "absolute"  # "absolute": IRN's pixel constants as published; "relative": scaled to the image
    fg_threshold: float = 0.30  # IRN conf_fg_thres
    bg_threshold: float = 0.05  # IRN conf_bg_thres
    label_crf: bool = True  # IRN snaps both confident label maps with a dense CRF
    crop_size: int = 512  # training crop (IRN 512; synthetic: the image size)
    epochs: int = 3
    batch_size: int = 8
    optimizer: str = "adamw"  # "adamw" (the tiny net trains from scratch) | "sgd" (IRN: momentum 0.9, poly)
    lr: float = 1e-3  # IRN: SGD at 0.1 on an ImageNet-initialised ResNet-50 (irn_learning_rate)
    momentum: float = 0.9  # sgd only (IRN's PolyOptimizer)
    weight_decay: float = 1e-4
    beta: float = 10.0  # A^beta
    exp_times: int = 8  # t = 2^exp_times = 256
    bg_score: float = 0.25  # IRN sem_seg_bg_thres after the walk
    dense_max_nodes: int = 4096  # above: sparse iterative walk
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_geometry(self.geometry)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"random_walk: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


def pair_labels(label: np.ndarray, offsets) -> tuple[np.ndarray, ...]:
    """Stride-4 label grid (h, w) -> boolean (P, h, w) maps: bg-pos, fg-pos, neg pairs (unsure ignored)."""
    h, w = label.shape
    bgp, fgp, neg = [], [], []
    for dy, dx in offsets:
        a = np.full((h, w), IGNORE_INDEX, np.uint8)
        b = np.full((h, w), IGNORE_INDEX, np.uint8)
        ys, xs = slice(0, h - dy), slice(max(0, -dx), w - max(0, dx))
        a[ys, xs] = label[ys, xs]
        b[ys, xs] = label[dy:, max(0, dx):w + min(0, dx)]
        ok = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
        bgp.append(ok & (a == b) & (a == 0))
        fgp.append(ok & (a == b) & (a != 0))
        neg.append(ok & (a != b))
    return np.stack(bgp), np.stack(fgp), np.stack(neg)


def affinity_loss(aff: torch.Tensor, bgp: torch.Tensor, fgp: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """AffinityNet's balanced loss; aff (B, P, h, w) in (0, 1], the masks boolean of the same shape."""
    def mean(v, m):
        return (v * m).sum() / m.sum().clamp_min(1)
    return (mean(-torch.log(aff + 1e-5), bgp) / 4 + mean(-torch.log(aff + 1e-5), fgp) / 4
            + mean(-torch.log(1.0 + 1e-5 - aff), neg) / 2)


def _stride4(label: np.ndarray) -> np.ndarray:
    h, w = label.shape
    p = np.pad(label, ((0, -h % 4), (0, -w % 4)), constant_values=IGNORE_INDEX)
    return p[1::4, 1::4]  # nearest sample per 4x4 cell (AffinityNet/IRN rescale labels by 1/4 with nearest)


def _crop(image: np.ndarray, label: np.ndarray, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random flip and crop/pad (image 0, label 255) to size x size."""
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    h, w = label.shape
    img = np.zeros((size, size, 3), np.uint8)
    lab = np.full((size, size), IGNORE_INDEX, np.uint8)
    y0, x0 = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
    oy, ox = rng.integers(0, max(size - h, 0) + 1), rng.integers(0, max(size - w, 0) + 1)
    ci, cl = image[y0:y0 + size, x0:x0 + size], label[y0:y0 + size, x0:x0 + size]
    img[oy:oy + ci.shape[0], ox:ox + ci.shape[1]] = ci
    lab[oy:oy + cl.shape[0], ox:ox + cl.shape[1]] = cl
    return img, lab


def fit(dataset, cam_dir: str, cfg: dict | RWConfig, out_path: str, progress: bool = True) -> dict:
    """Train the affinity network from the seeds in cam_dir; save {"cfg", "state_dict", "history"}."""
    c = config_from(RWConfig, cfg)
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    dev = resolve_device(c.device)
    data, t0 = [], time.perf_counter()
    for s in tqdm(iter_samples(dataset), desc="random_walk.labels", disable=not progress):
        sid, image, labels = check_sample(s, c.num_classes)
        cams = load_cams(Path(cam_dir) / f"{sid}.npy", num_classes=c.num_classes, size=image.shape[:2],
                         labels=labels)
        crf = label_crf_params(c.geometry, min(image.shape[:2]))  # the CRF runs on the whole image
        data.append((image, confident_labels(image, cams, labels, c.fg_threshold, c.bg_threshold, c.label_crf, crf)))
    if not data:
        raise ValueError("random_walk.fit: empty dataset")
    conf_share = float(np.mean([(lab != IGNORE_INDEX).mean() for _, lab in data]))
    radius = walk_radius(c.radius, c.geometry, -(-c.crop_size // STRIDE))  # pairs are drawn on the crop's map
    offsets = half_offsets(radius)
    model = AffinityNet(c.backbone, c.embed_dim, c.backbone_weights).to(dev).train()
    opt = make_optimizer(model.parameters(), c.optimizer, c.lr, c.weight_decay, c.momentum, "random_walk: optimizer")
    steps_per_epoch = max(1, len(data) // c.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: poly_factor(i, c.epochs * steps_per_epoch))
    history = []
    bar = tqdm(total=c.epochs * steps_per_epoch, desc="random_walk.fit", disable=not progress)
    for _ in range(c.epochs):
        order = rng.permutation(len(data))
        for b in range(steps_per_epoch):
            crops = [_crop(*data[int(i)], c.crop_size, rng) for i in order[b * c.batch_size:(b + 1) * c.batch_size]]
            x = torch.from_numpy(np.stack([im for im, _ in crops])).to(dev)
            masks = [pair_labels(_stride4(lab), offsets) for _, lab in crops]
            bgp, fgp, neg = (torch.from_numpy(np.stack([m[i] for m in masks])).to(dev) for i in range(3))
            aff = pair_affinity(model(x), offsets)  # (B, P, h, w)
            loss = affinity_loss(aff, bgp, fgp, neg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    bar.close()
    with atomic_path(out_path, suffix=".pt") as tmp:
        torch.save({"cfg": asdict(c), "state_dict": model.state_dict(), "history": history}, tmp)
    return {"refiner": "random_walk", "n_images": len(data), "confident_share": conf_share,
            "steps": len(history), "loss_first": history[0], "loss_last": history[-1], "radius": radius,
            "seconds": time.perf_counter() - t0, "checkpoint": str(out_path), "config": asdict(c)}


def _disc_affinities(feats: torch.Tensor, radius: int) -> tuple[list, torch.Tensor]:
    """Full-disc offsets (self included) and their affinities (O, h, w), 0 outside the grid."""
    offs = [(0, 0)] + half_offsets(radius)
    offs = offs + [(-dy, -dx) for dy, dx in offs[1:]]
    aff = pair_affinity(feats[None], offs)[0]  # (O, h, w): affinity of pixel j with j + o
    h, w = feats.shape[-2:]
    ys, xs = torch.arange(h).view(-1, 1), torch.arange(w).view(1, -1)
    for k, (dy, dx) in enumerate(offs):
        inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        aff[k] = aff[k] * inside.to(aff)
    aff[0] = 1.0  # self-affinity (AffinityNet/IRN add the identity)
    return offs, aff


def random_walk(cams: torch.Tensor, feats: torch.Tensor, beta: float = 10.0, exp_times: int = 8, radius: int = 5,
                dense_max_nodes: int = 4096, force: str | None = None) -> torch.Tensor:
    """Propagate (C, h, w) CAMs on the affinity of (E, h, w) features: cams · T^(2^exp_times)."""
    C, h, w = cams.shape
    offs, aff = _disc_affinities(feats, radius)
    a_beta = aff ** beta  # (O, h, w); entry o at j = A(j, j+o)^beta
    mode = force or ("dense" if h * w <= dense_max_nodes else "sparse")
    if mode == "dense":
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        A = torch.zeros(h * w, h * w, dtype=a_beta.dtype)
        for k, (dy, dx) in enumerate(offs):  # A[j+o, j] = A(j, j+o)^beta (symmetric)
            inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
            j = (ys * w + xs)[inside]
            A[j + dy * w + dx, j] = a_beta[k][inside]
        T = A / A.sum(0, keepdim=True)  # column-normalised (IRN's to_transition_matrix)
        for _ in range(exp_times):
            T = T @ T
        return (cams.reshape(C, -1) @ T).reshape(C, h, w)
    d = a_beta.sum(0)  # (h, w) column sums: sum_i A(i, j)^beta over the neighbours i of j
    wts = a_beta / d  # (O, h, w)
    rows, cols = torch.arange(h), torch.arange(w)
    x = cams
    for _ in range(2 ** exp_times):
        y = torch.zeros_like(x)
        for k, (dy, dx) in enumerate(offs):
            # y_j += x_{j+o} * w_o(j); out-of-grid neighbours have weight 0 (clamped index is harmless)
            xs = x[:, (rows + dy).clamp(0, h - 1)][:, :, (cols + dx).clamp(0, w - 1)]
            y += xs * wts[k]
        x = y
    return x


_CACHE: dict = {}


def refine(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, checkpoint: str | None = None,
           confidence: float | None = None, force: str | None = None, **overrides) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk refinement with a fitted affinity net (`checkpoint` from fit()).

    overrides: beta, exp_times, bg_score, dense_max_nodes, geometry (default: the checkpoint's). confidence:
    pixels whose normalised top score is below it -> 255 (default off)."""
    if checkpoint is None:
        raise ValueError("random_walk.refine: checkpoint= (the file written by random_walk.fit) is required")
    if checkpoint not in _CACHE:
        _CACHE[checkpoint] = load_affinity_net(checkpoint, RWConfig)
    model, c = _CACHE[checkpoint]
    allowed = {"beta", "exp_times", "bg_score", "dense_max_nodes", "geometry"}
    if set(overrides) - allowed:
        raise ValueError(f"random_walk.refine: unknown options {sorted(set(overrides) - allowed)}")
    c = config_from(RWConfig, c, **overrides)
    H, W = image.shape[:2]
    keep = present_mask(labels)
    if not keep[1:].any():  # no foreground label (COCO has such images): all background, nothing to walk
        probs = np.zeros(cams.shape, np.float32)
        probs[0] = 1.0
        return probs, np.zeros((H, W), np.uint8)
    with torch.no_grad():
        feats = model(torch.from_numpy(np.ascontiguousarray(image))[None])[0].float().cpu()  # (E, h, w)
        h, w = feats.shape[-2:]
        fg = torch.from_numpy(np.ascontiguousarray(cams[1:][keep[1:]], dtype=np.float32))
        fg = F.pad(fg, (0, 4 * w - W, 0, 4 * h - H))
        fg = F.avg_pool2d(fg[None], 4)[0]  # (C, h, w) stride-4 CAMs
        radius = walk_radius(c.radius, c.geometry, min(h, w))
        rw = random_walk(fg, feats, c.beta, c.exp_times, radius, c.dense_max_nodes, force)
        rw = F.interpolate(rw[None], scale_factor=4, mode="bilinear", align_corners=False)[0, :, :H, :W]
        rw = rw / rw.max().clamp_min(1e-5)
    scores = np.zeros(cams.shape, np.float32)
    scores[0] = c.bg_score
    scores[1:][keep[1:]] = rw.numpy()
    scores[~keep] = 0.0
    probs = scores / np.maximum(scores.sum(0, keepdims=True), 1e-8)
    mask = np.where(keep[:, None, None], scores, -1.0).argmax(0).astype(np.uint8)
    if confidence is not None:
        mask[probs.max(0) < confidence] = IGNORE_INDEX
    return probs, mask
