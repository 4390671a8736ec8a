"""Synthetic VOC-format dataset: the 20 VOC class names drawn as textured shapes on cluttered backgrounds.

    python -m bench.data.synthetic --out DIR --train N --val M --pretrain P [--dev D --dev-val E] --size S --seed K

writes DIR/JPEGImages/<id>.jpg, DIR/SegmentationClass/<id>.png (VOC palette; 0-20, 255 = ignore band along
object borders), DIR/ImageSets/Segmentation/{train,val,pretrain,dev,dev_val}.txt, DIR/cls_labels.json
(voc-mini format), DIR/captions.json ({id: caption} for the pretrain split) and DIR/meta.json (parameters +
version).

`dev` and `dev_val` are the tuning splits: every setting of the synthetic profiles that was chosen by looking
at scores is chosen on them (dev plays train: masks are made and scored there; dev_val plays val for stage 3),
so that train and val are scored once, with the settings already fixed (bench/tune.py).

Each image has 1-4 objects (occluding each other, cut by the border, 18-35% of the side in radius) over a
smooth random colour field with a faint grating, distractor blobs and lines (some blobs in front of the
objects, labelled background). Class signatures are in synthetic_shapes.py. Every image is drawn from its
own generator seeded by (seed, split, index): the splits are disjoint streams, adding a split or changing
one's size leaves the others' images unchanged, and output is byte-identical for the same arguments (fixed
JPEG settings, no timestamps).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.data.synthetic_shapes import SHAPES, SIGNATURES, TEXTURES, class_colours, hsv_to_rgb
from bench.data.voc import VOC_CLASSES
from weakclip.core.io import IGNORE_INDEX, atomic_path, save_mask, write_json, write_text

GENERATOR_VERSION = 2  # 2: larger objects, narrower hue windows (learnable by CPU-sized models)
SPLITS = ("train", "val", "pretrain", "dev", "dev_val")  # the position is the split's stream code
JPEG_SETTINGS = {"quality": 92, "subsampling": 0, "optimize": False}
N_OBJECTS_P = (0.3, 0.35, 0.22, 0.13)  # probability of 1, 2, 3, 4 objects
MIN_VISIBLE = (
    0.4  # an object keeps at least this share of its drawn area visible (else it is redrawn/dropped)
)
CLASS_NAMES = VOC_CLASSES[1:]


def band_radius(size: int) -> int:
    """Half-width of the 255 border band: 1 px (a 2 px band) up to 190 px images, growing with size."""
    return max(1, round(size / 128))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour field + faint random grating + fine grain: (S, S, 3) float."""
    grid = int(rng.integers(2, 5))
    coarse = hsv_to_rgb(
        rng.uniform(0, 360, (grid, grid)),
        rng.uniform(0.05, 0.6, (grid, grid)),
        rng.uniform(0.25, 0.85, (grid, grid)),
    )
    field = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BILINEAR), float)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    angle, period = rng.uniform(0, np.pi), rng.uniform(size / 12, size / 4)
    grating = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    return field + rng.uniform(4, 14) * grating[..., None]


def _blob(rng, canvas, size, radius_range) -> np.ndarray:
    """Draw a shaded solid ellipse in a random colour; returns its (S, S) bool mask."""
    cy, cx = rng.uniform(0, size, 2)
    ry, rx = rng.uniform(*radius_range, 2) * size
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = yy - cy, xx - cx
    a = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    b = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    mask = a * a + b * b <= 1.0
    colour = hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.95))
    shade = 1.0 + 0.2 * a[mask]
    canvas[mask] = colour * shade[:, None]
    return mask


def _line(rng, canvas, size) -> None:
    (y0, x0), (y1, x1) = rng.uniform(0, size, (2, 2))
    n = 2 * size
    ys = np.clip(np.round(np.linspace(y0, y1, n)).astype(int), 0, size - 1)
    xs = np.clip(np.round(np.linspace(x0, x1, n)).astype(int), 0, size - 1)
    canvas[ys, xs] = hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 0.8), rng.uniform(0.1, 0.95))


