"""Config dataclasses from params sections: the one place a dict becomes a config.

YAML has no tuples and users misspell keys; so a key the dataclass does not have is an error naming it and the
known ones, and a list becomes a tuple where the field's default is a tuple.
"""
from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")


def config_from(cls: type[T], cfg: dict | T | None = None, **overrides) -> T:
    """Build config dataclass `cls` from a dict (or an instance of it) plus keyword overrides."""
    base = dataclasses.asdict(cfg) if isinstance(cfg, cls) else dict(cfg or {})
    base.update(overrides)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(base) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}; known: {sorted(fields)}")
    for name, value in base.items():
        if isinstance(value, list) and isinstance(fields[name].default, tuple):
            base[name] = tuple(value)
    return cls(**base)
