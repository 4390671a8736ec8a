"""Build results/REPORT.md, results/tables/ and results/plots/ from the files in results/ only.

    python -m bench.report [--results results]

Every table row says which profile produced it; the paper's numbers stand next to ours with the
difference, and the environment (git revision, device) behind the numbers closes the report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from weakclip.io import write_text

from . import plots
from .paper import PAPER_TRAINABLE_SHARE, published
from .provenance import REPO_ROOT
from .timing import run_summary, stage_timings, summary_md, timing_table

# Our method name -> the published row it reproduces (bench.paper keys).
PAPER_KEY = {
    "seeds:cam": "cam", "seeds:clip_es": "clip_es", "caa": "caa", "crf": "crf", "random_walk": "random_walk",
    "weakclip[release]": "weakclip", "weakclip[paper]": "weakclip",
    "weakclip[abl_matching]": "abl_matching", "weakclip[abl_prompt]": "abl_prompt",
    "weakclip[abl_adapter]": "abl_adapter",
}
# The ablation table's last step ("full") is the paper-fidelity model trained by train_weakclip
# (params weakclip.ablation_fidelity = paper), not a separate ablation run.
ABLATION_KEY = {**PAPER_KEY, "weakclip[paper]": "full"}


def load_rows(results: Path) -> pd.DataFrame:
    files = sorted((results / "metrics").glob("*.csv")) + sorted((results / "perf").rglob("*.csv"))
    frames = []
    for f in files:
        frame = pd.read_csv(f)
        if {"profile", "metric", "value"} <= set(frame.columns):
            frames.append(frame.assign(source_file=str(f.relative_to(results))))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def seed_summary(rows: pd.DataFrame, stage: str, metric: str, split: str | None = None) -> pd.DataFrame:
    sel = rows[(rows["stage"] == stage) & (rows["metric"] == metric)]
    if split is not None:
        sel = sel[sel["split"] == split]
    if sel.empty:
        return pd.DataFrame(columns=["profile", "method", "mean", "std", "n"])
    grp = sel.groupby(["profile", "method"])["value"]
    return grp.agg(mean="mean", std="std", n="count").reset_index()


def fmt(mean, std=None, n=None, pct=True) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "—"
    scale = 100.0 if pct else 1.0
    text = f"{mean * scale:.1f}"
    if std is not None and n is not None and n > 1 and not np.isnan(std):
        text += f" ± {std * scale:.1f}"
    return text


def md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


# The dataset whose published numbers a row is set against: COCO rows against the COCO table, every
# other profile (voc, and the synthetic stand-ins for it) against VOC's.
def on_dataset(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    if "dataset" not in rows.columns:
        return rows.iloc[:0] if dataset == "coco" else rows
    is_coco = rows["dataset"].astype(str) == "coco"
    return rows[is_coco] if dataset == "coco" else rows[~is_coco]


# Where our number for a published metric lives: seeds and refined masks are both scored as pseudo masks.
STAGE_OF_PUBLISHED = {"seed_miou": "pseudo_mask", "pseudo_miou": "pseudo_mask", "final_miou": "final"}


def paper_vs_ours(rows: pd.DataFrame, table: str, dataset: str = "voc", keys: dict[str, str] = PAPER_KEY) -> pd.DataFrame:
    """Each published row of `table` beside our runs of the same method on the same split and dataset.

    A published number on a split we do not score (VOC test: evaluation server only) stays 'not run'
    with a note, rather than being set against our number on another split."""
    pub = published()
    pub = pub[pub["table"] == table]
    rows = on_dataset(rows, dataset)
    published_col = f"published ({dataset.upper()}, %)"
    out = []
    for _, p in pub.iterrows():
        matches = [m for m, key in keys.items() if key == p["method"]]
        stage = STAGE_OF_PUBLISHED[p["metric"]]
        ours = seed_summary(rows, stage, "miou", p["split"])
        hits = ours[ours["method"].isin(matches)]
        if hits.empty:
            elsewhere = rows[(rows["stage"] == stage) & (rows["metric"] == "miou") & rows["method"].isin(matches)]
            other_splits = sorted(set(elsewhere["split"].astype(str)))
            note = "; ".join(filter(None, [p["caveat"], f"ours on {', '.join(other_splits)} only" if other_splits else ""]))
            out.append({"method": p["label"], published_col: f"{p['value'] * 100:.1f}",
                        "split": p["split"], "ours (%)": "not run", "difference (points)": "—",
                        "profile": "—", "note": note})
        for _, h in hits.iterrows():
            diff = (h["mean"] - p["value"]) * 100
            out.append({"method": f"{p['label']} ← `{h['method']}`", published_col: f"{p['value'] * 100:.1f}",
                        "split": p["split"], "ours (%)": fmt(h["mean"], h["std"], h["n"]),
                        "difference (points)": f"{diff:+.1f}", "profile": h["profile"], "note": p["caveat"]})
    return pd.DataFrame(out)


def ablation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The paper's ablation ladder beside ours, step by step, with each step's gain over the one before.

    The paper scores each step by final VOC val mIoU; we score it by pseudo-mask mIoU on the train split
    (stage 3 is not rerun per step). The two are different metrics, so the comparable quantity is the
    gain of each component, not the difference between the values."""
    pub = published()
    pub = pub[pub["table"] == "ablation_voc"]
    ours = seed_summary(on_dataset(rows, "voc"), "pseudo_mask", "miou", "train")
    ours = ours.assign(step=ours["method"].map(ABLATION_KEY))
    ours = ours[ours["step"].isin(set(pub["method"]))]
    profiles = sorted(ours["profile"].unique()) or [None]

    def gain(now: float | None, before: float | None) -> str:
        return f"{(now - before) * 100:+.1f}" if now is not None and before is not None else "—"

    out = []
    for profile in profiles:
        prev_pub = prev_ours = None
        for _, p in pub.iterrows():
            hit = ours[(ours["profile"] == profile) & (ours["step"] == p["method"])]
            mean = float(hit["mean"].iloc[0]) if len(hit) else None
            out.append({"step": p["label"], "published val mIoU (VOC, %)": f"{p['value'] * 100:.1f}",
                        "published gain (points)": gain(p["value"], prev_pub),
                        "ours: pseudo-mask mIoU, train (%)":
                            fmt(mean, hit["std"].iloc[0], hit["n"].iloc[0]) if len(hit) else "not run",
                        "our gain (points)": gain(mean, prev_ours),
                        "ours from": f"`{hit['method'].iloc[0]}`" if len(hit) else "—",
                        "profile": profile or "—"})
            prev_pub, prev_ours = p["value"], mean
    return pd.DataFrame(out)


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
    return sel.pivot_table(index="method", columns="cls", values="value", aggfunc="mean")[order]


