"""Regression gate: compare the current results with the committed reference numbers.

    python -m bench.check                      # exits 1 with a table when a gated number regresses
    python -m bench.check --update-reference   # re-derive results/reference/<profile>.csv from results/

Gates come from params.yaml `check.gates`: each names a stage, a metric and a tolerance.
  kind "abs":   higher-is-better numbers (mIoU, mAP) may drop by at most `tolerance` (absolute);
  kind "ratio": speeds may fall to at most `tolerance` x the reference (e.g. 0.5 = half as fast);
  kind "floor": the number may not fall below `tolerance` itself, whatever the reference holds (a limit that
               means the same on every host, e.g. no configuration below half the speed of fp32);
  `better: lower` flips the direction (milliseconds, memory);
  `scope: device`: the number depends on the machine (an absolute speed, a latency, memory). It is gated only
  against a reference measured on the same device (the `device` column: CPU model and vector ISA, or GPU
  name); from any other device it is printed as "other device: not gated" and passes. Numbers without the
  scope (mIoU, mAP, the speed of one configuration relative to another measured in the same run) mean the
  same on every host and are gated everywhere.
The reference file holds the numbers; the tolerances are always the params' current ones. A number is
one (stage, method, split, metric, config) averaged over run seeds, so each step configuration of the
profile stage (release-faithful, bf16, ...) is gated on its own. `--update-reference` rewrites the rows this
run can speak for (every portable number, and this device's device-bound numbers) and keeps the
device-bound rows of other devices, so one file can hold the speeds of several hosts side by side.

A gated number that is missing from the current results is a failure, never a pass. So is a gate that
cannot fail: "abs" numbers are scores (mIoU, mAP) that never go below 0, so a reference within
`tolerance` of 0 would pass anything; the reference leaves such numbers out (and says so), and a
reference row holding one fails the check. A gated number the reference does not hold yet (a method or
ablation step added since) is listed as `new` and passes; `--update-reference` pins it. A profile with
`check.require_reference: false` (voc, coco: their numbers are yours to pin) passes without a file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from weakclip.core.io import atomic_path

from .claims import claims
from .params import get, load_params
from .provenance import REPO_ROOT, environment

RESULTS = REPO_ROOT / "results"
KEY = ["stage", "method", "split", "metric", "config"]
OTHER_DEVICE = "other device: not gated"
PASSING = ("ok", "new", "not gated", OTHER_DEVICE)
SCORE_FLOOR = 0.0  # the lowest value an "abs" (score) number can take


def result_rows(results_dir: Path, profile: str) -> pd.DataFrame:
    """Every result row (one per run seed) of the profile in results/metrics and results/perf."""
    files = sorted((results_dir / "metrics").glob("*.csv")) + sorted((results_dir / "perf").glob("*.csv"))
    frames = [pd.read_csv(f) for f in files]
    if not frames:
        return pd.DataFrame(columns=KEY + ["profile", "device", "value"])
    rows = pd.concat(frames, ignore_index=True)
    return rows[(rows["profile"] == profile) & rows["value"].notna()]


def current_numbers(results_dir: Path, profile: str) -> pd.DataFrame:
    """One row per KEY and device: the mean over run seeds, with the device that measured it."""
    rows = result_rows(results_dir, profile)
    if rows.empty:
        return pd.DataFrame(columns=KEY + ["device", "value"])
    return with_blank_keys(rows).groupby(KEY + ["device"], as_index=False)["value"].mean()


def with_blank_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Key columns (and `device`) as strings, '' where a row has none (metrics rows have no step configuration)."""
    def blank(column: pd.Series) -> pd.Series:
        return column.astype(object).where(column.notna(), "").astype(str)

    return frame.assign(**{k: blank(frame[k]) if k in frame.columns else "" for k in KEY + ["device"]
                           if k not in ("stage", "metric")})


def device_bound(gate: dict | None) -> bool:
    """True for a gate on a number that depends on the machine (gated only against the same device)."""
    if gate is None:
        return False
    scope = gate.get("scope", "any")
    if scope not in ("any", "device"):
        raise ValueError(f"check gate scope must be 'any' or 'device', got {scope!r} ({gate})")
    return scope == "device"


