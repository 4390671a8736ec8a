"""The tuning harness's pure parts: candidates never touch the reported splits, and the choice rule."""
import json

import pandas as pd
import pytest

from bench import tune


def test_every_candidate_runs_on_the_tuning_splits_only():
    for name, study in tune.STUDIES.items():
        profile = "ci" if name.startswith("ci_") else "synthetic"
        for overrides in study.candidates.values():
            params = tune.candidate_params(profile, overrides)
            data = params["data"]
            assert (data["fit_split"], data["score_split"], data["val_split"]) == ("dev", "dev", "dev_val")
            assert params["clip"]["pretrain"]["eval_split"] == "dev_val"
            assert params["segnet"]["pretrain"]["eval_split"] == "dev_val"
            assert data["synthetic"]["dev"] > 0 and data["synthetic"]["dev_val"] > 0


def test_each_study_starts_from_the_profiles_own_value():
    for name, study in tune.STUDIES.items():
        profile = "ci" if name.startswith("ci_") else "synthetic"
        first = next(iter(study.candidates.values()))
        base = tune.candidate_params(profile, {})
        assert tune.candidate_params(profile, first) == base, name


def test_a_misspelt_section_is_an_error():
    with pytest.raises(KeyError, match="no section 'weakclipp'"):
        tune.candidate_params("synthetic", {"weakclipp.train.lr": 0.1})


def _rows(means, stds, costs):
    label = "m miou"
    return pd.DataFrame({f"{label} mean": means, f"{label} std": stds, "own_cost_s": costs}), label


def test_the_cheapest_candidate_within_noise_of_the_best_is_chosen():
    rows, label = _rows([0.60, 0.598, 0.55], [0.004, 0.004, 0.004], [300.0, 200.0, 100.0])
    assert list(tune.choose(rows, label)) == [False, True, False]  # 0.598 is within 0.5 point; 0.55 is not
    rows, label = _rows([0.60, 0.59, 0.55], [0.02, 0.01, 0.01], [300.0, 200.0, 100.0])
    assert list(tune.choose(rows, label)) == [False, True, False]  # tie = the best's std, 2 points
    rows, label = _rows([0.60, 0.59], [0.001, 0.001], [300.0, 200.0])
    assert list(tune.choose(rows, label)) == [True, False]  # a point worse: the best, however costly


def test_own_cost_prices_the_changed_stages_of_every_candidate_even_when_up_to_date():
    # the first candidate re-ran the upstream too (prepare); the second re-ran train and eval; the third re-ran
    # nothing (an earlier study left its stages up to date): it is priced from the timing files it found
    seconds = pd.Series([json.dumps({"prepare": 10, "train": 100, "eval": 5}),
                         json.dumps({"prepare": 10, "train": 50, "eval": 5}),
                         json.dumps({"prepare": 10, "train": 80, "eval": 4})])
    reran = pd.Series([json.dumps(["prepare", "train", "eval"]), json.dumps(["train", "eval"]), "[]"])
    assert tune.own_costs(seconds.map(json.loads), reran.map(json.loads)) == [115.0, 65.0, 94.0]
    # a stage some candidate changed but another has no timing for cannot be priced: NaN, never 0
    seconds = pd.Series([json.dumps({"train": 100}), json.dumps({})])
    costs = tune.own_costs(seconds.map(json.loads), pd.Series([["train"], []]))
    assert costs[0] == 100.0 and costs[1] != costs[1]


@pytest.mark.parametrize("profile, written", [("synthetic", "threshold.csv"), ("ci", "ci_threshold.csv")])
def test_the_threshold_study_is_filed_under_its_profile_and_rendered_with_it(tmp_path, profile, written):
    from bench.tune import threshold_study
    from bench.tuning import tuning_tables

    work, results = tmp_path / "work", tmp_path / "results"
    (work / "results" / "metrics").mkdir(parents=True)
    pd.DataFrame({"threshold": [0.2, 0.3, 0.4], "value": [0.40, 0.45, 0.41], "method": "seeds:cam",
                  "split": "dev", "profile": profile, "git_sha": "abc1234", "device": "cpu:x"}).to_csv(
        work / "results" / "metrics" / "threshold_sweep.csv", index=False)
    frame = threshold_study(work, results / "tuning")
    assert sorted(p.name for p in (results / "tuning").iterdir()) == [written]
    assert frame.loc[frame["chosen"], "candidate"].tolist() == ["bg_threshold 0.3"]
    (study, _, note), = tuning_tables(results)
    assert study == written.removesuffix(".csv") and f"Profile `{profile}`" in note
