"""The regression gate passes on unchanged numbers and fails on a planted regression or a missing number."""
import pandas as pd
import pytest
import yaml

from bench import check
from bench.results import make_row, write_rows

GATES = [
    {"stage": "pseudo_mask", "metric": "miou", "kind": "abs", "tolerance": 0.02},
    {"stage": "profile", "metric": "train_images_per_s", "kind": "ratio", "tolerance": 0.5},
    {"stage": "profile", "metric": "peak_mem_mb", "kind": "ratio", "tolerance": 0.8, "better": "lower"},
]


def _write(results, miou_by_seed, speed, mem):
    rows = [make_row("unit", "synthetic", "weakclip", "pseudo_mask", "train", "miou", v, seed=s)
            for s, v in enumerate(miou_by_seed)]
    write_rows(results / "metrics" / "pseudo.csv", rows)
    write_rows(results / "perf" / "throughput.csv", [
        make_row("unit", "synthetic", "weakclip", "profile", "", "train_images_per_s", speed, unit="img/s"),
        make_row("unit", "synthetic", "weakclip", "profile", "", "peak_mem_mb", mem, unit="MB"),
        make_row("other", "synthetic", "weakclip", "profile", "", "train_images_per_s", 1.0, unit="img/s"),
    ])


@pytest.fixture
def setup(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "unit", "check": {"gates": GATES}}))
    results = tmp_path / "results"
    _write(results, [0.50, 0.52, 0.54], speed=100.0, mem=1000.0)
    args = ["--params", str(params), "--results", str(results)]
    assert check.main(args + ["--update-reference"]) == 0
    return results, args


def test_reference_holds_seed_means_of_gated_numbers_only(setup):
    results, _ = setup
    ref = pd.read_csv(results / "reference" / "unit.csv")
    assert set(ref["metric"]) == {"miou", "train_images_per_s", "peak_mem_mb"}
    assert ref.loc[ref["metric"] == "miou", "value"].item() == pytest.approx(0.52)
    # the other profile's row never enters this profile's reference
    assert ref.loc[ref["metric"] == "train_images_per_s", "value"].item() == 100.0


def test_unchanged_numbers_pass(setup, capsys):
    _, args = setup
    assert check.main(args) == 0
    assert "OK: no regression" in capsys.readouterr().out


def test_small_drop_within_tolerance_passes(setup):
    results, args = setup
    _write(results, [0.50, 0.51, 0.52], speed=60.0, mem=1200.0)
    assert check.main(args) == 0


@pytest.mark.parametrize("miou,speed,mem,regressed", [
    ([0.40, 0.42, 0.44], 100.0, 1000.0, "miou"),
    ([0.50, 0.52, 0.54], 40.0, 1000.0, "train_images_per_s"),
    ([0.50, 0.52, 0.54], 100.0, 1400.0, "peak_mem_mb"),
])
def test_planted_regression_fails_with_a_table(setup, capsys, miou, speed, mem, regressed):
    results, args = setup
    _write(results, miou, speed=speed, mem=mem)
    assert check.main(args) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if regressed in ln)
    assert "REGRESSED" in line


def test_missing_number_fails(setup, capsys):
    results, args = setup
    (results / "perf" / "throughput.csv").unlink()
    assert check.main(args) == 1
    assert "MISSING" in capsys.readouterr().out


def test_no_reference_is_an_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "unit", "check": {"gates": GATES}}))
    assert check.main(["--params", str(params), "--results", str(tmp_path / "nothing")]) == 2


def test_a_number_within_tolerance_of_zero_is_left_out_of_the_reference(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "unit", "check": {"gates": GATES}}))
    results = tmp_path / "results"
    _write(results, [0.01, 0.015, 0.02], speed=100.0, mem=1000.0)  # mean 0.015 < tolerance 0.02
    args = ["--params", str(params), "--results", str(results)]
    assert check.main(args + ["--update-reference"]) == 0
    assert "not gated: pseudo_mask weakclip miou" in capsys.readouterr().out
    ref = pd.read_csv(results / "reference" / "unit.csv")
    assert "miou" not in set(ref["metric"])


