"""DDP under torchrun: 2 gloo processes on the CPU end where 1 process ends at the same global batch.

The stand-in model has no BatchNorm or dropout and the loss is a per-image mean, so the DDP
gradient (average over ranks of each rank's mean) equals the single-process gradient.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch, torch.nn as nn, torch.nn.functional as F
    import torch.distributed as dist
    from weakclip.train import TrainConfig, train

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.frozen = nn.Conv2d(3, 4, 1)
            self.body = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 1))
        def forward(self, x):
            return {"logits": self.body(self.frozen(x))}
        def param_groups(self, lr, wd):
            return [{"params": list(self.frozen.parameters()), "lr": 0.0},
                    {"params": list(self.body.parameters()), "lr": lr, "weight_decay": wd}]

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            g = np.random.default_rng(1)
            self.x = g.random((9, 3, 8, 8)).astype(np.float32)
            self.y = g.integers(0, 3, (9, 8, 8))
        def __len__(self):
            return 9
        def __getitem__(self, i):
            x = self.x[i] * np.float32(1 + 0.1 * np.random.randn())  # seeded per sample
            return {"image": torch.from_numpy(x), "mask": torch.from_numpy(self.y[i]).long()}

    def loss(out, batch):
        ce = F.cross_entropy(out["logits"], batch["mask"], reduction="none").mean((1, 2)).mean()
        return {"total": ce, "ce": ce}

    torch.manual_seed(0)
    # fp32: where the CPU has native bf16 (AVX512-BF16/AMX) the default amp="bf16" would round a 4-image
    # batch and two 2-image halves differently, and AdamW magnifies that past any rounding tolerance.
    cfg = TrainConfig(iterations=5, batch_size=4, lr=1e-2, min_lr=1e-4, warmup_iters=2, checkpoint_every=5,
                      log_every=1, device="cpu", progress=False, grad_clip=1.0, amp="none")
    summary = train(Net(), loss, Data(), cfg, sys.argv[1])
    rank = os.environ.get("RANK", "0")
    with open(f"{sys.argv[1]}/summary_rank{rank}.json", "w") as f:
        json.dump({"world_size": summary["world_size"], "pg_left": dist.is_initialized()}, f)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(
        cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_two_gloo_ranks_match_one_process(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    _run([sys.executable, str(script), str(tmp_path / "single")], tmp_path)
    _run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            str(script),
            str(tmp_path / "ddp"),
        ],
        tmp_path,
    )

    assert json.loads((tmp_path / "single/summary_rank0.json").read_text())["world_size"] == 1
    for rank in (0, 1):
        info = json.loads((tmp_path / f"ddp/summary_rank{rank}.json").read_text())
        assert info == {"world_size": 2, "pg_left": False}, "both ranks must have trained as one DDP job"
    single = torch.load(tmp_path / "single/model.pt", weights_only=False)["model"]
    ddp = torch.load(tmp_path / "ddp/model.pt", weights_only=False)["model"]
    assert set(single) == set(ddp) and "body.0.weight" in single and "frozen.weight" in single
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-5, atol=1e-6, msg=k)
    moved = torch.load(tmp_path / "ddp/checkpoints/ckpt_5.pt", weights_only=False)
    assert moved["iteration"] == 5
    # rank 0 alone writes the log: one line per iteration, losses averaged over both ranks
    s_log = [json.loads(x) for x in (tmp_path / "single/train_log.jsonl").read_text().splitlines()]
    d_log = [json.loads(x) for x in (tmp_path / "ddp/train_log.jsonl").read_text().splitlines()]
    assert [r["it"] for r in d_log] == [1, 2, 3, 4, 5]
    for a, b in zip(s_log, d_log):
        assert b["loss_total"] == pytest.approx(a["loss_total"], rel=1e-5)
