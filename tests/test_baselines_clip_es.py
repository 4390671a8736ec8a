"""clip_es with a tiny random open_clip CLIP and a random ViT-B/16 (small input): contract and gradients."""
import os

import numpy as np
import pytest
import torch

from baselines import SEED_SOURCES, clip_es
from baselines.common import load_cams

os.environ.setdefault("HF_HUB_OFFLINE", "1")
NAMES = ("background", "aeroplane", "bicycle", "bird", "diningtable", "tvmonitor")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("caa,grad_at,pool", [(False, "block_input", "mean"), (True, "block_input", "mean"),
                                              (True, "ln_1", "cls")])
def test_tiny_clip_contract(caa, grad_at, pool):
    torch.manual_seed(0)
    cfg = clip_es.ClipESConfig(class_names=NAMES, caa=caa, grad_at=grad_at, pool=pool, device="cpu")
    runner = clip_es.ClipES(cfg)
    labels = np.array([1, 0, 1, 0, 1], np.float32)
    cams = runner(image(40, 72), labels)  # non-native size: 5x9 tokens, positional embedding resized
    assert cams.shape == (6, 40, 72) and cams.dtype == np.float32
    assert runner.last_grad_norm > 0  # Grad-CAM saw a non-zero gradient at the last block's input
    assert np.all(cams[[2, 4]] == 0)  # absent classes
    assert cams.min() >= 0 and cams.max() <= 1
    np.testing.assert_allclose(cams[[1, 3, 5]].reshape(3, -1).max(1), 1.0, atol=1e-5)  # per-class max 1
    np.testing.assert_allclose(cams[0], 1 - cams[1:].max(0), atol=1e-6)  # (1 - max)^1


def test_gradient_is_zero_after_the_last_block_with_cls_pooling():
    """Why the gradient is taken at the last block's input (docs/baselines.md): with CLS pooling, the final
    patch tokens do not reach the embedding."""
    from baselines.clip_dense import dense_forward, load_clip, preprocess

    model, _ = load_clip("tiny", None, {}, "cpu")
    x = preprocess(image(64, 64), 8, None, 1.0, torch.device("cpu"))
    out = dense_forward(model, x, pool="cls")
    g_in = torch.autograd.grad(out.image_embed.sum(), out.activation)[0]
    assert g_in[0, 1:].abs().sum() > 0


def test_generate_writes_contract_files_bg_power_2(tmp_path):
    torch.manual_seed(0)
    samples = [{"id": f"im{i}", "image": image(64, 64, i), "labels": np.eye(5, dtype=np.float32)[i]}
               for i in range(3)]
    summary = SEED_SOURCES["clip_es"](samples, tmp_path, class_names=list(NAMES), bg_power=2, device="cpu",
                                      progress=False)
    assert summary["n_images"] == 3 and summary["mean_gradcam_mass"] > 0
    for i, s in enumerate(samples):
        raw = np.load(tmp_path / f"im{i}.npy")
        assert raw.dtype == np.float16 and raw.shape == (6, 64, 64)
        cams = load_cams(tmp_path / f"im{i}.npy", num_classes=6, size=(64, 64), labels=s["labels"])
        np.testing.assert_allclose(cams[0], (1 - cams[1:].max(0)) ** 2, atol=2e-3)
    with pytest.raises(ValueError, match="class_names"):
        clip_es.generate(samples, tmp_path, device="cpu")
    with pytest.raises(ValueError, match="unknown config keys"):
        clip_es.generate(samples, tmp_path, class_names=NAMES, bogus=1)


def test_vit_b16_small_input():
    torch.manual_seed(0)
    runner = clip_es.ClipES(clip_es.ClipESConfig(class_names=NAMES, arch="ViT-B-16", device="cpu"))
    cams = runner(image(48, 64), np.array([0, 1, 0, 0, 1], np.float32))  # 3x4 tokens
    assert cams.shape == (6, 48, 64) and runner.last_grad_norm > 0
    assert np.all(cams[[1, 3, 4]] == 0) and cams[[2, 5]].max() == pytest.approx(1.0, abs=1e-5)
