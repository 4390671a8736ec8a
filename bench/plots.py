"""Matplotlib figures for the report (PNG only: DVC's HTML plots need the internet)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from weakclip.core.io import VOC_PALETTE, atomic_path


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def method_bars(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """summary: columns method, mean, std, n (one bar per method, error bar = std over run seeds)."""
    summary = summary.sort_values("mean")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(summary) + 1.2))
    ax.barh(summary["method"], summary["mean"], xerr=summary["std"].fillna(0), color="#4c72b0", capsize=3)
    right = summary["mean"] + summary["std"].fillna(0)  # where each bar's error bar ends
    for y, (m, end, n) in enumerate(zip(summary["mean"], right, summary["n"])):
        ax.text(end + 0.008, y, f"{m:.3f} (n={n})", va="center", fontsize=8)  # past the error bar
    ax.set_xlabel("mIoU (fraction)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, min(1.0, max(0.1, right.max() * 1.35)))
    return _save(fig, path)


def class_heatmap(per_class: pd.DataFrame, path: Path, title: str) -> Path:
    """per_class: index = method, columns = class names, values = IoU (NaN where absent)."""
    fig, ax = plt.subplots(figsize=(0.42 * per_class.shape[1] + 2.5, 0.4 * per_class.shape[0] + 1.5))
    im = ax.imshow(per_class.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(per_class.shape[1]), per_class.columns, rotation=70, fontsize=7)
    ax.set_yticks(range(per_class.shape[0]), per_class.index, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, label="IoU")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def threshold_sweep(sweep: pd.DataFrame, path: Path, chosen: dict[str, float]) -> Path:
    """sweep: columns method, threshold, value (mIoU); chosen marks the value used (picked without GT)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, grp in sweep.groupby("method"):
        grp = grp.sort_values("threshold")
        line, = ax.plot(grp["threshold"], grp["value"], marker="o", ms=3, label=method)
        if method in chosen:
            ax.axvline(chosen[method], color=line.get_color(), ls="--", lw=1)
    ax.set_xlabel("background threshold")
    ax.set_ylabel("mIoU on the evaluated split")
    ax.set_title("Threshold sweep (dashed: the value used, chosen without this split's GT)", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def colorize(mask: np.ndarray) -> np.ndarray:
    palette = np.array(VOC_PALETTE, dtype=np.uint8).reshape(256, 3)
    return palette[mask]


def qualitative_grid(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> Path:
    """rows: [(image id, [(column title, RGB array), ...]), ...]."""
    ncols = max(len(cols) for _, cols in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.6 * ncols, 1.6 * len(rows)), squeeze=False)
    for r, (image_id, cols) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(cols):
                title, arr = cols[c]
                ax.imshow(arr, interpolation="nearest")
                if r == 0:
                    ax.set_title(title, fontsize=7)
        axes[r][0].text(-0.05, 0.5, image_id, transform=axes[r][0].transAxes, rotation=90, fontsize=6,
                        va="center", ha="right")
    return _save(fig, path)


def training_curves(logs: dict[str, Path], path: Path, keys=("total", "seeding", "boundary", "aux")) -> Path:
    """logs: run name -> JSONL training log with an 'it' field and loss terms."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for name, log in sorted(logs.items()):
        records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
        if not records:
            continue
        its = [r.get("it", i) for i, r in enumerate(records)]
        for ax, key in zip(axes[0], keys):
            vals = [r.get(key, r.get(f"loss_{key}", np.nan)) for r in records]
            ax.plot(its, vals, lw=1, label=name)
    for ax, key in zip(axes[0], keys):
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    axes[0][0].legend(fontsize=6)
    return _save(fig, path)


def grouped_bars(frame: pd.DataFrame, x: str, group: str, value: str, path: Path, title: str, ylabel: str,
                 log: bool = False) -> Path:
    """One group of bars per value of `x`, one bar per value of `group`."""
    pivot = frame.pivot_table(index=x, columns=group, values=value, aggfunc="mean")
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(pivot)), 3.5))
    pivot.plot.bar(ax=ax, rot=20, logy=log)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def bars_with_target(labels: pd.Series, values: pd.Series, target: float, path: Path, title: str, ylabel: str,
                     target_label: str) -> Path:
    """One bar per label with its value written on it, and a dashed line at the target."""
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(values)), 3.8))
    x = np.arange(len(values))
    bars = ax.bar(x, values.to_numpy(), color=["#2b6cb0" if v <= target else "#a0aec0" for v in values])
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(target, color="#c53030", linestyle="--", linewidth=1, label=f"{target_label}: {target:g}")
    ax.set_xticks(x, labels.tolist(), fontsize=6, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)
