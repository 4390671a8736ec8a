"""cam: fit a timm classifier on a tiny synthetic set, then multi-scale + flip CAMs in the contract format."""
import numpy as np
import pytest

from baselines import SEED_SOURCES, TRAINERS
from baselines.common import load_cams

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dataset(n=16, size=32):
    """Class 1 = a red square, class 2 = a green square, on grey; 1 or 2 objects per image."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 110, np.uint8)
        labels = np.zeros(2, np.float32)
        for c, colour in ((0, (230, 20, 20)), (1, (20, 230, 20))):
            if rng.random() < 0.6 or (c == 1 and labels.sum() == 0):
                y, x = rng.integers(0, size - 10, 2)
                img[y:y + 10, x:x + 10] = colour
                labels[c] = 1
        out.append({"id": f"im{i}", "image": img, "labels": labels})
    return out


def test_fit_then_generate(tmp_path):
    data = dataset()
    cfg = {"num_classes": 3, "backbone": "resnet18", "output_stride": 8, "epochs": 3, "batch_size": 8,
           "optimizer": "adamw", "lr": 1e-3, "resize_long": (28, 36), "crop_size": 32, "device": "cpu"}
    summary = TRAINERS["cam"](data, cfg, tmp_path / "cls.pt", progress=False)
    assert summary["steps"] == 6 and np.isfinite(summary["loss_last"])
    out = SEED_SOURCES["cam"](data[:3], tmp_path / "cams", checkpoint=str(tmp_path / "cls.pt"), device="cpu",
                              progress=False)
    assert out["n_images"] == 3
    for s in data[:3]:
        cams = load_cams(tmp_path / "cams" / f"{s['id']}.npy", num_classes=3, size=(32, 32), labels=s["labels"])
        assert np.all(cams[0] == np.float32(np.float16(0.15)))  # IRN's constant background
        for c in np.flatnonzero(s["labels"]):
            assert cams[c + 1].max() == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        SEED_SOURCES["cam"](data, tmp_path / "x", checkpoint=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="unknown options"):
        SEED_SOURCES["cam"](data, tmp_path / "x", checkpoint=str(tmp_path / "cls.pt"), epochs=3)