def _draw_object(rng, canvas, inst, size, name: str, instance_id: int) -> bool:
    """Try to paint one object of class `name` over `canvas`/`inst` without hiding earlier ones too much."""
    shape_fn, texture_fn = SHAPES[SIGNATURES[name][0]], TEXTURES[SIGNATURES[name][1]]
    for _ in range(6):  # placement attempts
        radius = size * rng.uniform(0.18, 0.35)
        cy, cx = rng.uniform(0.3 * radius, size - 0.3 * radius, 2)
        angle, aspect = np.deg2rad(rng.uniform(-15, 15)), rng.uniform(0.8, 1.25)
        half = int(np.ceil(radius * 1.5))
        by0, bx0 = int(cy) - half, int(cx) - half  # unclipped box, so the cut-off part can be measured
        yy, xx = np.mgrid[by0 : by0 + 2 * half + 1, bx0 : bx0 + 2 * half + 1].astype(float)
        dy, dx = yy - cy, xx - cx
        xr = dx * np.cos(angle) + dy * np.sin(angle)  # object frame, pixels
        yr = -dx * np.sin(angle) + dy * np.cos(angle)
        full = shape_fn(xr / (radius * aspect), yr * aspect / radius)  # (2h+1, 2h+1) bool
        y0, x0 = max(0, by0), max(0, bx0)
        y1, x1 = min(size, by0 + 2 * half + 1), min(size, bx0 + 2 * half + 1)
        inside = (slice(y0 - by0, y1 - by0), slice(x0 - bx0, x1 - bx0))
        mask, xr, yr = full[inside], xr[inside], yr[inside]
        if mask.sum() < 0.5 * full.sum():  # mostly outside the image: place again
            continue
        covered = np.bincount(inst[y0:y1, x0:x1][mask], minlength=instance_id)[1:instance_id]
        visible = np.bincount(inst.ravel(), minlength=instance_id)[1:instance_id]
        if np.any((visible > 0) & (visible - covered < MIN_VISIBLE * visible)):
            continue  # would hide too much of an earlier object
        primary, secondary = class_colours(rng, name)
        period = size / 16 * rng.uniform(0.85, 1.2)
        pattern = texture_fn(xr, yr, period)[mask]
        shade = 1.0 + 0.15 * (xr[mask] * rng.uniform(-1, 1) + yr[mask] * rng.uniform(-1, 1)) / radius
        colour = np.where(pattern[:, None], secondary, primary) * shade[:, None]
        canvas[y0:y1, x0:x1][mask] = colour
        inst[y0:y1, x0:x1][mask] = instance_id
        return True
    return False


