"""Scoring against truth files: the matching rule, a directory of hand-built samples, and
the benchmark script's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from test_analysis_logbuilder import LogBuilder, iso

from analysis import Finding
from analysis.research.scoring import match_findings, report, score_directory

H = 3600


def _f(kind: str, s: int | None, e: int | None) -> Finding:
    return Finding(kind, "warning", s, e, "test")


def _e(kind: str, s: int | None, e: int | None) -> dict:
    t = lambda x: None if x is None else iso(x - 946_684_800)  # noqa: E731 - unix -> iso
    return {"kind": kind, "start_utc": t(s), "end_utc": t(e)}


def test_match_overlap_with_an_hours_tolerance():
    now = 100 * H
    found, missed, false = match_findings([_e("motor_stall", 10 * H, 12 * H)],
                                          [_f("motor_stall", 12 * H + 1800, 13 * H)], now)
    assert (found, missed, false) == ({"motor_stall": 1}, {}, {})
    found, missed, false = match_findings([_e("motor_stall", 10 * H, 12 * H)],
                                          [_f("motor_stall", 14 * H, 15 * H)], now)
    assert (found, missed, false) == ({}, {"motor_stall": 1}, {"motor_stall": 1})


def test_match_kind_must_agree_and_null_times_match_any():
    now = 100 * H
    found, missed, false = match_findings([_e("history_gap", None, None)],
                                          [_f("history_gap", 5 * H, 6 * H)], now)
    assert found == {"history_gap": 1} and not missed and not false
    found, missed, false = match_findings([_e("motor_stall", 5 * H, None)],
                                          [_f("stall_ongoing", 5 * H, None)], now)
    assert missed == {"motor_stall": 1} and false == {"stall_ongoing": 1}


def test_match_open_end_means_until_interrogation():
    now = 50 * H
    found, _, _ = match_findings([_e("refill_over_infusion", 40 * H, None)],
                                 [_f("refill_over_infusion", 10 * H, 40 * H)], now)
    assert found == {"refill_over_infusion": 1}
    _, missed, false = match_findings([_e("battery_eri", 45 * H, None)],
                                      [_f("battery_eri", 10 * H, 20 * H)], now)
    assert missed == {"battery_eri": 1} and false == {"battery_eri": 1}


def test_each_actual_finding_matches_once():
    now = 100 * H
    found, missed, false = match_findings(
        [_e("motor_stall", 10 * H, 11 * H), _e("motor_stall", 10 * H, 11 * H)],
        [_f("motor_stall", 10 * H, 11 * H)], now)
    assert found == {"motor_stall": 1} and missed == {"motor_stall": 1} and not false


def _sample(d: Path, name: str, expected: list, risk: dict, stall: bool) -> None:
    b = LogBuilder()
    b.program(b.t(), 240.0)
    s, e = b.t(days=1, hours=10), b.t(days=1, hours=20)
    if stall:
        b.stall(s, e)
    b.write(d / f"{name}.itblog", b.t(days=1, hours=22))
    truth = {"scenario": name, "seed": 1, "description": "test",
             "interrogated_at_utc": iso(b.t(days=1, hours=22)),
             "procedures": [{"kind": "mri", "start_utc": iso(s), "end_utc": iso(s + 1800)}],
             "weight_kg": 25.0,
             "expected_findings": [dict(x, start_utc=iso(s) if x.get("start") else None,
                                        end_utc=iso(e) if x.get("start") else None)
                                   for x in expected],
             "expected_risk": risk, "true_events": [], "missed_mcg": 0.0, "excess_mcg": 0.0}
    for x in truth["expected_findings"]:
        x.pop("start", None)
    (d / f"{name}.truth.json").write_text(json.dumps(truth))


def _samples(d: Path) -> None:
    _sample(d, "stall", [{"kind": "motor_stall", "start": True}],
            {"withdrawal": "moderate", "overdose": "none"}, stall=True)
    _sample(d, "quiet", [], {"withdrawal": "none", "overdose": "none"}, stall=False)
    _sample(d, "wrong", [{"kind": "empty_reservoir"}],
            {"withdrawal": "high", "overdose": "none"}, stall=True)
    (d / "no_truth.itblog").write_bytes((d / "quiet.itblog").read_bytes())


def test_score_directory_counts(tmp_path):
    _samples(tmp_path)
    res = score_directory(tmp_path)
    assert res.summary["samples"] == 3
    assert res.summary["found_findings"] == 1
    assert res.summary["missed_findings"] == 1  # "wrong" expects an empty reservoir
    assert res.summary["false_findings"] == 1  # "wrong" also has the stall
    assert res.summary["risk_mismatches"] == 1
    by = {s.name: s for s in res.samples}
    assert by["stall"].risk_match and by["quiet"].risk_match and not by["wrong"].risk_match
    assert set(res.table.columns) == {"sample", "kind", "found", "missed", "false"}
    assert report(res).splitlines()[-1] == ("RESULT samples=3 missed_findings=1 "
                                            "false_findings=1 risk_mismatches=1")


def test_unreadable_sample_is_scored_as_an_error(tmp_path):
    (tmp_path / "bad.itblog").write_bytes(b"not a log")
    (tmp_path / "bad.truth.json").write_text(json.dumps(
        {"expected_findings": [{"kind": "motor_stall", "start_utc": None, "end_utc": None}],
         "expected_risk": {"withdrawal": "none", "overdose": "none"}}))
    res = score_directory(tmp_path)
    assert res.samples[0].error and res.summary["missed_findings"] == 1
    assert res.summary["risk_mismatches"] == 1


def test_benchmark_script_prints_the_result_line(tmp_path):
    _samples(tmp_path)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "score.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "RESULT samples=3 missed_findings=1 false_findings=1 risk_mismatches=1"
    assert any("motor_stall" in x for x in lines)
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "score.py"),
                          str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2
