"""The exact dense CRF (weakclip.core.crf_exact): the model written out pixel by pixel, pydensecrf's lattice,
the boundary loss built on it, and the same numbers on a GPU."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from weakclip.core.crf import CRFParams, crf_params, dense_crf
from weakclip.core.crf_exact import MAX_PIXELS, dense_crf_exact
from weakclip.losses import WeakCLIPLoss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mean_field_by_the_definition(image: np.ndarray, probs: np.ndarray, p: CRFParams) -> np.ndarray:
    """Krähenbühl & Koltun's mean field written out pixel by pixel in float64 (the reference).

    k(i, j) = exp(-|f_i - f_j|^2 / 2) over the scaled features, pixel itself included; each kernel
    normalised by 1 / sqrt(d_i d_j), d = the kernel's row sums; Potts messages add compat * sum_j k~ Q_j.
    """
    h, w, _ = image.shape
    coords = [(x, y) for y in range(h) for x in range(w)]
    rgb = image.reshape(-1, 3).astype(np.float64)
    n = h * w

    def kernel(features):
        k = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                k[i, j] = math.exp(-0.5 * sum((a - b) ** 2 for a, b in zip(features[i], features[j], strict=True)))
        d = k.sum(axis=1)
        return k / np.sqrt(np.outer(d, d))

    gauss = kernel([(x / p.gauss_sxy, y / p.gauss_sxy) for x, y in coords])
    bil = kernel([(x / p.bilateral_sxy, y / p.bilateral_sxy, *(rgb[i] / p.bilateral_srgb))
                  for i, (x, y) in enumerate(coords)])
    neg_unary = np.log(np.clip(probs.reshape(probs.shape[0], -1).T.astype(np.float64), 1e-8, 1.0))  # (N, K)

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    q = softmax(neg_unary)
    for _ in range(p.iterations):
        q = softmax(neg_unary + p.gauss_compat * gauss @ q + p.bilateral_compat * bil @ q)
    return q.T.reshape(probs.shape)


def _two_region_case(h=7, w=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 2:] = (200, 40, 90)
    image = (image.astype(int) + rng.integers(0, 20, image.shape)).clip(0, 255).astype(np.uint8)
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(k, h, w))).float() * 2, 0).numpy()
    return image, probs


@pytest.mark.parametrize("preset", ["weakclip_loss", "deeplab"])
def test_matches_the_model_written_out_pixel_by_pixel(preset):
    image, probs = _two_region_case()
    p = crf_params(preset)
    want = mean_field_by_the_definition(image, probs, p)
    got = dense_crf_exact(torch.from_numpy(image)[None], torch.from_numpy(probs)[None], p)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)  # float32 against float64
    assert np.abs(got - probs).max() > 0.05  # the CRF moved the probabilities: the comparison is not vacuous


def _block_image_and_noisy_probs(size=32, k=5, seed=0):
    """Colour blocks (the labels) and probabilities that follow them through smoothed noise."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int64)
    labels[4:20, 6:26] = 1
    labels[18:30, 2:14] = 2
    labels[20:31, 20:31] = 3 + (seed % 2)
    palette = rng.integers(0, 256, (k, 3))
    image = (palette[labels] + rng.normal(0, 8, (size, size, 3))).clip(0, 255).astype(np.uint8)
    logits = F.one_hot(torch.from_numpy(labels), k).permute(2, 0, 1).float() * 2
    logits = logits + torch.from_numpy(rng.normal(0, 1.5, (k, size, size))).float()
    logits = F.avg_pool2d(logits[None], 5, 1, 2)[0] * 3
    return image, torch.softmax(logits, 0).numpy()


def _boundary_term(q: np.ndarray, probs: np.ndarray) -> float:
    """The boundary loss's value for marginals q and probabilities probs, both (B, K, h, w)."""
    q, logp = torch.from_numpy(q), torch.from_numpy(probs).clamp_min(1e-12).log()
    ratio = (q.clamp_min(1e-12).log() - logp).clamp(math.log(0.05), math.log(20))
    return float((q * ratio).sum(1).mean())