def border_band(inst: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool: pixels with a different instance (or background) within `radius` (Chebyshev)."""
    padded = np.pad(inst, radius, mode="edge")
    h, w = inst.shape
    band = np.zeros(inst.shape, dtype=bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy or dx:
                band |= padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w] != inst
    return band


def render_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One sample: image (S, S, 3) uint8, mask (S, S) uint8 (0-20, 255 band), labels (sorted class indices,
    never empty: a draw that leaves no object is redrawn from the same generator)."""
    while True:
        image, mask, labels = _render_once(rng, size)
        if labels:
            return image, mask, labels


def _render_once(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    canvas = _background(rng, size)
    for _ in range(int(rng.integers(2, 6))):
        _blob(rng, canvas, size, (0.04, 0.16))
    for _ in range(int(rng.integers(0, 4))):
        _line(rng, canvas, size)
    inst = np.zeros((size, size), dtype=np.int64)  # 0 = background, k = k-th object
    n_objects = int(rng.choice(4, p=N_OBJECTS_P)) + 1
    classes = list(rng.choice(20, n_objects, replace=False) + 1)
    if n_objects > 1 and rng.uniform() < 0.15:
        classes[-1] = classes[0]  # a second instance of a class
    class_of = [0]
    for cls in classes:
        if _draw_object(rng, canvas, inst, size, CLASS_NAMES[cls - 1], len(class_of)):
            class_of.append(int(cls))
    if rng.uniform() < 0.3:  # an occluder in front of the objects, labelled background
        before = np.bincount(inst.ravel(), minlength=len(class_of))
        snapshot = canvas.copy()
        blob = _blob(rng, canvas, size, (0.05, 0.11))
        after = np.bincount(inst[~blob], minlength=len(class_of))
        if np.all(after[1:] >= MIN_VISIBLE * before[1:]):
            inst[blob] = 0
        else:
            canvas = snapshot
    canvas += rng.normal(0, 3.0, canvas.shape)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    mask = np.asarray(class_of, dtype=np.uint8)[inst]
    mask[border_band(inst, band_radius(size))] = IGNORE_INDEX
    labels = sorted(int(c) for c in np.unique(mask) if 0 < c < IGNORE_INDEX)
    return image, mask, labels


def caption(rng: np.random.Generator, labels: list[int]) -> str:
    """'a photo of a cat and a dog.' from the labels (raw VOC names, the names the prompts use)."""
    names = [CLASS_NAMES[k - 1] for k in rng.permutation(labels)]
    items = [("an " if n[0] in "aeiou" else "a ") + n for n in names]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    template = ("a photo of {}.", "a picture of {}.", "an image with {}.")[int(rng.integers(3))]
    return template.format(listed)


def generate(
    out, train: int, val: int, pretrain: int, size: int = 64, seed: int = 0, progress: bool = True,
    dev: int = 0, dev_val: int = 0,
) -> dict:
    """Write the dataset tree under `out`; returns the meta dict (also written to out/meta.json)."""
    if size < 32:
        raise ValueError(f"--size must be at least 32 px, got {size}")
    out = Path(out)
    _clear_previous(out)
    counts = {"train": train, "val": val, "pretrain": pretrain, "dev": dev, "dev_val": dev_val}
    images, captions = {}, {}
    total = sum(counts.values())
    with tqdm(total=total, desc=f"synthetic {size}px", disable=not progress, unit="img") as bar:
        for split_code, split in enumerate(SPLITS):
            if split.startswith("dev") and not counts[split]:
                continue  # the tuning splits are optional
            ids = [f"{split}_{i:06d}" for i in range(counts[split])]
            for i, image_id in enumerate(ids):
                rng = np.random.default_rng([seed, split_code, i])
                image, mask, labels = render_image(rng, size)
                with atomic_path(out / "JPEGImages" / f"{image_id}.jpg") as tmp:
                    Image.fromarray(image).save(tmp, format="JPEG", **JPEG_SETTINGS)
                save_mask(out / "SegmentationClass" / f"{image_id}.png", mask)
                images[image_id] = {"labels": labels, "split": split}
                if split == "pretrain":
                    captions[image_id] = caption(rng, labels)
                bar.update()
            write_text(out / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{x}\n" for x in ids))
    write_json(out / "cls_labels.json", {"classes": VOC_CLASSES, "images": images})
    write_json(out / "captions.json", captions)
    meta = {
        "generator": "bench.data.synthetic",
        "version": GENERATOR_VERSION,
        "params": {**counts, "size": size, "seed": seed},
        "band_radius": band_radius(size),
        "jpeg": JPEG_SETTINGS,
        "classes": VOC_CLASSES,
        "signatures": {name: {"shape": s, "texture": t} for name, (s, t) in SIGNATURES.items()},
    }
    write_json(out / "meta.json", meta)  # written last: its presence marks a complete tree
    return meta


def _clear_previous(out: Path) -> None:
    """Remove a previous synthetic tree at `out` (only one this generator wrote) so no stale files remain."""
    meta = out / "meta.json"
    if not out.exists():
        return
    if meta.is_file():
        try:
            previous = json.loads(meta.read_text()).get("generator")
        except json.JSONDecodeError:
            previous = None
        if previous == "bench.data.synthetic":
            for sub in ("JPEGImages", "SegmentationClass", "ImageSets"):
                shutil.rmtree(out / sub, ignore_errors=True)
            meta.unlink()
            return
    if any(out.iterdir()):
        raise FileExistsError(
            f"{out} exists and is not a synthetic dataset written by this generator; "
            "choose an empty or new folder"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.data.synthetic", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", required=True, help="output folder (VOC layout)")
    parser.add_argument("--train", type=int, required=True, help="number of training images")
    parser.add_argument("--val", type=int, required=True, help="number of validation images")
    parser.add_argument(
        "--pretrain", type=int, default=0, help="number of CLIP pre-training images (captioned)"
    )
    parser.add_argument("--dev", type=int, default=0, help="number of tuning images (plays train when tuning)")
    parser.add_argument("--dev-val", type=int, default=0, help="number of tuning images that play val")
    parser.add_argument("--size", type=int, default=64, help="square image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for key in ("train", "val", "pretrain", "dev", "dev_val"):
        if getattr(args, key) < 0:
            parser.error(f"--{key} must be >= 0")
    try:
        generate(
            args.out, args.train, args.val, args.pretrain, args.size, args.seed, progress=not args.no_progress,
            dev=args.dev, dev_val=args.dev_val,
        )
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
