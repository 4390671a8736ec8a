"""Our numbers beside the published ones: a published number meets ours only when what decides it matches.

The key (bench/paper.py): dataset, split, stage, seed source, CAA on the seeds, refiner. Our result rows carry
the same columns (bench/stages/methods.py `describe`, bench/stages/splits.py `scored_row_fields`). A published
row with no match stays "not run" and says why; numbers from the synthetic profiles, or voc-mini, never meet a
published number (their dataset is not VOC or COCO) and are shown in tables of their own.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .paper import ablation_published, published

KEY = ["seeds", "caa", "refiner"]


def fmt(mean, std=None, n=None, pct=True) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "—"
    scale = 100.0 if pct else 1.0
    text = f"{mean * scale:.1f}"
    if std is not None and n is not None and n > 1 and not np.isnan(std):
        text += f" ± {std * scale:.1f}"
    return text


def dataset_family(name) -> str:
    """'voc', 'coco' (coco81 / coco91) or the name itself (synthetic, voc-mini: never a published dataset)."""
    name = str(name)
    return "coco" if name.startswith("coco") else name


def keyed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """mIoU rows that carry a comparison key, with `caa` as a bool and the dataset family."""
    if rows.empty or not set(KEY) <= set(rows.columns):
        return pd.DataFrame(columns=list(rows.columns) + ["family"])
    sel = rows[(rows["metric"] == "miou") & rows["seeds"].notna()].copy()
    sel["caa"] = sel["caa"].astype(str).str.lower().isin(["true", "1", "1.0"])
    sel["family"] = sel["dataset"].map(dataset_family)
    return sel


def _why_not(p: pd.Series, ours: pd.DataFrame) -> str:
    """Why a published row has no match among our rows of its dataset."""
    same = ours[(ours["family"] == p["dataset"]) & (ours["stage"] == p["stage"]) & (ours["refiner"] == p["refiner"])]
    if same.empty:
        return "this method is not in our run"
    if p["split"] not in set(same["split"]):
        return f"ours on {', '.join(sorted(set(same['split'].astype(str))))} only"
    seeds = sorted(set(same.loc[same["split"] == p["split"], "seeds"].astype(str)))
    return f"ours starts from {', '.join(seeds)} seeds (CAA {'on' if same['caa'].any() else 'off'}), not these"


def paper_vs_ours(rows: pd.DataFrame, table: str) -> pd.DataFrame:
    """Each published row of `table` beside our runs with the same key, dataset and split."""
    pub = published()
    pub = pub[pub["table"] == table]
    ours = keyed_rows(rows)
    out = []
    for _, p in pub.iterrows():
        hits = ours[(ours["family"] == p["dataset"]) & (ours["split"] == p["split"]) & (ours["stage"] == p["stage"])
                    & (ours["seeds"] == p["seeds"]) & (ours["caa"] == p["caa"]) & (ours["refiner"] == p["refiner"])]
        base = {"method": p["label"], "seeds": f"{p['seeds']}{' + CAA' if p['caa'] else ''}",
                "refiner": p["refiner"], "split": p["split"], "published (%)": f"{p['value'] * 100:.1f}"}
        if hits.empty:
            note = "; ".join(filter(None, [p["caveat"], _why_not(p, ours)]))
            out.append({**base, "ours (%)": "not run", "difference (points)": "—", "ours from": "—", "note": note})
            continue
        for (profile, method), h in hits.groupby(["profile", "method"]):
            mean, std, n = h["value"].mean(), h["value"].std(), len(h)
            out.append({**base, "ours (%)": fmt(mean, std, n), "difference (points)": f"{(mean - p['value']) * 100:+.1f}",
                        "ours from": f"`{method}` ({profile})", "note": p["caveat"]})
    return pd.DataFrame(out)


def ablation_table(rows: pd.DataFrame, published_numbers: bool) -> pd.DataFrame:
    """The ablation ladder step by step with each step's gain over the one before, one block per profile.

    The paper scores each step by final VOC val mIoU; we score it by pseudo-mask mIoU (stage 3 is not rerun per
    step), so the comparable quantity is a component's gain. published_numbers: add the paper's columns (VOC
    rows only). The last step ("full") is the paper-fidelity model trained by train_weakclip."""
    steps = ablation_published()
    sel = rows[(rows.get("stage") == "pseudo_mask") & (rows.get("metric") == "miou")] if len(rows) else rows
    if sel.empty:
        return pd.DataFrame()
    sel = sel.assign(step=sel["method"].map(lambda m: "full" if m == "weakclip[paper]"
                                            else m[len("weakclip["):-1] if str(m).startswith("weakclip[abl_") else None))
    sel = sel[sel["step"].notna()]
    out = []
    for profile, prof_rows in sel.groupby("profile"):
        if not (prof_rows["step"] != "full").any():
            continue  # no ablation run on this profile: nothing to compare
        prev_pub = prev_ours = None
        for _, p in steps.iterrows():
            hit = prof_rows[prof_rows["step"] == p["step"]]["value"]
            mean = float(hit.mean()) if len(hit) else None
            row = {"step": p["label"], "profile": profile,
                   "ours: pseudo-mask mIoU (%)": fmt(mean, hit.std(), len(hit)) if len(hit) else "not run",
                   "our gain (points)": _gain(mean, prev_ours)}
            if published_numbers:
                row = {**row, "published val mIoU (%)": f"{p['value'] * 100:.1f}",
                       "published gain (points)": _gain(p["value"], prev_pub)}
            out.append(row)
            prev_pub, prev_ours = p["value"], mean
    return pd.DataFrame(out)


def _gain(now: float | None, before: float | None) -> str:
    return f"{(now - before) * 100:+.1f}" if now is not None and before is not None else "—"