def test_a_reference_row_that_cannot_fail_fails_the_check(setup, capsys):
    results, args = setup
    ref_path = results / "reference" / "unit.csv"
    ref = pd.read_csv(ref_path)
    ref.loc[ref["metric"] == "miou", "value"] = 0.01  # bound 0.01 - 0.02 < 0: any mIoU would pass
    ref.to_csv(ref_path, index=False)
    assert check.main(args) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "miou" in ln)
    assert "CANNOT FAIL" in line


def _params(path, gates=GATES, **check_extra):
    path.write_text(yaml.safe_dump({"profile": "unit", "check": {"gates": gates, **check_extra}}))


def test_tolerances_come_from_the_params_not_the_reference_file(setup):
    results, args = setup
    _write(results, [0.46, 0.48, 0.50], speed=100.0, mem=1000.0)  # mean 0.48: 0.04 below the reference
    assert check.main(args) == 1  # gate tolerance 0.02
    loose = [dict(g, tolerance=0.05) if g["metric"] == "miou" else g for g in GATES]
    _params(results.parent / "params.yaml", loose)
    assert check.main(args) == 0  # same reference file, the params' wider tolerance


def test_each_step_configuration_is_gated_on_its_own(tmp_path, capsys):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params)
    args = ["--params", str(params), "--results", str(results)]

    def write(fast_speed):
        write_rows(results / "perf" / "throughput.csv", [
            make_row("unit", "synthetic", "weakclip", "profile", "", "train_images_per_s", 100.0, config="faithful"),
            make_row("unit", "synthetic", "weakclip", "profile", "", "train_images_per_s", fast_speed, config="fast"),
        ])

    write(200.0)
    assert check.main(args + ["--update-reference"]) == 0
    assert set(pd.read_csv(results / "reference" / "unit.csv")["config"]) == {"faithful", "fast"}
    write(90.0)  # the mean over both (95) would pass a 0.5 ratio of 150; the fast rung alone does not
    assert check.main(args) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if " fast " in ln)
    assert "REGRESSED" in line


def test_a_number_added_since_the_reference_is_new_and_passes(setup, capsys):
    results, args = setup
    write_rows(results / "metrics" / "ablation.csv", [
        make_row("unit", "synthetic", "weakclip[abl_matching]", "pseudo_mask", "train", "miou", 0.3, seed=0)])
    assert check.main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "abl_matching" in ln)
    assert line.rstrip().endswith("new")


def test_a_profile_may_run_without_a_reference_when_its_params_say_so(tmp_path, capsys):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _write(results, [0.5], speed=100.0, mem=1000.0)
    _params(params, require_reference=False)
    assert check.main(["--params", str(params), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "every gated number is new" in out and "REGRESSED" not in out


# Absolute speeds depend on the machine: gated only against a reference from the same device.
DEVICE_GATES = [
    {"stage": "pseudo_mask", "metric": "miou", "kind": "abs", "tolerance": 0.02},
    {"stage": "profile", "metric": "train_images_per_s", "kind": "ratio", "tolerance": 0.5, "scope": "device"},
    {"stage": "profile", "metric": "train_speed_vs_release_faithful", "kind": "floor", "tolerance": 0.5},
]


def _write_speeds(results, speed, ratio, miou=0.5):
    write_rows(results / "metrics" / "pseudo.csv", [
        make_row("unit", "synthetic", "weakclip", "pseudo_mask", "train", "miou", miou, seed=0)])
    write_rows(results / "perf" / "throughput.csv", [
        make_row("unit", "synthetic", "weakclip", "profile", "", "train_images_per_s", speed, config="bf16"),
        make_row("unit", "synthetic", "weakclip", "profile", "", "train_speed_vs_release_faithful", ratio,
                 config="bf16")])


@pytest.fixture
def other_host_reference(tmp_path):
    """A reference whose speed was measured on another CPU (60 img/s there), made by --update-reference."""
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params, DEVICE_GATES)
    args = ["--params", str(params), "--results", str(results)]
    _write_speeds(results, speed=60.0, ratio=1.0)
    assert check.main(args + ["--update-reference"]) == 0
    ref_path = results / "reference" / "unit.csv"
    ref = pd.read_csv(ref_path)
    assert ref.set_index("metric")["scope"].to_dict() == {
        "miou": "any", "train_images_per_s": "device", "train_speed_vs_release_faithful": "any"}
    ref.loc[ref["scope"] == "device", "device"] = "cpu:Other CPU (AVX2)"
    ref.to_csv(ref_path, index=False)
    return results, args


def test_a_speed_from_another_device_is_printed_not_gated(other_host_reference, capsys):
    results, args = other_host_reference
    _write_speeds(results, speed=8.0, ratio=1.0)  # 7x slower than the other host's reference: not comparable
    assert check.main(args) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "train_images_per_s" in ln)
    assert "other device: not gated" in line and "8" in line
    assert "the reference holds them for cpu:Other CPU (AVX2) only" in out
    assert "OK: no regression" in out


