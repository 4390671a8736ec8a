"""The report's tables: result rows grouped, formatted and pivoted for REPORT.md and results/tables/."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import plots
from .compare import fmt


def seed_summary(rows: pd.DataFrame, stage: str, metric: str, split: str | None = None) -> pd.DataFrame:
    sel = rows[(rows["stage"] == stage) & (rows["metric"] == metric)]
    if split is not None:
        sel = sel[sel["split"] == split]
    if sel.empty:
        return pd.DataFrame(columns=["profile", "method", "mean", "std", "n"])
    grp = sel.groupby(["profile", "method"])["value"]
    return grp.agg(mean="mean", std="std", n="count").reset_index()


def md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def methods_table(rows: pd.DataFrame) -> pd.DataFrame:
    pseudo = seed_summary(rows, "pseudo_mask", "miou")
    cov = seed_summary(rows, "pseudo_mask", "coverage")
    final = seed_summary(rows, "final", "miou")
    out = []
    for _, r in pseudo.iterrows():
        c = cov[(cov["method"] == r["method"]) & (cov["profile"] == r["profile"])]
        f = final[(final["method"] == r["method"]) & (final["profile"] == r["profile"])]
        out.append({"profile": r["profile"], "method": r["method"],
                    "pseudo-mask mIoU (%)": fmt(r["mean"], r["std"], r["n"]),
                    "coverage (%)": fmt(c["mean"].iloc[0]) if len(c) else "—",
                    "final mIoU (%)": fmt(f["mean"].iloc[0], f["std"].iloc[0], f["n"].iloc[0]) if len(f) else "—",
                    "run seeds": int(r["n"]), "_sort": r["mean"]})
    frame = pd.DataFrame(out)
    return frame.sort_values("_sort", ascending=False).drop(columns="_sort") if len(frame) else frame


def per_class(rows: pd.DataFrame, stage: str = "pseudo_mask") -> pd.DataFrame:
    sel = rows[(rows["stage"] == stage) & rows["metric"].str.startswith("iou:")]
    if sel.empty:
        return pd.DataFrame()
    sel = sel.assign(cls=sel["metric"].str[4:])
    order = list(dict.fromkeys(sel["cls"]))
    # reindex: a class that never occurs in the scored images (all NaN) keeps its column, empty
    return sel.pivot_table(index="method", columns="cls", values="value", aggfunc="mean").reindex(columns=order)


def pretrain_table(rows: pd.DataFrame, stage: str = "pretrain_clip") -> pd.DataFrame:
    """A pre-training stage's numbers: its held-out evaluation, then the training run itself."""
    sel = rows[rows["stage"] == stage]
    if sel.empty:
        return sel
    out = sel.assign(value=sel["value"].map(lambda v: f"{v:.4g}"))
    return out[["profile", "metric", "value", "split"]]


def parameter_table(rows: pd.DataFrame) -> pd.DataFrame:
    sel = rows[rows["stage"] == "model"]
    if sel.empty:
        return sel
    cols = [c for c in ("profile", "method", "arch") if c in sel.columns]
    wide = sel.pivot_table(index=cols, columns="metric", values="value", aggfunc="first").reset_index()
    for c in ("params_trainable", "params_total"):
        if c in wide:
            wide[c] = wide[c].map(lambda v: f"{v / 1e6:.2f} M")
    if "params_share" in wide:
        wide["params_share"] = wide["params_share"].map(lambda v: f"{v:.1%}")
    return wide.rename(columns={"params_trainable": "trainable", "params_total": "total",
                                "params_share": "trained share"})


def environment_table(rows: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("source_file", "profile", "git_sha", "git_dirty", "device", "torch") if c in rows.columns]
    return rows[cols].drop_duplicates().sort_values(cols[:2]) if cols else pd.DataFrame()


# The GPU target: the VOC schedule (20k iterations x batch 16 at 512^2) within 30 minutes on one H100.
GPU_TARGET_MINUTES = 30.0


def perf_table(rows: pd.DataFrame) -> pd.DataFrame:
    sel = rows[rows["stage"] == "profile"] if "stage" in rows else pd.DataFrame()
    if sel.empty:
        return sel
    keep = [c for c in ("profile", "method", "metric", "value", "unit", "config", "impl", "precision",
                        "crf_backend", "device") if c in sel.columns]
    out = sel[keep].copy()
    out["value"] = out["value"].map(lambda v: f"{v:.4g}")
    return out


def gpu_target_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The VOC-shape training step of each GPU configuration against the 30-minute schedule target."""
    if not {"stage", "device_type", "config"} <= set(rows.columns):
        return pd.DataFrame()
    sel = rows[(rows["stage"] == "profile") & (rows["device_type"] == "cuda") & (rows["profile"] == "voc")
               & rows["metric"].isin(["train_images_per_s", "voc_schedule_minutes", "peak_mem_mb"])]
    if sel.empty:
        return pd.DataFrame()
    wide = sel.pivot_table(index=["device", "config", "git_sha"], columns="metric", values="value", sort=False)
    wide = wide.reset_index()
    return pd.DataFrame({
        "device": wide["device"], "configuration": wide["config"],
        "train img/s": wide["train_images_per_s"].map(lambda v: f"{v:.1f}"),
        "VOC schedule (min)": wide["voc_schedule_minutes"].map(lambda v: f"{v:.1f}"),
        "peak memory (MiB)": wide["peak_mem_mb"].map(lambda v: f"{v:.0f}"),
        f"within {GPU_TARGET_MINUTES:.0f} min": wide["voc_schedule_minutes"].map(
            lambda v: "yes" if v <= GPU_TARGET_MINUTES else "no"),
        "commit": wide["git_sha"].astype(str).str[:7],
    })


def kernel_table(results: Path) -> pd.DataFrame:
    frames = [pd.read_csv(f) for f in sorted((results / "perf").rglob("kernel*.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def kernel_summary_md(kern: pd.DataFrame, figs: Path, results: Path) -> str:
    """The kernel benchmark's long rows as a p50 table plus a chart (columns vary by writer; be lenient)."""
    if "p50" not in kern.columns:
        return md_table(kern.head(40))
    keys = [c for c in ("device", "shape", "dtype", "mode", "timing", "provider") if c in kern.columns]
    ms = kern[kern["metric"].astype(str).isin(["time", "ms"])] if "metric" in kern.columns else kern
    if {"timing", "device"} <= set(ms.columns):  # GPU rows are timed twice: keep the CUDA-graph device time
        gpu = ms["device"].astype(str).str.startswith("cuda")
        ms = ms[~gpu | (ms["timing"].astype(str) == "cuda_graph")]
    table = ms[keys + ["p20", "p50", "p80"]].drop_duplicates()
    table = table.assign(**{c: table[c].map(lambda v: f"{v:.4g}") for c in ("p20", "p50", "p80")})
    text = ("Milliseconds per call (p20/p50/p80). GPU rows come from `results/perf/gpu/` "
            "(measured on the device named; `cuda_graph` = device time of a captured graph, without "
            "Python launch overhead).\n\n" + md_table(table))
    table = table.assign(p50=table["p50"].astype(float))
    if {"shape", "provider", "p50"} <= set(table.columns):
        label = table["shape"].astype(str) + " " + table.get("mode", "").astype(str) + " " + table.get("dtype", "").astype(str)
        chart = plots.grouped_bars(table.assign(case=label), "case", "provider", "p50", figs / "kernel_bench.png",
                                   "Co-attention: p50 time per provider", "ms (log)", log=True)
        text += f"\n![kernel]({chart.relative_to(results)})\n"
    return text
