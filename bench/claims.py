"""The paper's orderings measured on our numbers: the report's claims table and `bench.check`'s ordering gates.

For each WeakCLIP variant m (ablation steps aside) on one profile:
  seeds     m's pseudo masks score above the seeds m was trained on;
  refiners  m's pseudo masks score above the best training-free refiner on the same seeds;
  stage3    stage 3 trained on m's masks scores above stage 3 trained on the seeds.
A claim's margin is mean(m) - mean(other) over run seeds. Its noise is the standard error of that difference of
means, sqrt(s_m^2 / n_m + s_o^2 / n_o) (a deterministic method has s = 0), and its tolerance
max(NOISE_MULTIPLE x noise, FLOOR). A claim whose margin exceeds its tolerance is *established*: bench.check fails
when a claim established in the reference no longer holds (margin <= 0) in the current run, whatever the
tolerance of each number on its own. A claim within its tolerance is reported, never gated: it could flip by chance.
"""
from __future__ import annotations

import math

import pandas as pd

TRAINING_FREE_REFINERS = ("threshold", "crf", "caa", "par")
NOISE_MULTIPLE = 3.0
FLOOR = 0.005  # half a point of mIoU: below it a margin means nothing, however small the run-seed spread


def _summary(rows: pd.DataFrame, stage: str) -> pd.DataFrame:
    sel = rows[(rows["stage"] == stage) & (rows["metric"] == "miou")]
    if sel.empty:
        return pd.DataFrame(columns=["profile", "method", "mean", "std", "n"])
    grp = sel.groupby(["profile", "method"])["value"]
    out = grp.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def _claim(profile, cid, text, stage, a: pd.Series, b: pd.Series) -> dict:
    margin = float(a["mean"] - b["mean"])
    noise = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    tolerance = max(NOISE_MULTIPLE * noise, FLOOR)
    return {"profile": profile, "claim": cid, "text": text, "stage": stage, "method": a["method"],
            "other": b["method"], "mean": float(a["mean"]), "other_mean": float(b["mean"]), "margin": margin,
            "noise": noise, "tolerance": tolerance, "holds": margin > 0, "established": margin > tolerance}


def claims(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (profile, claim) with its margin, noise, tolerance and whether it holds / is established."""
    if rows.empty:
        return pd.DataFrame()
    pseudo, final = _summary(rows, "pseudo_mask"), _summary(rows, "final")
    out = []
    for profile, pp in pseudo.groupby("profile"):
        pp = pp.set_index("method", drop=False)
        ff = final[final["profile"] == profile].set_index("method", drop=False)
        # the main seeds: the ones stage 3 trained on, else the only seed source scored
        seeds = [m for m in ff.index if m.startswith("seeds:")] or [m for m in pp.index if m.startswith("seeds:")]
        if len(seeds) != 1:
            continue
        seed = seeds[0]
        free = pp[pp.index.isin(TRAINING_FREE_REFINERS)]
        best_free = free["mean"].idxmax() if len(free) else None
        # the variants themselves: not an ablation step, not a deviation from the profile's recipe
        for m in sorted(k for k in pp.index if k.startswith("weakclip[") and "abl_" not in k and "/" not in k):
            out.append(_claim(profile, f"{m} > seeds", f"`{m}` pseudo masks above the seeds it was trained on",
                              "pseudo_mask", pp.loc[m], pp.loc[seed]))
            if best_free is not None:
                out.append(_claim(profile, f"{m} > training-free refiners",
                                  f"`{m}` pseudo masks above every training-free refiner", "pseudo_mask",
                                  pp.loc[m], pp.loc[best_free]))
            if m in ff.index and seed in ff.index:
                out.append(_claim(profile, f"stage 3: {m} > seeds",
                                  f"stage 3 on `{m}` masks above stage 3 on the seeds", "final",
                                  ff.loc[m], ff.loc[seed]))
    return pd.DataFrame(out)


def claims_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The report's per-profile claims: ours, the other, the margin with its tolerance, holds?"""
    table = claims(rows)
    if table.empty:
        return table
    return pd.DataFrame({
        "profile": table["profile"], "claim": table["text"], "ours (%)": (table["mean"] * 100).map("{:.1f}".format),
        "compared with (%)": [f"{v * 100:.1f} ({o})" for v, o in zip(table["other_mean"], table["other"])],
        "margin (points)": (table["margin"] * 100).map("{:+.1f}".format),
        "tolerance (points)": (table["tolerance"] * 100).map("{:.1f}".format),
        "holds": [("yes" if e else "yes, within noise") if h else "**no**"
                  for h, e in zip(table["holds"], table["established"])]})


def claims_across_profiles(rows: pd.DataFrame) -> pd.DataFrame:
    """Each claim over every profile that measured it (e.g. two generated datasets): the smallest margin, its
    tolerance, and 'holds' only when it holds on every one of them ('within noise' where any margin is inside its
    tolerance)."""
    table = claims(rows)
    if table.empty or table["profile"].nunique() < 2:
        return pd.DataFrame()
    out = []
    for cid, group in table.groupby("claim", sort=False):
        worst = group.loc[group["margin"].idxmin()]
        out.append({"claim": worst["text"], "profiles": ", ".join(group["profile"]),
                    "margins (points)": ", ".join(f"{m * 100:+.1f}" for m in group["margin"]),
                    "smallest margin (points)": f"{worst['margin'] * 100:+.1f} ({worst['profile']})",
                    "its tolerance (points)": f"{worst['tolerance'] * 100:.1f}",
                    "holds on every profile": _holds_everywhere(group)})
    return pd.DataFrame(out)


def _holds_everywhere(group: pd.DataFrame) -> str:
    """'**no**' if any profile's margin is negative, else 'yes', naming the profiles whose margin is within noise."""
    if not group["holds"].all():
        return "**no**"
    noisy = group.loc[~group["established"], "profile"]
    return "yes" if noisy.empty else "yes, within noise on " + ", ".join(noisy)