def test_a_portable_ratio_is_gated_on_every_device(other_host_reference, capsys):
    results, args = other_host_reference
    _write_speeds(results, speed=60.0, ratio=0.2)  # bf16 5x slower than fp32, side by side: fails anywhere
    assert check.main(args) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "train_speed_vs" in ln)
    assert "REGRESSED" in line


def test_a_floor_gate_ignores_the_reference_value(other_host_reference, capsys):
    results, args = other_host_reference  # the reference ratio is 1.0 (bf16 fell back to fp32 there)
    _write_speeds(results, speed=60.0, ratio=0.74)  # native bf16 a quarter slower (an AMX host): above 0.5
    assert check.main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "train_speed_vs" in ln)
    assert line.split()[-1] == "ok" and "0.5" in line
    _write_speeds(results, speed=60.0, ratio=0.45)  # under half the speed of fp32: fails, whatever the host
    assert check.main(args) == 1


def test_a_slowdown_on_the_reference_device_still_fails(tmp_path, capsys):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params, DEVICE_GATES)
    args = ["--params", str(params), "--results", str(results)]
    _write_speeds(results, speed=60.0, ratio=1.0)
    assert check.main(args + ["--update-reference"]) == 0
    _write_speeds(results, speed=20.0, ratio=1.0)  # same host, a third of the speed
    assert check.main(args) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "train_images_per_s" in ln)
    assert "REGRESSED" in line


def test_update_reference_adds_this_device_beside_the_other(other_host_reference):
    results, args = other_host_reference
    _write_speeds(results, speed=30.0, ratio=1.0)
    assert check.main(args + ["--update-reference"]) == 0
    ref = pd.read_csv(results / "reference" / "unit.csv")
    speeds = ref[ref["metric"] == "train_images_per_s"].set_index("device")["value"]
    assert len(speeds) == 2 and speeds["cpu:Other CPU (AVX2)"] == 60.0
    assert speeds.drop("cpu:Other CPU (AVX2)").item() == 30.0
    assert (ref["metric"] == "miou").sum() == 1  # a portable number has one reference, whatever the device


def test_a_device_bound_number_without_any_reference_is_new(tmp_path, capsys):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params, [DEVICE_GATES[0]])
    args = ["--params", str(params), "--results", str(results)]
    _write_speeds(results, speed=60.0, ratio=1.0)
    assert check.main(args + ["--update-reference"]) == 0
    _params(params, DEVICE_GATES)  # the speed gates arrive after the reference was made
    assert check.main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "train_images_per_s" in ln)
    assert line.rstrip().endswith("new")


