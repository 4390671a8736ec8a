"""Visual signatures of the 20 synthetic classes: a shape family, a texture and a hue distribution each.

Design (why it is learnable but not trivial):
- every class has its own shape (20 families, drawn with a little rotation and aspect jitter) and one of
  six textures (each texture is shared by 3-4 classes; shapes that look alike at 64 px, e.g. disk /
  hexagon / flower / ring, carry different textures), so shape and texture together identify the class;
- colour is evidence, not an answer: each class draws its hue from a 60-degree window around a centre spaced
  by the golden angle, so any hue is shared by three to four classes, and saturation/brightness are drawn from
  the same ranges for all classes; no colour channel separates the classes (tests check that a
  nearest-mean colour classifier does poorly);
- textures have a period tied to the image size (size/16 px: 4 px at 64 px, 6 px at 96 px), which a
  patch-8 ViT sees inside each patch.

Shape functions take object-frame coordinates (u, v) in units of the object radius (v points down) and
return a boolean mask; texture functions take object-frame pixel offsets (x, y) and a period (px) and
return True where the secondary colour goes.
"""

from __future__ import annotations

import numpy as np


def _polygon(n: int, rot: float, scale: float = 1.0):
    """Regular n-gon with circumradius `scale` and a vertex at angle `rot`."""

    def shape(u, v):
        r, th = np.hypot(u, v), np.arctan2(v, u)
        sector = np.mod(th - rot, 2 * np.pi / n) - np.pi / n
        return r * np.cos(sector) <= scale * np.cos(np.pi / n)

    return shape


def _heart(u, v):
    x, y = u * 1.15, -v * 1.15 + 0.15
    return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0


def _arrow(u, v):
    shaft = (np.abs(v) <= 0.22) & (u >= -1.0) & (u <= 0.1)
    head = (u >= 0.0) & (u <= 1.0) & (np.abs(v) <= (1.0 - u) * 0.85)
    return shaft | head


SHAPES = {
    "disk": lambda u, v: np.hypot(u, v) <= 1.0,
    "square": _polygon(4, np.pi / 4),
    "diamond": _polygon(4, 0.0),
    "triangle": _polygon(3, -np.pi / 2, 1.1),
    "hexagon": _polygon(6, 0.0),
    "star": lambda u, v: (
        np.hypot(u, v) <= 0.42 + 0.58 * ((1 + np.cos(5 * (np.arctan2(v, u) + np.pi / 2))) / 2) ** 2
    ),
    "flower": lambda u, v: np.hypot(u, v) <= 0.5 + 0.5 * np.abs(np.cos(3 * np.arctan2(v, u))),
    "ring": lambda u, v: (np.hypot(u, v) <= 1.0) & (np.hypot(u, v) >= 0.55),
    "frame": lambda u, v: (
        (np.maximum(np.abs(u), np.abs(v)) <= 0.85) & (np.maximum(np.abs(u), np.abs(v)) >= 0.45)
    ),
    "crescent": lambda u, v: (np.hypot(u, v) <= 1.0) & (np.hypot(u - 0.5, v + 0.15) >= 0.8),
    "dome": lambda u, v: (np.hypot(u, v) <= 1.0) & (v <= 0.3),
    "pill": lambda u, v: np.hypot(np.maximum(np.abs(v) - 0.55, 0.0), u) <= 0.45,  # vertical capsule
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    ),
    "xcross": lambda u, v: (
        ((np.abs(u + v) <= 0.42) & (np.abs(u - v) <= 1.4))
        | ((np.abs(u - v) <= 0.42) & (np.abs(u + v) <= 1.4))
    ),
    "tee": lambda u, v: (
        ((v >= -0.95) & (v <= -0.4) & (np.abs(u) <= 0.95)) | ((np.abs(u) <= 0.28) & (v >= -0.4) & (v <= 0.95))
    ),
    "ell": lambda u, v: (
        ((u >= -0.9) & (u <= -0.35) & (np.abs(v) <= 0.95)) | ((v >= 0.4) & (v <= 0.95) & (np.abs(u) <= 0.9))
    ),
    "hourglass": lambda u, v: (
        (np.abs(u) <= np.abs(v) * 0.9 + 0.08) & (np.abs(v) <= 0.95) & (np.abs(u) <= 0.9)
    ),
    "twinbars": lambda u, v: (np.abs(u) >= 0.22) & (np.abs(u) <= 0.72) & (np.abs(v) <= 0.95),
    "heart": _heart,
    "arrow": _arrow,
}