def _agreement(images, probs, preset):
    lattice = np.stack([dense_crf(im, pr, preset) for im, pr in zip(images, probs, strict=True)])
    exact = dense_crf_exact(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(probs)), preset).numpy()
    argmax_agreement = float((lattice.argmax(1) == exact.argmax(1)).mean())
    input_agreement = float((np.stack(probs).argmax(1) == lattice.argmax(1)).mean())
    probs = np.stack(probs)
    return argmax_agreement, input_agreement, _boundary_term(lattice, probs), _boundary_term(exact, probs)


def test_agrees_with_pydensecrf_on_generated_images():
    cases = [_block_image_and_noisy_probs(seed=s) for s in range(4)]
    agree, moved, loss_lattice, loss_exact = _agreement([c[0] for c in cases], [c[1] for c in cases],
                                                        "weakclip_loss")
    assert moved < 0.97  # the CRF changed labels: agreement below is not agreement on untouched inputs
    assert agree > 0.98
    assert loss_exact == pytest.approx(loss_lattice, rel=0.05)


def test_agrees_with_pydensecrf_on_voc_photos(voc_mini_root):
    """Real photos at the loss grid's scale, probabilities that follow the official masks through noise."""
    from PIL import Image

    voc = voc_mini_root / "VOC2012"
    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:8]
    rng = np.random.default_rng(0)
    images, probs = [], []
    for name in ids:
        image = Image.open(voc / "JPEGImages" / f"{name}.jpg").convert("RGB").resize((48, 48), Image.BILINEAR)
        mask = np.array(Image.open(voc / "SegmentationClass" / f"{name}.png").resize((48, 48), Image.NEAREST))
        mask = np.where(mask == 255, 0, mask).astype(np.int64)
        logits = F.one_hot(torch.from_numpy(mask), 21).permute(2, 0, 1).float() * 2
        logits = logits + torch.from_numpy(rng.normal(0, 1.5, logits.shape)).float()
        images.append(np.array(image))
        probs.append(torch.softmax(F.avg_pool2d(logits[None], 5, 1, 2)[0] * 3, 0).numpy())
    agree, moved, loss_lattice, loss_exact = _agreement(images, probs, "weakclip_loss")
    assert moved < 0.97
    assert agree > 0.98
    assert loss_exact == pytest.approx(loss_lattice, rel=0.05)


def test_bad_inputs_are_named():
    image, probs = _two_region_case()
    im, pr = torch.from_numpy(image)[None], torch.from_numpy(probs)[None]
    with pytest.raises(ValueError, match="uint8"):
        dense_crf_exact(im.float(), pr)
    with pytest.raises(ValueError, match="differ"):
        dense_crf_exact(im[:, :5], pr)
    side = math.isqrt(MAX_PIXELS) + 1
    with pytest.raises(ValueError, match="exceeds"):
        dense_crf_exact(torch.zeros(1, side, side, 3, dtype=torch.uint8), torch.full((1, 2, side, side), 0.5))


def test_boundary_loss_backends_agree_and_train():
    image, probs = _block_image_and_noisy_probs(size=64)
    logits = torch.log(torch.from_numpy(probs))[None].requires_grad_(True)  # (1, K, 64, 64)
    out = {"logits": logits, "aux_logits": torch.zeros(1, probs.shape[0], 8, 8)}
    batch = {"mask": torch.full((1, 64, 64), 255, dtype=torch.long), "image_uint8": torch.from_numpy(image)[None]}
    lattice = WeakCLIPLoss(crf_workers=1, loss_size=32)(out, batch)
    exact = WeakCLIPLoss(crf_workers=1, loss_size=32, crf_backend="exact")(out, batch)
    assert exact["boundary"].item() > 1e-3
    assert exact["boundary"].item() == pytest.approx(lattice["boundary"].item(), rel=0.05)
    exact["total"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="crf_backend"):
        WeakCLIPLoss(crf_backend="lattice")


@pytest.mark.gpu
def test_gpu_matches_cpu():
    cases = [_block_image_and_noisy_probs(size=64, seed=s) for s in range(4)]
    images = torch.from_numpy(np.stack([c[0] for c in cases]))
    probs = torch.from_numpy(np.stack([c[1] for c in cases]))
    cpu = dense_crf_exact(images, probs, "weakclip_loss")
    gpu = dense_crf_exact(images.cuda(), probs.cuda(), "weakclip_loss")
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