def test_a_reference_from_before_device_scopes_holds_its_speeds_for_an_unknown_device(tmp_path, capsys):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params, DEVICE_GATES)
    _write_speeds(results, speed=8.0, ratio=1.0)
    (results / "reference").mkdir()
    (results / "reference" / "unit.csv").write_text(  # the old format: no device, no scope
        "stage,method,split,metric,config,value,kind,tolerance,better,git_sha\n"
        "pseudo_mask,weakclip,train,miou,,0.5,abs,0.02,higher,abc\n"
        "profile,weakclip,,train_images_per_s,bf16,60.0,ratio,0.5,higher,abc\n")
    assert check.main(["--params", str(params), "--results", str(results)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "train_images_per_s" in ln)
    assert "other device: not gated" in line


# The paper's orderings: a flip fails the check even when every number stays inside its own tolerance.
LOOSE = [{"stage": "pseudo_mask", "metric": "miou", "kind": "abs", "tolerance": 0.2},
         {"stage": "final", "metric": "miou", "kind": "abs", "tolerance": 0.2}]


def _write_methods(results, weakclip: list[float], seeds: float, crf: float):
    rows = [make_row("unit", "synthetic", "weakclip[release]", "pseudo_mask", "train", "miou", v, seed=s)
            for s, v in enumerate(weakclip)]
    rows += [make_row("unit", "synthetic", "seeds:cam", "pseudo_mask", "train", "miou", seeds),
             make_row("unit", "synthetic", "crf", "pseudo_mask", "train", "miou", crf)]
    write_rows(results / "metrics" / "pseudo.csv", rows)


@pytest.fixture
def ordering_reference(tmp_path):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params, LOOSE)
    args = ["--params", str(params), "--results", str(results)]
    _write_methods(results, [0.60, 0.61, 0.62], seeds=0.45, crf=0.59)  # margins 15.0 and 2.0 points
    assert check.main(args + ["--update-reference"]) == 0
    return results, args


def test_a_planted_ordering_flip_fails_though_each_number_is_within_tolerance(ordering_reference, capsys):
    results, args = ordering_reference
    _write_methods(results, [0.58, 0.585, 0.59], seeds=0.45, crf=0.60)  # every number within 0.2 of its reference
    assert check.main(args) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "weakclip[release] > training-free refiners" in ln)
    assert "REGRESSED" in line
    line = next(ln for ln in out.splitlines() if "weakclip[release] > seeds" in ln)
    assert line.rstrip().endswith("ok")


def test_an_ordering_within_its_run_seed_noise_is_not_gated(tmp_path, capsys):
    params, results = tmp_path / "params.yaml", tmp_path / "results"
    _params(params, LOOSE)
    args = ["--params", str(params), "--results", str(results)]
    # margin over CRF 1 point, but the run seeds spread 5 points: 3 standard errors ~ 8.7 points
    _write_methods(results, [0.55, 0.60, 0.65], seeds=0.45, crf=0.59)
    assert check.main(args + ["--update-reference"]) == 0
    _write_methods(results, [0.54, 0.58, 0.62], seeds=0.45, crf=0.59)  # flips, within noise
    assert check.main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "training-free refiners" in ln)
    assert "not gated" in line


def test_tolerances_suggested_from_the_run_seed_spread():
    rows = pd.DataFrame([{"stage": "pseudo_mask", "metric": "miou", "method": "weakclip[release]", "value": v}
                         for v in (0.60, 0.62, 0.64)] +
                        [{"stage": "pseudo_mask", "metric": "miou", "method": "crf", "value": 0.59}])
    (line,) = check.suggested_tolerances(rows, floor=0.015)
    # std 2 points over 3 seeds: 3 x 0.02 / sqrt(3) = 0.0346; crf (one value) is the floor's business
    assert 'methods: ["weakclip[release]"]' in line and "tolerance: 0.035" in line and "std 2.00 points" in line
    assert "0.015" in check.suggested_tolerances(rows.assign(value=0.6), floor=0.015)[0]
