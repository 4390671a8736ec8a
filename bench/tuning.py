"""The tuning studies (results/tuning/<study>.csv, written by bench/tune.py) as the report's tables."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def tuning_tables(results: Path) -> list[tuple[str, pd.DataFrame, str]]:
    """[(study, table, one line: split, rule, commit)] for every study CSV, candidates in the order run."""
    out = []
    for path in sorted((results / "tuning").glob("*.csv")):
        rows = pd.read_csv(path)
        score = rows["score"].iloc[0]
        table = pd.DataFrame({"candidate": rows["candidate"],
                              f"dev {score} (%)": [f"{m * 100:.1f} ± {s * 100:.1f}" for m, s in
                                                   zip(rows[f"{score} mean"], rows[f"{score} std"])],
                              "CPU s of its stages": rows["own_cost_s"].map("{:.0f}".format),
                              "chosen": rows["chosen"].map({True: "**yes**", False: ""})})
        for col in rows.columns:  # the other numbers the study reports beside its score
            if col.endswith(" mean") and not col.startswith(score):
                label = col.removesuffix(" mean")
                table[f"dev {label}"] = [f"{m * 100:.1f}" if "miou" in label else f"{m:.3f}" for m in rows[col]]
        note = (f"Profile `{rows['profile'].iloc[0]}`, scored on {rows['split'].iloc[0]}, "
                f"{int(rows[f'{score} n'].iloc[0])} run seeds; rule: "
                f"{rows['rule'].iloc[0]}; commit `{str(rows['git_sha'].iloc[0])[:7]}`, {rows['device'].iloc[0]}.")
        out.append((path.stem, table, note))
    return out
