"""The report's claim table: each of the paper's orderings is checked, and a failing one says so."""
import pandas as pd

from bench.report import claims_table


def _rows(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (stage, method), vals in values.items():
        for seed, v in enumerate(vals):
            rows.append({"profile": "synthetic", "stage": stage, "method": method, "metric": "miou",
                         "split": "train" if stage == "pseudo_mask" else "val", "seed": seed, "value": v})
    return pd.DataFrame(rows)


def test_claims_hold_and_fail_on_the_means():
    rows = _rows({
        ("pseudo_mask", "seeds:cam"): [0.40],
        ("pseudo_mask", "crf"): [0.50],
        ("pseudo_mask", "random_walk"): [0.90],  # trained: not a training-free refiner
        ("pseudo_mask", "weakclip[release]"): [0.44, 0.46],
        ("pseudo_mask", "weakclip[abl_matching]"): [0.1],  # ablation steps are not claims
        ("final", "seeds:cam"): [0.30, 0.32],
        ("final", "weakclip[release]"): [0.20, 0.22],
    })
    table = claims_table(rows)
    assert len(table) == 3
    holds = dict(zip(table["claim"], table["holds"]))
    assert holds["`weakclip[release]` pseudo masks above the seeds it was trained on"] == "yes"
    assert holds["`weakclip[release]` pseudo masks above every training-free refiner"] == "**no**"
    assert holds["stage 3 on `weakclip[release]` masks above stage 3 on the seeds"] == "**no**"
    assert table["compared with (%)"].iloc[1] == "50.0 (crf)"
    assert table["ours (%)"].iloc[0] == "45.0"  # mean over the two run seeds


def test_claims_without_stage_3_use_the_only_seed_source():
    rows = _rows({
        ("pseudo_mask", "seeds:clip_es"): [0.30],
        ("pseudo_mask", "weakclip[release]"): [0.35],
    })
    table = claims_table(rows)
    assert list(table["compared with (%)"]) == ["30.0 (seeds:clip_es)"]
    assert list(table["holds"]) == ["yes"]


def test_claims_skip_a_profile_whose_main_seeds_are_ambiguous():
    rows = _rows({
        ("pseudo_mask", "seeds:cam"): [0.30],
        ("pseudo_mask", "seeds:clip_es"): [0.20],
        ("pseudo_mask", "weakclip[release]"): [0.35],
    })
    assert claims_table(rows).empty
