"""`par` refiner: pixel-adaptive refinement (PAR) of AFA (Ru et al. CVPR 2022), as used by ToCo (CVPR 2023).

At half resolution, each pixel looks at 48 neighbours (8 directions x dilations 1, 2, 4, 8, 12, 24,
replicate border). Affinity to neighbour n, for image I (colour channels averaged):
    a_n = softmax_n( -(|I_n - I| / (0.3 * std_n(I_n)))^2 ) + 0.01 * softmax_n( -(d_n / (0.3 * std_n(d_n)))^2 )
with std_n the per-pixel standard deviation over the 48 neighbour intensities and d_n the neighbour
distance. Ten iterations of m <- sum_n a_n * m_n propagate the (softmaxed) CAMs. Dual thresholds: with a
constant background `high`, a pixel's argmax class is foreground; with background `low`, background;
everything else is ignored (255). Presets: AFA 0.55/0.35, ToCo 0.7/0.25.
The input's channel 0 is not used: PAR's background is the constant threshold.

Geometry. The dilations are pixels of the half-resolution image, published for VOC training crops (AFA 512,
ToCo 448: a 256 / 224 px working map). `geometry="absolute"` (default) uses them as published on any image;
`geometry="relative"` keeps their reach as a fraction of the working map's short side (`working_dilations`):
    d' = max(1, round_half_up(d * s)),  s = working short side / (preset's crop / 2),  duplicates dropped,
so the published dilations come back exactly on the preset's own crop and shrink in proportion below it
(a 64 px image: s = 32 / 256, dilations 1, 2, 3).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from weakclip.core.io import IGNORE_INDEX

from .common import present_mask

PRESETS = {"afa": (0.55, 0.35), "toco": (0.7, 0.25)}
DILATIONS = (1, 2, 4, 8, 12, 24)
# The crop each preset's dilations were published for. AFA: launch/run_sbatch_attn_reg.sh trains VOC with
# crop_size=512; ToCo: scripts/dist_train_voc_seg_neg.py --crop_size 448. Both build
# PAR(num_iter=10, dilations=[1, 2, 4, 8, 12, 24]) and call it from refine_cams_with_bkg_v2 at down_scale=2,
# so the map the dilations were chosen for is the crop at half resolution: 256 (AFA) / 224 (ToCo) px.
REFERENCE_CROP = {"afa": 512, "toco": 448}
PUBLISHED_DOWN_SCALE = 2
GEOMETRIES = ("absolute", "relative")
# 8 directions (row, col), in AFA's 3x3 kernel order; diagonal ones are sqrt(2) far.
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def neighbours(x: torch.Tensor, dilations=DILATIONS) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 8*len(dilations), H, W) dilated neighbours with replicate borders."""
    _, _, h, w = x.shape
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    out = []
    for d in dilations:
        for dy, dx in DIRECTIONS:
            r = (rows + dy * d).clamp(0, h - 1)
            c = (cols + dx * d).clamp(0, w - 1)
            out.append(x[:, :, r][:, :, :, c])
    return torch.stack(out, 2)


def par_affinity(image: torch.Tensor, dilations=DILATIONS, w1: float = 0.3, w2: float = 0.01) -> torch.Tensor:
    """(B, 3, H, W) float image -> (B, 1, 8*D, H, W) neighbour weights (each pixel's sum is 1 + w2)."""
    nb = neighbours(image, dilations)  # (B, 3, N, H, W)
    diff = (nb - image.unsqueeze(2)).abs()
    std = nb.std(dim=2, keepdim=True)  # per pixel, per channel, over the N neighbours
    aff = (-(diff / (std + 1e-8) / w1) ** 2).mean(1, keepdim=True)  # (B, 1, N, H, W)
    dist = torch.tensor([d * (math.sqrt(2) if dy and dx else 1.0) for d in dilations for dy, dx in DIRECTIONS],
                        device=image.device).view(1, 1, -1, 1, 1)
    pos = -(dist / (dist.std(dim=2, keepdim=True) + 1e-8) / w1) ** 2
    return aff.softmax(2) + w2 * pos.softmax(2)


