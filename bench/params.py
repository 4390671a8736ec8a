"""Reading params.yaml (the active profile) and turning sections into config dataclasses."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from .provenance import REPO_ROOT

PARAMS_FILE = REPO_ROOT / "params.yaml"
T = TypeVar("T")


def load_params(path: str | Path | None = None) -> dict:
    path = Path(path) if path else PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path} (run `python -m bench.profiles use synthetic`)")
    with open(path) as f:
        params = yaml.safe_load(f)
    if not isinstance(params, dict) or "profile" not in params:
        raise ValueError(f"{path}: not a profile params file (no top-level 'profile' key)")
    return params


def get(params: dict, dotted: str, default: Any = ...) -> Any:
    """params['a']['b'] for 'a.b'; a missing key is an error naming it unless a default is given."""
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise KeyError(f"params.yaml: missing key {dotted!r}")
        node = node[part]
    return node
