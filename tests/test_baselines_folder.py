"""folder seeds: round trips (masks and CAMs) and bad seed files -> errors naming the file."""
import numpy as np
import pytest
from PIL import Image

from baselines import SEED_SOURCES, refine_folder
from baselines.common import load_cams, save_cams
from weakclip.core.io import load_mask, save_mask

K = 4


def samples(n=2, h=12, w=16):
    rng = np.random.default_rng(0)
    return [{"id": f"im{i}", "image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
             "labels": np.array([1, 0, 1], np.float32)} for i in range(n)]


def test_mask_round_trip_through_threshold(tmp_path):
    data = samples()
    masks = []
    for s in data:
        m = np.zeros((12, 16), np.uint8)
        m[2:6, 3:9] = 1
        m[8:, 10:] = 3
        m[0, 0] = 255
        save_mask(tmp_path / "src" / f"{s['id']}.png", m)
        masks.append(m)
    summary = SEED_SOURCES["folder"](data, tmp_path / "cams", src_dir=tmp_path / "src", num_classes=K,
                                     progress=False)
    assert summary["from_png"] == 2
    cams = load_cams(tmp_path / "cams" / "im0.npy", num_classes=K, size=(12, 16), labels=data[0]["labels"])
    np.testing.assert_allclose(cams[:, 0, 0], [1 / 3, 1 / 3, 0, 1 / 3], atol=1e-3)  # 255 -> uniform, present only
    refine_folder(data, tmp_path / "cams", tmp_path / "out", "threshold", {}, workers=1, progress=False)
    got = load_mask(tmp_path / "out" / "im0.png")
    np.testing.assert_array_equal(got[1:], masks[0][1:])  # exact round trip away from the unsure pixel


def test_npy_round_trip_fg_only(tmp_path):
    data = samples(1)
    fg = np.zeros((K - 1, 12, 16), np.float32)
    fg[0, :6] = 0.8
    fg[1] = 0.5  # absent class: zeroed on conversion
    np.save(tmp_path / "im0.npy", fg)
    SEED_SOURCES["folder"](data, tmp_path / "cams", src_dir=tmp_path, num_classes=K, bg_power=1, progress=False)
    cams = load_cams(tmp_path / "cams" / "im0.npy", num_classes=K, labels=data[0]["labels"])
    assert np.all(cams[2] == 0)
    np.testing.assert_allclose(cams[0, 0, 0], 0.2, atol=1e-3)


def write_npy(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)


def good():
    c = np.zeros((K, 12, 16), np.float32)
    c[1] = 0.5
    c[0] = 0.5
    return c


@pytest.mark.parametrize("make,match", [
    (lambda p: None, "CAM file not found|no CAM file"),
    (lambda p: write_npy(p, good()[:3]), "3 channels, expected K = num_classes = 4"),
    (lambda p: write_npy(p, good()[:, :10]), r"differs from the image size \(12, 16\)"),
    (lambda p: write_npy(p, np.where(good() > 0.4, np.nan, 0).astype(np.float32)), "non-finite"),
    (lambda p: write_npy(p, good() * 3), r"outside \[0, 1\]"),
    (lambda p: write_npy(p, (good() > 0).astype(np.uint8)), "floating-point"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "corrupt or unreadable"),
    (lambda p: write_npy(p, good() + np.eye(K, dtype=np.float32)[2][:, None, None] * 0.3), r"classes \[2\] absent"),
])
def test_bad_cam_files_name_the_file(tmp_path, make, match):
    path = tmp_path / "cams" / "im0.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        refine_folder(samples(1), tmp_path / "cams", tmp_path / "out", "threshold", workers=1, progress=False)
    assert "cams" in str(err.value)  # the message names the file / folder


@pytest.mark.parametrize("kind,match", [
    ("rgb", "not an index mask"),
    ("label", r"labels \[7\] >= num_classes 4"),
    ("size", "differs from the image size"),
    ("stray", r"classes \[2\] that are absent"),
    ("missing", "no seed for id 'im0'"),
    ("badnpy", "channels, expected K = 4 or K-1 = 3"),
])
def test_bad_seed_folder_files(tmp_path, kind, match):
    src = tmp_path / "src"
    src.mkdir()
    m = np.zeros((12, 16), np.uint8)
    if kind == "rgb":
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "im0.png")
    elif kind == "label":
        m[0, 0] = 7
        save_mask(src / "im0.png", m)
    elif kind == "size":
        save_mask(src / "im0.png", m[:10])
    elif kind == "stray":
        m[0, 0] = 2  # class 2 is not in the image-level labels [1, 3]
        save_mask(src / "im0.png", m)
    elif kind == "badnpy":
        np.save(src / "im0.npy", np.zeros((2, 12, 16), np.float32))
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        SEED_SOURCES["folder"](samples(1), tmp_path / "cams", src_dir=src, num_classes=K, progress=False)
    assert "im0" in str(err.value)
    assert not (tmp_path / "cams" / "im0.npy").exists()


def test_save_cams_refuses_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="bad.npy"):
        save_cams(tmp_path / "bad.npy", np.full((K, 2, 2), 2.0, np.float32))
    assert not (tmp_path / "bad.npy").exists()