def _stripes(coord, period):
    return np.mod(coord, period) < period / 2


TEXTURES = {
    "hstripes": lambda x, y, p: _stripes(y, p),
    "vstripes": lambda x, y, p: _stripes(x, p),
    "diagonal": lambda x, y, p: _stripes((x + y) / np.sqrt(2.0), p),
    "checker": lambda x, y, p: _stripes(x, 1.5 * p) ^ _stripes(y, 1.5 * p),
    "dots": lambda x, y, p: (
        np.hypot(np.mod(x, 1.3 * p) - 0.65 * p, np.mod(y, 1.3 * p) - 0.65 * p) <= 0.33 * p
    ),
    "rings": lambda x, y, p: _stripes(np.hypot(x, y), p),
}

# VOC class -> (shape, texture); classes per texture: 4 for h/v stripes, 3 for the other four.
SIGNATURES: dict[str, tuple[str, str]] = {
    "aeroplane": ("arrow", "hstripes"),
    "bicycle": ("ring", "dots"),
    "bird": ("triangle", "diagonal"),
    "boat": ("dome", "vstripes"),
    "bottle": ("pill", "checker"),
    "bus": ("square", "hstripes"),
    "car": ("hexagon", "checker"),
    "cat": ("star", "vstripes"),
    "chair": ("ell", "diagonal"),
    "cow": ("crescent", "dots"),
    "diningtable": ("tee", "hstripes"),
    "dog": ("disk", "diagonal"),
    "horse": ("hourglass", "checker"),
    "motorbike": ("twinbars", "dots"),
    "person": ("cross", "vstripes"),
    "pottedplant": ("flower", "rings"),
    "sheep": ("heart", "rings"),
    "sofa": ("frame", "vstripes"),
    "train": ("diamond", "rings"),
    "tvmonitor": ("xcross", "hstripes"),
}
assert len(set(SIGNATURES.values())) == 20 and len({s for s, _ in SIGNATURES.values()}) == 20

# Degrees; width of each class's hue distribution. Version 1 used 110 (any hue shared by ~6 classes): the
# tiny CLIP then reached zero-shot mAP 0.28 and no CPU-budget WeakCLIP run learned more than the seeds' blobs.
HUE_WINDOW = 60.0
GOLDEN_ANGLE = 137.508
# Hue centre (degrees) of class k (1..20): golden-angle spacing decorrelates hue from shape and texture.
HUE_CENTRES = {name: (k * GOLDEN_ANGLE) % 360.0 for k, name in enumerate(SIGNATURES, start=1)}


def hsv_to_rgb(h, s, v) -> np.ndarray:
    """Vectorised HSV -> RGB; h in degrees, s and v in [0, 1]; returns (..., 3) float in [0, 255]."""
    h, s, v = np.broadcast_arrays(np.asarray(h, float), np.asarray(s, float), np.asarray(v, float))
    k = np.stack([(5 + h / 60) % 6, (3 + h / 60) % 6, (1 + h / 60) % 6], axis=-1)  # (..., 3)
    rgb = v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb * 255.0


def class_colours(rng: np.random.Generator, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Primary and secondary colour (3,) float of one object of class `name`."""
    hue = HUE_CENTRES[name] + rng.uniform(-HUE_WINDOW / 2, HUE_WINDOW / 2)
    sat, val = rng.uniform(0.45, 0.95), rng.uniform(0.55, 0.95)
    primary = hsv_to_rgb(hue, sat, val)
    secondary = hsv_to_rgb(
        hue + rng.uniform(-20, 20), sat * rng.uniform(0.5, 1.0), val * rng.uniform(0.25, 0.5)
    )
    return primary, secondary
