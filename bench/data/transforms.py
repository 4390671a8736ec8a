"""Training augmentations (WeakCLIP's recipe, as in mmsegmentation's VOC pipeline) and the eval transform.

Training (docs/method.md): random keep-ratio resize to (2048, 512) x U(0.5, 2.0); random crop of
crop_size in which no class covers more than 75% of the labelled pixels (up to 10 tries); horizontal flip;
photometric distortion (brightness, contrast, saturation, hue); ImageNet mean/std normalisation; pad the
normalised image with 0 and the mask with 255 up to crop_size. `base_size` is a parameter so the synthetic
profile can use e.g. (256, 64).

Transforms map (image uint8 (H, W, 3), mask uint8 (H, W) or None) -> (float tensor (3, H, W), long tensor
(H, W)). `sample()` also returns the augmented uint8 crop (what the CRF loss compares colours on).
Randomness: pass `rng` (np.random.Generator); without it a generator is drawn from numpy's global state,
which the test suite seeds and DataLoader seeds per worker.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from weakclip.core.io import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _rng(rng) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))


def normalize(image: np.ndarray, mean, std) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32, (x / 255 - mean) / std."""
    # astype copies into a writable float array, so read-only cached images convert without a warning.
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).div_(255.0)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def rescale(image: np.ndarray, mask: np.ndarray | None, scale: tuple[float, float]):
    """Keep-ratio resize so the image fits `scale` = (long, short) bound: factor = min(long / max(h, w),
    short / min(h, w)). Image bilinear, mask nearest."""
    h, w = image.shape[:2]
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    new_w, new_h = max(1, int(w * factor + 0.5)), max(1, int(h * factor + 0.5))
    if (new_h, new_w) == (h, w):
        return image, mask
    image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    if mask is not None:
        mask = np.asarray(Image.fromarray(mask).resize((new_w, new_h), Image.NEAREST))
    return image, mask


def random_crop(image, mask, crop_size, rng, cat_max_ratio=0.75, tries=10, ignore_index=IGNORE_INDEX):
    """Crop (at most) crop_size; redraw up to `tries` times while one class covers >= cat_max_ratio of the
    crop's labelled pixels (a crop with a single class is also redrawn), keeping the last draw."""
    ch, cw = crop_size
    h, w = image.shape[:2]
    for _ in range(tries):
        y0 = int(rng.integers(0, max(h - ch, 0) + 1))
        x0 = int(rng.integers(0, max(w - cw, 0) + 1))
        if mask is None or cat_max_ratio >= 1.0:
            break
        crop = mask[y0 : y0 + ch, x0 : x0 + cw]
        counts = np.bincount(crop[crop != ignore_index].ravel(), minlength=1)
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
    image = image[y0 : y0 + ch, x0 : x0 + cw]
    return image, (mask[y0 : y0 + ch, x0 : x0 + cw] if mask is not None else None)


def photometric_distortion(
    image: np.ndarray, rng, brightness=32, contrast=(0.5, 1.5), saturation=(0.5, 1.5), hue=18
) -> np.ndarray:
    """mmseg's PhotoMetricDistortion: each step with probability 0.5; contrast before or after the HSV steps.
    `hue` is in OpenCV units (180 = full turn)."""
    img = image.astype(np.float32)
    if rng.integers(2):
        img = np.clip(img + rng.uniform(-brightness, brightness), 0, 255)
    contrast_first = bool(rng.integers(2))
    alpha_contrast = rng.uniform(*contrast) if rng.integers(2) else None
    if contrast_first and alpha_contrast is not None:
        img = np.clip(img * alpha_contrast, 0, 255)
    alpha_sat = rng.uniform(*saturation) if rng.integers(2) else None
    delta_hue = rng.uniform(-hue, hue) if rng.integers(2) else None
    if alpha_sat is not None or delta_hue is not None:
        hsv = np.asarray(Image.fromarray(np.round(img).astype(np.uint8)).convert("HSV"), dtype=np.float32)
        if alpha_sat is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * alpha_sat, 0, 255)
        if delta_hue is not None:  # PIL hue: 256 = full turn
            hsv[..., 0] = np.mod(hsv[..., 0] + delta_hue * 256.0 / 180.0, 256.0)
        img = np.asarray(
            Image.fromarray(np.mod(np.round(hsv), 256).astype(np.uint8), "HSV").convert("RGB"), np.float32
        )
    if not contrast_first and alpha_contrast is not None:
        img = np.clip(img * alpha_contrast, 0, 255)
    return np.round(img).astype(np.uint8)


