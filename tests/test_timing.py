"""The report's time table: per-stage wall, CPU and start-up, and the run's total only for one contiguous run."""
import json

import pytest

from bench.timing import run_summary, stage_timings, summary_md, timing_table

ENV = {"git": {"sha": "0123456789abcdef"}, "timestamp": "2026-12-06T10:00:00+00:00",
       "device": {"type": "cpu", "name": "Intel Xeon", "isa": "AVX512", "cores": 2, "native_bf16": False}}


def _stage(folder, name, seconds, cpu, startup, started_at, sha="0123456789abcdef", profile="synthetic"):
    env = {**ENV, "git": {"sha": sha}}
    (folder / "timing").mkdir(exist_ok=True)
    (folder / "timing" / f"{name}.json").write_text(json.dumps({
        "stage": name, "profile": profile, "seconds": seconds, "cpu_seconds": cpu, "startup_seconds": startup,
        "started_at": started_at, "ended_at": started_at + seconds, "environment": env}))


def test_stages_in_run_order_with_cores_busy_and_the_pause_before_each(tmp_path):
    _stage(tmp_path, "train_weakclip@release", 100.0, 190.0, 4.0, started_at=1020.0)  # written second...
    _stage(tmp_path, "prepare", 10.0, 9.0, 0.5, started_at=1000.0)                    # ...ran first
    table = timing_table(stage_timings(tmp_path))
    assert list(table["stage"]) == ["prepare", "train_weakclip@release", "**total**"]
    assert list(table["cores busy"][:2]) == ["0.90", "1.90"]
    # prepare ended at 1010; the training's process started at 1020 - 4 = 1016: 6 s of which DVC's
    assert list(table["DVC before it (s)"][:2]) == ["—", "6.0"]
    assert table["wall (s)"].iloc[-1] == "110.0"
    assert list(table["device"][:2]) == ["cpu:Intel Xeon (AVX512)"] * 2


def test_one_run_has_a_wall_time_and_names_its_host(tmp_path):
    _stage(tmp_path, "prepare", 10.0, 9.0, 0.5, started_at=1000.0)
    _stage(tmp_path, "pretrain_clip", 100.0, 190.0, 4.0, started_at=1020.0)
    summary = run_summary(stage_timings(tmp_path))
    assert summary["wall_s"] == pytest.approx(1120.0 - 999.5)
    assert summary["stages_s"] == 110.0 and summary["outside_s"] == pytest.approx(10.5)
    text = summary_md(summary, stage_timings(tmp_path))
    assert "cpu:Intel Xeon (AVX512)" in text and "2 cores" in text and "without native bf16" in text


@pytest.mark.parametrize("second", [
    {"started_at": 5000.0},                      # re-run much later: another run
    {"started_at": 1020.0, "sha": "fedcba98"},   # another commit
])
def test_stages_from_several_runs_get_no_total(tmp_path, second):
    _stage(tmp_path, "prepare", 10.0, 9.0, 0.5, started_at=1000.0)
    _stage(tmp_path, "pretrain_clip", 100.0, 190.0, 4.0, **second)
    timings = stage_timings(tmp_path)
    assert run_summary(timings) is None
    assert "no pipeline total" in summary_md(None, timings)


def test_another_profiles_leftover_stages_are_not_part_of_the_run(tmp_path):
    # voc-mini has no deviation stage: the synthetic run's timing file stays in results/timing/
    _stage(tmp_path, "deviation@voc_scales", 98.0, 113.0, 4.0, started_at=100.0, sha="aaaaaaa")
    _stage(tmp_path, "prepare", 10.0, 9.0, 0.5, started_at=1000.0, profile="voc-mini")
    _stage(tmp_path, "pretrain_clip", 100.0, 190.0, 4.0, started_at=1020.0, profile="voc-mini")
    timings = stage_timings(tmp_path)
    assert list(timings["stage"]) == ["prepare", "pretrain_clip"]
    summary = run_summary(timings)
    assert summary is not None and summary["stages_s"] == 110.0
    text = summary_md(summary, timings)
    assert "deviation@voc_scales (synthetic)" in text and "Left out" in text