def gate_for(row, gates: list[dict]) -> dict | None:
    """The first gate naming this row's stage and metric (and its method, when the gate lists methods)."""
    for gate in gates:
        if gate["stage"] == row["stage"] and gate["metric"] == row["metric"] and (
                "methods" not in gate or row["method"] in gate["methods"]):
            return gate
    return None


def bound_of(ref: float, kind: str, tolerance: float, higher: bool) -> float:
    """The worst value that still passes."""
    if kind == "abs":
        return ref - tolerance if higher else ref + tolerance
    if kind == "ratio":
        return ref * tolerance if higher else ref / tolerance
    if kind == "floor":
        return tolerance
    raise ValueError(f"check gate kind must be 'abs', 'ratio' or 'floor', got {kind!r}")


def cannot_fail(ref: float, kind: str, tolerance: float, higher: bool) -> bool:
    return kind == "abs" and higher and bound_of(ref, kind, tolerance, higher) <= SCORE_FLOOR


REFERENCE_COLUMNS = KEY + ["device", "scope", "value", "kind", "tolerance", "better", "git_sha"]
CLAIM = "claim"  # the stage of the reference's ordering rows (bench/claims.py)


def claim_rows(claims: pd.DataFrame) -> pd.DataFrame:
    """The paper's orderings as reference rows: margin and its own tolerance (from the run-seed spread)."""
    if claims.empty:
        return pd.DataFrame(columns=REFERENCE_COLUMNS[:-1])
    return pd.DataFrame({"stage": CLAIM, "method": claims["claim"], "split": "", "metric": "margin", "config": "",
                         "device": "", "scope": "any", "value": claims["margin"], "kind": "order",
                         "tolerance": claims["tolerance"], "better": "higher"})