def par(image: torch.Tensor, masks: torch.Tensor, iterations: int = 10, dilations=DILATIONS,
        w1: float = 0.3, w2: float = 0.01) -> torch.Tensor:
    """Propagate masks (B, C, H, W) over the image's (B, 3, H, W) pixel-adaptive affinity."""
    aff = par_affinity(image, dilations, w1, w2)
    for _ in range(iterations):
        masks = (neighbours(masks, dilations) * aff).sum(2)
    return masks


def round_half_up(x: float) -> int:
    """Nearest integer, halves up (Python's round() sends 0.5 to 0 and 2.5 to 2)."""
    return math.floor(x + 0.5)


def working_size(image_hw: tuple[int, int], down_scale: int = 2) -> tuple[int, int]:
    """The (h, w) PAR runs at: the image at 1/down_scale (at least 1 x 1)."""
    return max(1, image_hw[0] // down_scale), max(1, image_hw[1] // down_scale)


def scale_dilations(dilations, working_short_side: int, reference_short_side: float) -> tuple[int, ...]:
    """Dilations kept at the same fraction of the working map's short side: ascending, unique, >= 1.

    Duplicates are dropped: two equal dilations would weigh the same 8 neighbours twice in the softmax."""
    s = working_short_side / reference_short_side
    return tuple(sorted({max(1, round_half_up(d * s)) for d in dilations}))


def working_dilations(image_hw: tuple[int, int], preset: str = "afa", geometry: str = "absolute",
                      dilations=DILATIONS, down_scale: int = 2) -> tuple[int, ...]:
    """The dilations PAR uses on an (H, W) image: as given ("absolute"), or scaled ("relative") from the
    preset's published working map (REFERENCE_CROP / PUBLISHED_DOWN_SCALE) to this image's working map."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"par: unknown geometry {geometry!r}; known {list(GEOMETRIES)}")
    if geometry == "absolute":
        return tuple(dilations)
    reference = REFERENCE_CROP[preset] / PUBLISHED_DOWN_SCALE
    return scale_dilations(dilations, min(working_size(image_hw, down_scale)), reference)


def refine(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, preset: str = "afa",
           high: float | None = None, low: float | None = None, iterations: int = 10, down_scale: int = 2,
           dilations: tuple = DILATIONS, geometry: str = "absolute") -> tuple[np.ndarray, np.ndarray]:
    """PAR + dual thresholds. Returns (probs (K, H, W) of the `high` branch, mask with 255 in the band).

    geometry: "absolute" = `dilations` in working-map pixels as published; "relative" = `dilations` are the
    published values, rescaled to this image by working_dilations()."""
    if preset not in PRESETS:
        raise ValueError(f"par: unknown preset {preset!r}; known {sorted(PRESETS)}")
    hi, lo = (high if high is not None else PRESETS[preset][0]), (low if low is not None else PRESETS[preset][1])
    if not lo <= hi:
        raise ValueError(f"par: low threshold {lo} must not exceed high threshold {hi}")
    H, W = image.shape[:2]
    dilations = working_dilations((H, W), preset, geometry, dilations, down_scale)
    size = working_size((H, W), down_scale)
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
    keep = present_mask(labels)
    valid = np.flatnonzero(keep)  # background + present classes
    fg = torch.from_numpy(np.ascontiguousarray(cams[valid[1:]], dtype=np.float32))[None]  # (1, C, H, W)
    labels_out, probs_hi = [], None
    for thr in (hi, lo):
        m = torch.cat([torch.full((1, 1, H, W), float(thr)), fg], 1)
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False).softmax(1)
        m = par(img, m, iterations, dilations)
        m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)[0]  # (1+C, H, W)
        labels_out.append(valid[m.argmax(0).numpy()])
        if probs_hi is None:
            probs_hi = (m / m.sum(0, keepdim=True)).numpy()
    lab_hi, lab_lo = labels_out
    mask = lab_hi.astype(np.uint8)
    mask[lab_hi == 0] = IGNORE_INDEX
    mask[(lab_hi == 0) & (lab_lo == 0)] = 0
    probs = np.zeros(cams.shape, np.float32)
    probs[valid] = probs_hi
    return probs, mask
