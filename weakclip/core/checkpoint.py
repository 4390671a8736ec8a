"""Checkpoints and the JSONL training log of the training loop (weakclip/train.py).

A checkpoint is written through a temporary name renamed into place, so a run killed mid-write leaves the
previous one intact; it carries the model's trainable state, the optimizer, every RNG and the log window, so
that resuming from it follows the uninterrupted run."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from weakclip.core.io import atomic_path


def model_state(model: torch.nn.Module, save_frozen: bool) -> tuple[dict, list[str]]:
    """(state dict to save, names of the entries left out of it).

    A model with `head_state_dict()` (WeakCLIP: everything but the CLIP towers, which are reloaded
    from their own weights file) saves only that; any other model saves its full state, since a
    frozen parameter that is not reloadable (the release's randomly initialised, frozen adapter)
    must travel with the checkpoint."""
    full = model.state_dict()
    if save_frozen or not hasattr(model, "head_state_dict"):
        return full, []
    head = model.head_state_dict()
    return head, sorted(set(full) - set(head))


def load_model_weights(model: torch.nn.Module, path_or_ckpt) -> dict:
    """Load model.pt / a checkpoint into `model`. Keys may be missing only if the file lists them
    as frozen (they come from the CLIP weights the model was built with); returns the file's dict."""
    ckpt = (
        path_or_ckpt
        if isinstance(path_or_ckpt, dict)
        else torch.load(path_or_ckpt, map_location="cpu", weights_only=False)
    )
    state = ckpt["model"] if "model" in ckpt else ckpt["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = sorted(set(missing) - set(ckpt.get("frozen_keys", [])))
    if unexpected or bad:
        where = path_or_ckpt if not isinstance(path_or_ckpt, dict) else "checkpoint"
        raise KeyError(
            f"{where}: weights do not match the model (missing {bad[:8]}, unexpected {unexpected[:8]})"
        )
    return ckpt


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, obj: dict) -> None:
    """torch.save through a temporary file renamed into place: never a partial checkpoint."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


class JsonlLog:
    """out_dir/train_log.jsonl, one JSON object per line, flushed as written (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool, resume_it: int | None):
        self.path, self.f = path, None
        if not enabled:
            return
        if resume_it is None:
            path.write_text("")
        elif path.exists():  # drop lines written after the checkpoint we resume from
            keep = [
                ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["it"] <= resume_it
            ]
            with atomic_path(path) as tmp:
                tmp.write_text("".join(ln + "\n" for ln in keep))
        self.f = open(path, "a")  # noqa: SIM115 - a long-lived handle, closed by close()

    def write(self, record: dict) -> None:
        if self.f:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()

    def close(self) -> None:
        if self.f:
            self.f.close()
