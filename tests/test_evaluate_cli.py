"""`python -m bench.evaluate`: end to end, JSON contract, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.evaluate import main
from weakclip.core.io import save_mask

REPO = Path(__file__).resolve().parents[1]
GT = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
PRED = np.array([[0, 1, 1, 255], [2, 0, 2, 1]], np.uint8)


@pytest.fixture
def case(tmp_path):
    for i in range(2):
        save_mask(tmp_path / "gt" / f"im{i}.png", GT)
        save_mask(tmp_path / "pred" / f"im{i}.png", PRED)
    (tmp_path / "list.txt").write_text("im0\nim1\n\n")
    return tmp_path


def _args(root, *extra):
    return [
        "--pred",
        str(root / "pred"),
        "--gt",
        str(root / "gt"),
        "--list",
        str(root / "list.txt"),
        "--num-classes",
        "4",
        "--no-progress",
        *extra,
    ]


def test_cli_writes_the_json_contract(case, capsys):
    out = case / "res" / "metrics.json"
    assert main(_args(case, "--pred-ignore", "ignore", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    for key in (
        "miou",
        "iou",
        "precision",
        "recall",
        "fp",
        "fn",
        "coverage",
        "n_images",
        "num_classes",
        "pred_ignore",
        "list",
        "environment",
    ):
        assert key in result, key
    assert result["iou"][3] is None  # class 3 never occurs: null in JSON
    assert result["miou"] == pytest.approx(0.5) and 0 <= result["miou"] <= 1
    assert result["coverage"] == pytest.approx(6 / 7)
    assert result["n_images"] == 2 and result["num_classes"] == 4 and result["pred_ignore"] == "ignore"
    assert result["list"].endswith("list.txt")
    assert {"git", "versions", "device"} <= set(result["environment"])
    assert "mIoU 50.00" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # atomic write leaves no temp file


def test_cli_exclude_classes(case, tmp_path):
    out = tmp_path / "m.json"
    assert main(_args(case, "--exclude-classes", "2", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    assert result["iou"][2] is None and result["exclude_classes"] == [2]


def test_cli_errors_exit_2_naming_the_file(case, capsys):
    (case / "pred" / "im1.png").unlink()
    out = case / "never.json"
    assert main(_args(case, "--out", str(out))) == 2
    assert "im1.png" in capsys.readouterr().err and not out.exists()
    (case / "empty.txt").write_text("\n")
    args = _args(case)
    args[args.index("--list") + 1] = str(case / "empty.txt")
    assert main(args) == 2
    assert "empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(case, "--pred-ignore", "sometimes"))


def test_module_runs_as_a_subprocess(case):
    out = case / "sub.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.evaluate", *_args(case, "--pred-ignore", "miss", "--out", str(out))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["miou"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)


def test_cli_reports_a_split_with_no_scorable_pixel(tmp_path, capsys):
    """Ground truth all 255: mIoU and coverage are n/a, said in the summary line, not a crash."""
    for i in range(2):
        save_mask(tmp_path / "gt" / f"im{i}.png", np.full_like(GT, 255))
        save_mask(tmp_path / "pred" / f"im{i}.png", PRED)
    (tmp_path / "list.txt").write_text("im0\nim1\n")
    assert main(_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "mIoU n/a" in out and "coverage n/a" in out