# Refiners that need no training (baselines.REFINERS minus baselines.TRAINERS; named here so the report
# stage does not import the baselines).
TRAINING_FREE_REFINERS = ("threshold", "crf", "caa", "par")


def claims_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The paper's orderings checked on each profile's numbers (means over run seeds): does each hold?"""
    pseudo, final = seed_summary(rows, "pseudo_mask", "miou"), seed_summary(rows, "final", "miou")
    out = []
    for profile, pp in pseudo.groupby("profile"):
        mean = dict(zip(pp["method"], pp["mean"]))
        ff = final[final["profile"] == profile]
        fmean = dict(zip(ff["method"], ff["mean"]))
        # The main seeds: the ones stage 3 trained on, else the only seed source scored.
        seeds = [m for m in fmean if m.startswith("seeds:")] or [m for m in mean if m.startswith("seeds:")]
        if len(seeds) != 1:
            continue
        seed = seeds[0]
        free = {m: v for m, v in mean.items() if m in TRAINING_FREE_REFINERS}
        best_free = max(free, key=free.get) if free else None
        for m in sorted(k for k in mean if k.startswith("weakclip[") and "abl_" not in k):
            def claim(text, ours, theirs, other, profile=profile):
                out.append({"profile": profile, "claim": text, "ours (%)": f"{ours * 100:.1f}",
                            "compared with (%)": f"{theirs * 100:.1f} ({other})",
                            "holds": "yes" if ours > theirs else "**no**"})
            claim(f"`{m}` pseudo masks above the seeds it was trained on", mean[m], mean[seed], seed)
            if best_free:
                claim(f"`{m}` pseudo masks above every training-free refiner", mean[m], free[best_free], best_free)
            if m in fmean and seed in fmean:
                claim(f"stage 3 on `{m}` masks above stage 3 on the seeds", fmean[m], fmean[seed], seed)
    return pd.DataFrame(out)


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


def profile_scopes(rows: pd.DataFrame) -> str:
    """'synthetic, voc (throughput and parameter counts only)': each profile, and what it contributed when
    that is not a segmentation result (the GPU rows carry the voc profile without any VOC mIoU)."""
    scopes = []
    for profile, stages in rows.groupby("profile")["stage"]:
        names = set(stages.astype(str))
        if names & {"pseudo_mask", "final"}:
            scopes.append(str(profile))
        else:
            kinds = [k for s, k in (("profile", "throughput"), ("model", "parameter counts")) if s in names]
            kinds += sorted(names - {"profile", "model"})
            scopes.append(f"{profile} ({' and '.join(kinds)} only, no mIoU)")
    return ", ".join(scopes)


def build(results: Path) -> Path:
    rows = load_rows(results)
    tables, figs = results / "tables", results / "plots"
    sections = ["# WeakCLIP reproducibility report\n",
                ("Generated by `python -m bench.report` (the `report` stage of `dvc repro`) from the files in "
                 "`results/`; do not edit by hand. mIoU values are percentages of one confusion matrix over the "
                 "whole split (255 in ground truth ignored; classes that never occur excluded).\n")]
    profiles = sorted(rows["profile"].dropna().unique()) if len(rows) else []
    if any(p != "voc" and p != "coco" for p in profiles):
        sections.append(f"> **Profiles in this report: {profile_scopes(rows)}.** Numbers from the `synthetic` or "
                        "`ci` profiles come from generated images and a tiny CLIP pre-trained here; they test the "
                        "pipeline and the *ordering* of methods, and are **not** VOC or COCO numbers. The "
                        "'difference' columns against the paper are only meaningful for the `voc`/`coco` profiles.\n")

    def emit(title: str, frame: pd.DataFrame, name: str, intro: str = ""):
        if len(frame):
            write_text(tables / f"{name}.csv", frame.to_csv(index=False))
        sections.append(f"## {title}\n\n{intro}{md_table(frame)}")

    if len(rows):
        emit("Paper vs ours: pseudo masks (VOC train)", paper_vs_ours(rows, "pseudo_voc"),
             "paper_pseudo_masks")
        emit("Paper vs ours: final segmentation (VOC val)", paper_vs_ours(rows, "final_voc"),
             "paper_final", "Only splits we score are compared; VOC test is scored by its evaluation server.\n\n")
        emit("Paper vs ours: WeakCLIP ablation", ablation_table(rows), "paper_ablation",
             "Published: final VOC val mIoU after each step. Ours: pseudo-mask mIoU on the profile's train "
             "split after the same step (stage 3 is not rerun per step). The metrics differ, so compare the "
             "gains, not the values. Steps marked 'not run' are off in this profile's params; "
             "`dvc exp run -S 'weakclip.ablation=[matching,prompt,adapter]'` runs them.\n\n")
        emit("Paper vs ours: COCO 2014", paper_vs_ours(rows, "coco", dataset="coco"), "paper_coco", "From the `coco` profile only (label space as in each paper).\n\n")
        emit("The paper's claims on our numbers", claims_table(rows), "claims",
             "WeakCLIP's central claim is that its pseudo masks beat the seeds it refines, and the paper's "
             "tables order it above the training-free refiners and its stage-3 model above one trained on "
             "seeds. Each line compares means over run seeds on one profile.\n\n")
        methods = methods_table(rows)
        emit("All methods on the same seeds", methods, "methods",
             "Every refiner and WeakCLIP start from the same seed masks; mean ± std over run seeds where a "
             "method is trained (training-free methods are deterministic). Coverage = share of scored pixels "
             "the method labels (not 255).\n\n")
        summary = seed_summary(rows, "pseudo_mask", "miou")
        if len(summary):
            sections.append(f"![methods]({plots.method_bars(summary, figs / 'methods_pseudo_miou.png', 'Pseudo-mask mIoU on the same seeds').relative_to(results)})\n")
        final = seed_summary(rows, "final", "miou")
        if len(final):
            sections.append(f"![final]({plots.method_bars(final, figs / 'methods_final_miou.png', 'Stage-3 val mIoU by training masks').relative_to(results)})\n")
        pc = per_class(rows)
        if len(pc):
            write_text(tables / "per_class_iou.csv", pc.to_csv())
            sections.append("## Per-class IoU (pseudo masks)\n\nFull table: `tables/per_class_iou.csv`.\n\n"
                            f"![per-class]({plots.class_heatmap(pc, figs / 'per_class_iou.png', 'Per-class IoU of pseudo masks').relative_to(results)})\n")
        sweep = rows[rows["stage"] == "threshold_sweep"]
        if len(sweep):
            chosen = {m: g["chosen_threshold"].iloc[0] for m, g in sweep.groupby("method")
                      if "chosen_threshold" in g}
            sections.append("## Threshold sweeps\n\nThe sweep is reported for transparency; the threshold used "
                            "is fixed in params (chosen without the evaluated split's ground truth).\n\n"
                            f"![sweep]({plots.threshold_sweep(sweep, figs / 'threshold_sweep.png', chosen).relative_to(results)})\n")
        clip = pretrain_table(rows)
        if len(clip):
            emit("Tiny CLIP pre-training (synthetic profile)", clip, "pretrain_clip",
                 "Zero-shot classification of the synthetic val images by the CLIP pre-trained in the "
                 "`pretrain_clip` stage, against chance computed the same way; then the training run itself.\n\n")
        backbone = pretrain_table(rows, "pretrain_backbone")
        if len(backbone):
            emit("Stage-3 backbone pre-training (synthetic profile)", backbone, "pretrain_backbone",
                 "The synthetic profile's stand-in for ImageNet weights: the stage-3 backbone trained as a "
                 "multi-label classifier on the pretrain split (disjoint from train and val) in the "
                 "`pretrain_backbone` stage. Classification mAP of the val images' labels against chance "
                 "computed the same way; then the training run itself.\n\n")
        counts = parameter_table(rows)
        if len(counts):
            emit("WeakCLIP trainable parameters", counts, "parameters",
                 f"The paper reports {PAPER_TRAINABLE_SHARE:.1%} of parameters trained (ViT-B/16, the paper's "
                 "decoder widths). The frozen CLIP towers count in the total.\n\n")
    qual = results / "figures" / "qualitative.png"
    if qual.is_file():
        sections.append(f"## Qualitative grid\n\n![qualitative]({qual.relative_to(results)})\n")
    curves = []
    for prefix, keys in (("weakclip", ("total", "seeding", "boundary", "aux")), ("segnet", ("loss",))):
        logs = {f"{p.parent.name}/{p.stem}": p for p in sorted((results / "logs").glob(f"{prefix}-*/*.jsonl"))
                if not p.parent.name.endswith(".partial")}  # a stage's logs before it publishes them
        if logs:
            png = plots.training_curves(logs, figs / f"training_curves_{prefix}.png", keys)
            curves.append(f"![{prefix} curves]({png.relative_to(results)})\n")
    if curves:
        sections.append("## Training curves\n\n" + "\n".join(curves))
    perf = perf_table(rows) if len(rows) else pd.DataFrame()
    emit("Throughput (profile stage)", perf, "throughput", "Measured on the device named in each row; GPU rows "
         "appear only when measured on a GPU, never estimated.\n\n")
    gpu = gpu_target_table(rows) if len(rows) else pd.DataFrame()
    if len(gpu):
        chart = plots.bars_with_target(
            gpu["configuration"] + "\n" + gpu["device"].str.replace("cuda:", "", regex=False),
            gpu["VOC schedule (min)"].astype(float), GPU_TARGET_MINUTES, figs / "gpu_schedule.png",
            "VOC schedule (20k x 16 at 512²), one GPU", "minutes", "target (one H100)")
        emit("GPU target: the VOC schedule within 30 minutes", gpu, "gpu_target",
             "From `bash bench/gpu_session.sh` (`python -m bench.stages.profile --voc-gpu`) on the lent GPU "
             "machine, random CLIP weights at the VOC recipe's shape (ViT-B/16, batch 16, 512² crops, "
             "p50 of 20 timed steps after 5 warm-up steps); each configuration adds one change to the "
             "one above it. The target is set for one H100; an H200 has the same arithmetic rates and "
             f"about 1.4x its memory bandwidth.\n\n![GPU schedule]({chart.relative_to(results)})\n\n")
    kern = kernel_table(results)
    if len(kern):
        sections.append("## Co-attention kernel benchmark\n\n" + kernel_summary_md(kern, figs, results))
    timings = stage_timings(results)
    emit("Time per stage", timing_table(timings), "stage_times", summary_md(run_summary(timings), timings))
    if len(rows):
        emit("Environment behind every number", environment_table(rows), "environment")
    out = results / "REPORT.md"
    write_text(out, "\n".join(sections))
    return out


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default=str(REPO_ROOT / "results"))
    args = ap.parse_args(argv)
    out = build(Path(args.results))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