class TrainTransform:
    def __init__(
        self,
        crop_size=512,
        scale_range=(0.5, 2.0),
        base_size=(2048, 512),
        cat_max_ratio=0.75,
        flip=True,
        photometric=True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        ignore_index=IGNORE_INDEX,
    ):
        self.crop_size = _pair(crop_size)  # (h, w)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.base_size = (int(base_size[0]), int(base_size[1]))
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        self.cat_max_ratio = float(cat_max_ratio)
        self.flip, self.photometric = bool(flip), bool(photometric)
        self.mean, self.std = tuple(mean), tuple(std)
        self.ignore_index = ignore_index

    def augment(self, image: np.ndarray, mask: np.ndarray | None, rng=None):
        """Resize, crop, flip, photometric: an unpadded uint8 crop (h <= crop_h, w <= crop_w) and its mask."""
        rng = _rng(rng)
        ratio = rng.uniform(*self.scale_range)
        image, mask = rescale(image, mask, (self.base_size[0] * ratio, self.base_size[1] * ratio))
        image, mask = random_crop(
            image, mask, self.crop_size, rng, self.cat_max_ratio, ignore_index=self.ignore_index
        )
        if self.flip and rng.integers(2):
            image = image[:, ::-1]
            mask = mask[:, ::-1] if mask is not None else None
        if self.photometric:
            image = photometric_distortion(image, rng)
        return np.ascontiguousarray(image), (np.ascontiguousarray(mask) if mask is not None else None)

    def sample(self, image: np.ndarray, mask: np.ndarray | None, rng=None) -> dict:
        """dict(image (3, ch, cw) float normalised, 0-padded; mask (ch, cw) long, 255-padded (all 255 when
        mask is None); image_uint8 (ch, cw, 3) uint8 crop, 0-padded)."""
        crop, crop_mask = self.augment(image, mask, rng)
        h, w = crop.shape[:2]
        ch, cw = self.crop_size
        out_image = torch.zeros(3, ch, cw)
        out_image[:, :h, :w] = normalize(crop, self.mean, self.std)
        out_mask = torch.full((ch, cw), self.ignore_index, dtype=torch.long)
        if crop_mask is not None:
            out_mask[:h, :w] = torch.from_numpy(crop_mask.astype(np.int64))
        raw = torch.zeros(ch, cw, 3, dtype=torch.uint8)
        raw.numpy()[:h, :w] = crop  # numpy-side copy: crop may be a read-only view of the item cache
        return {"image": out_image, "mask": out_mask, "image_uint8": raw}

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng=None):
        out = self.sample(image, mask, rng)
        return out["image"], out["mask"]


class EvalTransform:
    """Normalisation only; the mask (if any) becomes a long tensor."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def sample(self, image: np.ndarray, mask: np.ndarray | None, rng=None) -> dict:
        mask_t = torch.from_numpy(mask.astype(np.int64)) if mask is not None else None
        return {
            "image": normalize(image, self.mean, self.std),
            "mask": mask_t,
            "image_uint8": torch.from_numpy(np.array(image, copy=True)),  # never aliases the item cache
        }

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None, rng=None):
        out = self.sample(image, mask)
        return out["image"], out["mask"]


class TorchSegDataset(torch.utils.data.Dataset):
    """A SegDataset behind a transform, for DataLoader: items are dict(image (3, H, W) float, mask (H, W)
    long (all 255 when the dataset has no mask), labels (C-1,) float, id str, image_uint8 (H, W, 3) uint8)."""

    def __init__(self, dataset, transform, cache_mb: float = 0.0):
        """cache_mb: keep decoded items (image, mask, labels) in memory up to this many MiB, so that every
        epoch after the first skips JPEG/PNG decoding (about half of a 64 px training item's time). Items past
        the budget are decoded every time; each DataLoader worker holds its own cache."""
        if cache_mb < 0:
            raise ValueError(f"TorchSegDataset: cache_mb must be >= 0, got {cache_mb}")
        self.dataset, self.transform = dataset, transform
        self.cache_bytes_left = int(cache_mb * 2**20)
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def decoded(self, index: int) -> dict:
        if index in self._cache:
            return self._cache[index]
        item = self.dataset[index]
        arrays = [a for a in (item["image"], item["mask"]) if a is not None]
        size = sum(a.nbytes for a in arrays)
        if size <= self.cache_bytes_left:
            for a in arrays:  # a cached array is shared by every later epoch: transforms must copy, not edit
                a.setflags(write=False)
            self._cache[index] = item
            self.cache_bytes_left -= size
        return item

    def __getitem__(self, index: int) -> dict:
        item = self.decoded(index)
        out = self.transform.sample(item["image"], item["mask"])
        if out["mask"] is None:
            out["mask"] = torch.full(out["image"].shape[1:], IGNORE_INDEX, dtype=torch.long)
        out["labels"] = torch.from_numpy(item["labels"].copy())
        out["id"] = item["id"]
        return out