def compare_claims(reference: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """An ordering established in the reference (margin beyond its tolerance) must still hold (margin > 0).
    A reference margin within its tolerance could flip by chance: reported, not gated."""
    ref = reference[reference["stage"] == CLAIM].set_index("method")
    now = claims.set_index("claim")["margin"] if len(claims) else pd.Series(dtype=float)
    rows = []
    for cid in list(ref.index) + [c for c in now.index if c not in ref.index]:
        value_ref = float(ref.loc[cid, "value"]) if cid in ref.index else float("nan")
        tolerance = float(ref.loc[cid, "tolerance"]) if cid in ref.index else float("nan")
        value_now = float(now[cid]) if cid in now.index else float("nan")
        if cid not in ref.index:
            status = "new"
        elif value_ref <= tolerance:
            status = "not gated"  # within noise (or not holding) in the reference: no ordering to keep
        elif pd.isna(value_now):
            status = "MISSING"
        else:
            status = "ok" if value_now > 0 else "REGRESSED"
        rows.append({"stage": CLAIM, "method": cid, "split": "", "metric": "margin", "config": "", "device": "",
                     "value_ref": value_ref, "value_now": value_now, "bound": 0.0, "kind": "order",
                     "tolerance": tolerance, "status": status})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def updated_reference(old: pd.DataFrame | None, current: pd.DataFrame, gates: list[dict], sha: str | None,
                      claims: pd.DataFrame | None = None) -> pd.DataFrame:
    """The reference after `--update-reference`: this run's gated numbers and orderings (commit `sha`), plus
    the device-bound rows the old reference holds for other devices, with their own commits (a second host's
    speeds sit beside the first's)."""
    new = pd.concat([gated(current, gates), claim_rows(claims if claims is not None else pd.DataFrame())],
                    ignore_index=True).assign(git_sha=sha)
    if old is None or old.empty or "scope" not in old:
        return new
    keep = old[(old["scope"] == "device") & ~old["device"].isin(set(current["device"]))]
    return pd.concat([keep.reindex(columns=REFERENCE_COLUMNS), new], ignore_index=True).sort_values(
        KEY + ["device"], ignore_index=True)


def gated(numbers: pd.DataFrame, gates: list[dict]) -> pd.DataFrame:
    """The reference rows: every gated number except those no value could fail (printed)."""
    out = []
    for _, row in numbers.iterrows():
        gate = gate_for(row, gates)
        if gate is None:
            continue
        higher = gate.get("better", "higher") == "higher"
        if cannot_fail(row["value"], gate["kind"], gate["tolerance"], higher):
            print(f"not gated: {row['stage']} {row['method']} {row['metric']} = {row['value']:.4g} is within "
                  f"the tolerance {gate['tolerance']} of {SCORE_FLOOR}, so no value could fail it")
            continue
        out.append({**{k: row[k] for k in KEY}, "device": row["device"],
                    "scope": "device" if device_bound(gate) else "any", "value": row["value"],
                    "kind": gate["kind"], "tolerance": gate["tolerance"], "better": gate.get("better", "higher")})
    return pd.DataFrame(out, columns=REFERENCE_COLUMNS[:-1])


def compare(reference: pd.DataFrame, current: pd.DataFrame, gates: list[dict]) -> pd.DataFrame:
    """One row per reference number this run can be held to, and per gated current number the reference
    lacks, with the current value, the allowed bound under the params' gate and a status.

    A device-bound number is matched with the reference row of its own device. From a device the reference
    has no row for it is OTHER_DEVICE (printed, passing); the reference rows of devices that did not run
    here are not this run's business (another host's speeds cannot be missing here)."""
    ref = reference.assign(match=reference["device"].where(reference["scope"] == "device", ""))
    now = current.assign(scope=["device" if device_bound(gate_for(r, gates)) else "any" for _, r in current.iterrows()])
    now = now.assign(match=now["device"].where(now["scope"] == "device", ""))
    now = now.groupby(KEY + ["match"], as_index=False).agg(value=("value", "mean"), device=("device", "first"))
    ref = ref[(ref["scope"] != "device") | ref["device"].isin(set(now["device"]))]
    measured_elsewhere = set(map(tuple, reference.loc[reference["scope"] == "device", KEY].to_numpy()))
    merged = ref[KEY + ["match", "value"]].merge(now[KEY + ["match", "device", "value"]], on=KEY + ["match"],
                                                 how="outer", suffixes=("_ref", "_now"), indicator=True)
    rows = []
    for _, r in merged.iterrows():
        gate = gate_for(r, gates)
        value_ref, value_now = r["value_ref"], r["value_now"]
        out = {**{k: r[k] for k in KEY}, "device": r["device"] if isinstance(r["device"], str) else r["match"],
               "value_ref": value_ref, "value_now": value_now, "bound": float("nan"),
               "kind": gate["kind"] if gate else "", "tolerance": gate["tolerance"] if gate else float("nan")}
        if gate is None:
            if r["_merge"] == "right_only":
                continue  # an ungated current number: not the check's business
            rows.append({**out, "status": "not gated"})  # the params dropped this number's gate
            continue
        if r["_merge"] == "right_only":
            elsewhere = r["match"] != "" and tuple(r[k] for k in KEY) in measured_elsewhere
            rows.append({**out, "status": OTHER_DEVICE if elsewhere else "new"})
            continue
        higher = gate.get("better", "higher") == "higher"
        out["bound"] = bound_of(value_ref, gate["kind"], gate["tolerance"], higher)
        if cannot_fail(value_ref, gate["kind"], gate["tolerance"], higher):
            status = "CANNOT FAIL"
        elif pd.isna(value_now):
            status = "MISSING"
        elif (value_now < out["bound"]) if higher else (value_now > out["bound"]):
            status = "REGRESSED"
        else:
            status = "ok"
        rows.append({**out, "status": status})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


TABLE_COLUMNS = KEY + ["device", "value_ref", "value_now", "bound", "kind", "tolerance", "status"]


def format_table(table: pd.DataFrame) -> str:
    return table[TABLE_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}")


SPREAD_MULTIPLE = 3.0  # tolerance = SPREAD_MULTIPLE standard errors of the run-seed mean, at least the floor


def suggested_tolerances(rows: pd.DataFrame, floor: float, stages=("pseudo_mask", "final")) -> list[str]:
    """A params gate per trained method, its tolerance from the measured run-seed spread: max(3 standard errors
    of the mean over run seeds, floor), with the numbers it came from in a comment. Methods with one value have
    no spread to measure and get no line: the profile's general gate covers them."""
    lines = []
    sel = rows[rows["stage"].isin(stages) & (rows["metric"] == "miou")]
    for (stage, method), g in sel.groupby(["stage", "method"]):
        n = len(g)
        if n < 2:
            continue
        std = float(g["value"].std())
        tolerance = max(SPREAD_MULTIPLE * std / n ** 0.5, floor)
        lines.append(f'- {{stage: {stage}, metric: miou, methods: ["{method}"], kind: abs, '
                     f'tolerance: {tolerance:.3f}}}   # run-seed std {std * 100:.2f} points over {n} seeds')
    return lines


def read_reference(path: Path, gates: list[dict]) -> pd.DataFrame:
    """A reference CSV. A file written before device scopes existed takes each row's scope from the current
    gates; its device-bound rows name no device, so no run can match them (they are another machine's)."""
    reference = with_blank_keys(pd.read_csv(path, keep_default_na=False, na_values=[""]))
    if "scope" not in reference:
        reference["scope"] = ["device" if device_bound(gate_for(r, gates)) else "any"
                              for _, r in reference.iterrows()]
    return reference


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=None, help="params file (default: params.yaml)")
    ap.add_argument("--results", default=str(RESULTS), help="results folder (default: results/)")
    ap.add_argument("--reference", default=None, help="reference CSV (default: results/reference/<profile>.csv)")
    ap.add_argument("--update-reference", action="store_true", help="write the reference from current results")
    ap.add_argument("--out", default=None, help="also write the comparison table to this CSV")
    ap.add_argument("--suggest-tolerances", type=float, metavar="FLOOR", default=None,
                    help="print per-method mIoU gates with tolerances from the run-seed spread (at least FLOOR)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    profile = params["profile"]
    results = Path(args.results)
    ref_path = Path(args.reference) if args.reference else results / "reference" / f"{profile}.csv"
    gates = get(params, "check.gates")
    current = current_numbers(results, profile)
    orderings = claims(result_rows(results, profile)) if get(params, "check.claims", True) else pd.DataFrame()

    if args.suggest_tolerances is not None:
        print("\n".join(suggested_tolerances(result_rows(results, profile), args.suggest_tolerances)))
        return 0
    old = read_reference(ref_path, gates) if ref_path.is_file() else None
    if args.update_reference:
        reference = updated_reference(old, current, gates, environment()["git"]["sha"], orderings)
        if reference.empty:
            print(f"no gated numbers for profile {profile!r} in {results}; run the pipeline first", file=sys.stderr)
            return 2
        with atomic_path(ref_path, suffix=".csv") as tmp:
            reference.to_csv(tmp, index=False)
        print(f"wrote {len(reference)} reference numbers to {ref_path}")
        return 0

    if old is not None:
        reference = old
    elif get(params, "check.require_reference", True):
        print(f"no reference file {ref_path}; create it with `python -m bench.check --update-reference`",
              file=sys.stderr)
        return 2
    else:
        print(f"no reference file {ref_path} (check.require_reference is false): every gated number is new")
        reference = pd.DataFrame(columns=REFERENCE_COLUMNS)
    table = pd.concat([compare(reference[reference["stage"] != CLAIM], current, gates),
                       compare_claims(reference, orderings)], ignore_index=True)
    if args.out:
        with atomic_path(args.out, suffix=".csv") as tmp:
            table.to_csv(tmp, index=False)
    print(f"profile {profile}: {len(table)} gated numbers against {ref_path}")
    print(format_table(table))
    elsewhere = table[table["status"] == OTHER_DEVICE]
    if len(elsewhere):
        theirs = sorted({str(d) if isinstance(d, str) and d else "a device the reference does not name"
                         for d in reference.loc[reference["scope"] == "device", "device"]})
        print(f"\n{len(elsewhere)} device-bound number(s) measured on {', '.join(sorted(set(elsewhere['device'])))}: "
              f"the reference holds them for {', '.join(theirs)} only, so they are printed, not gated. "
              "`python -m bench.check --update-reference` adds this device's rows beside them.")
    bad = table[~table["status"].isin(PASSING)]
    if len(bad):
        print(f"\nFAIL: {len(bad)} gated number(s) regressed, missing or ungateable", file=sys.stderr)
        return 1
    print("\nOK: no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
