"""Where the pipeline's time went: the stage timing files (results/timing/<stage>.json) as tables.

Each stage records (bench.stages.common.run_stage) its wall time, the CPU time it and its worker processes
used, how long its process took to start (interpreter and imports), and when it began and ended. From those:

- per stage: wall, CPU, cores kept busy (CPU / wall: 2.0 is both cores of a 2-core host), start-up;
- per run: the wall time from the first stage's process start to the last stage's end, the part of it spent
  inside the stages, and the rest (DVC's own work between stages and each process's start-up). The run is
  only summed when the timing files come from one contiguous `dvc repro` (one commit, no gap longer than
  MAX_GAP_S); a partly re-run pipeline mixes runs, and its stage times are shown without a total.

Only the timing files of the profile that ran last are read: a profile that lacks some stage (voc-mini has no
`deviation` stages) leaves the git-tracked timing files of another profile's run in results/timing/, and
those are not part of its run. The summary names the files it left out.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .provenance import device_label

MAX_GAP_S = 120.0  # longer than any pause DVC makes between two stages of one `dvc repro`


def stage_timings(results: Path) -> pd.DataFrame:
    """One row per timing file, in the order the stages ran."""
    rows = []
    for f in sorted((results / "timing").glob("*.json")):
        t = json.loads(f.read_text())
        env = t["environment"]
        startup = t.get("startup_seconds")
        rows.append({"stage": t["stage"], "profile": t["profile"], "seconds": t["seconds"],
                     "cpu_seconds": t.get("cpu_seconds"), "startup_seconds": startup,
                     "started_at": t.get("started_at"), "ended_at": t.get("ended_at"),
                     "device": device_label(env["device"]), "cores": env["device"].get("cores"),
                     "native_bf16": env["device"].get("native_bf16"),
                     "commit": str(env["git"].get("sha") or "")[:7], "timestamp": env.get("timestamp")})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = frame["started_at"].fillna(float("inf")) if "started_at" in frame else frame.index
    frame = frame.assign(_order=order).sort_values(["_order", "timestamp"]).drop(columns="_order")
    latest = frame["profile"].iloc[frame["ended_at"].fillna(-1.0).to_numpy().argmax()]
    other = frame["profile"] != latest
    kept = frame[~other].reset_index(drop=True)
    kept.attrs["left_out"] = [f"{s} ({p})" for s, p in zip(frame.loc[other, "stage"], frame.loc[other, "profile"])]
    return kept


def one_run(timings: pd.DataFrame) -> bool:
    """True when every stage comes from one contiguous pipeline run (see the module docstring)."""
    if timings.empty or timings["started_at"].isna().any() or timings["commit"].nunique() != 1:
        return False
    starts = timings["started_at"] - timings["startup_seconds"].fillna(0)
    gaps = starts.to_numpy()[1:] - timings["ended_at"].to_numpy()[:-1]
    return bool((gaps < MAX_GAP_S).all())


def run_summary(timings: pd.DataFrame) -> dict | None:
    """{host, stages_s, wall_s, outside_s, cpu_s, commit} of one contiguous run, else None. wall_s runs from
    the first stage's process start to the last stage's end (the report and check stages, which follow, take
    a few seconds and are not timed)."""
    if not one_run(timings):
        return None
    first_start = float(timings["started_at"].iloc[0] - (timings["startup_seconds"].iloc[0] or 0))
    wall = float(timings["ended_at"].max() - first_start)
    stages = float(timings["seconds"].sum())
    return {"host": timings["device"].iloc[0], "cores": timings["cores"].iloc[0],
            "native_bf16": timings["native_bf16"].iloc[0], "commit": timings["commit"].iloc[0],
            "stages_s": stages, "wall_s": wall, "outside_s": wall - stages,
            "cpu_s": float(timings["cpu_seconds"].sum()), "date": str(timings["timestamp"].iloc[-1])[:10]}


def timing_table(timings: pd.DataFrame) -> pd.DataFrame:
    """The report's per-stage table: wall, CPU, cores busy, the process's start-up, and the time between the
    previous stage's end and this stage's process start (DVC hashing, caching and deciding what to run)."""
    if timings.empty:
        return timings
    starts = timings["started_at"] - timings["startup_seconds"].fillna(0)
    before = (starts - timings["ended_at"].shift(1)).where(lambda g: (g >= 0) & (g < MAX_GAP_S))

    def num(v, digits=1):
        return "—" if v is None or pd.isna(v) else f"{v:.{digits}f}"

    table = pd.DataFrame({
        "stage": timings["stage"], "wall (s)": timings["seconds"].map(num),
        "CPU (s)": timings["cpu_seconds"].map(num),
        "cores busy": (timings["cpu_seconds"] / timings["seconds"]).map(lambda v: num(v, 2)),
        "process start-up (s)": timings["startup_seconds"].map(num),
        "DVC before it (s)": before.map(num),
        "device": timings["device"], "commit": timings["commit"]})
    total = {"stage": "**total**", "wall (s)": num(timings["seconds"].sum()),
             "CPU (s)": num(timings["cpu_seconds"].sum()), "cores busy": "",
             "process start-up (s)": num(timings["startup_seconds"].sum()),
             "DVC before it (s)": num(before.sum()), "device": "",
             "commit": ""}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def summary_md(summary: dict | None, timings: pd.DataFrame) -> str:
    """One paragraph naming the host and the run's wall time, or why there is no total."""
    left_out = timings.attrs.get("left_out") or []
    note = (f"Left out: the timing files of another profile's run ({', '.join(left_out)}), stages the profile "
            "that ran last does not have.\n\n" if left_out else "")
    if summary is None:
        commits = ", ".join(sorted(set(timings["commit"]))) if len(timings) else "none"
        return ("The stage times below come from more than one run (commits: "
                f"{commits}), so they have no pipeline total.\n\n" + note)
    bf16 = "with" if summary["native_bf16"] else "without"
    return note + (f"**Run that produced these results:** host `{summary['host']}` ({summary['cores']} cores, "
            f"{bf16} native bf16), commit `{summary['commit']}`, {summary['date']}. Wall time from the first "
            f"stage's start to the last stage's end: **{summary['wall_s']:.0f} s ({summary['wall_s'] / 60:.1f} "
            f"min)**, of which {summary['stages_s']:.0f} s inside the stages and {summary['outside_s']:.0f} s "
            f"outside them (DVC between stages, and each stage process starting Python and importing its "
            f"modules); {summary['cpu_s']:.0f} CPU-seconds in all.\n\n")
