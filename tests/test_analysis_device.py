"""Bolus, device and history detectors on hand-built logs: unexpected_bolus, ptm_over_limit,
battery_eri, battery_eos, pump_stopped and history_gap (damage, clock, ring wrap)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_analysis_logbuilder import LogBuilder, analyse_built, kinds, one, unix

from parsers import RecordCode

PTM = {"ptm_enabled": True, "ptm_dose_mcg": 20.0, "ptm_lockout_min": 60, "ptm_max_per_day": 2}


def _base(dose: float = 240.0) -> LogBuilder:
    b = LogBuilder()
    b.program(b.t(), dose)
    return b


def test_clinician_bolus_in_a_session_is_expected(tmp_path):
    b = _base()
    b.bolus(b.t(days=1, hours=10), 50.0)
    a = analyse_built(b, tmp_path, b.t(days=2))
    assert "unexpected_bolus" not in kinds(a)


def test_clinician_bolus_outside_any_session_is_unexpected(tmp_path):
    b = _base()
    t = b.t(days=1, hours=10)
    b.bolus(t, 50.0, session=False)
    a = analyse_built(b, tmp_path, b.t(days=1, hours=12))
    f = one(a, "unexpected_bolus")
    assert f.start_s == unix(t)
    assert f.excess_mcg == pytest.approx(50.0)
    assert f.direction == "overdose"
    assert a.overdose.level == "moderate"  # 50 mcg is 21% of the 240 mcg daily dose


def test_patient_bolus_needs_a_granted_request(tmp_path):
    b = _base()
    b.bolus(b.t(days=1, hours=10), 20.0, kind="patient")  # with its request
    b.bolus(b.t(days=1, hours=16), 20.0, kind="patient", ptm_request=False)
    a = analyse_built(b, tmp_path, b.t(days=2), status=PTM)
    f = one(a, "unexpected_bolus")
    assert f.start_s == unix(b.t(days=1, hours=16))


def test_patient_boluses_within_limits(tmp_path):
    b = _base()
    for h in (8, 14):
        b.bolus(b.t(days=1, hours=h), 20.0, kind="patient", duration_s=600)
    a = analyse_built(b, tmp_path, b.t(days=2), status=PTM)
    assert not {"ptm_over_limit", "unexpected_bolus"} & set(kinds(a))


def test_patient_boluses_over_the_daily_maximum_and_lockout(tmp_path):
    b = _base()
    for h, m in ((8, 0), (12, 0), (16, 0), (16, 30)):
        b.bolus(b.t(days=1, hours=h, minutes=m), 20.0, kind="patient", duration_s=600)
    a = analyse_built(b, tmp_path, b.t(days=2), status=PTM)
    over = [f for f in a.findings if f.kind == "ptm_over_limit"]
    assert [f.start_s for f in over] == [unix(b.t(days=1, hours=16)),
                                          unix(b.t(days=1, hours=16, minutes=30))]
    assert "lockout" in over[1].explanation or "allowed per day" in over[1].explanation


def test_battery_eri_then_eos(tmp_path):
    b = _base()
    b.alarm(b.t(days=1), "eri")
    a = analyse_built(b, tmp_path, b.t(days=3), status={"battery_state": "eri"})
    f = one(a, "battery_eri")
    assert f.start_s == unix(b.t(days=1)) and f.ongoing
    assert f.details.projected_eos_s == unix(b.t(days=91))
    assert "battery_eos" not in kinds(a)
    assert a.withdrawal.level == "low"

    b = _base()
    b.alarm(b.t(days=1), "eri").alarm(b.t(days=2), "eos")
    b.program(b.t(days=2), 0.0, mode="stopped", session=False)
    a = analyse_built(b, tmp_path, b.t(days=3), name="eos",
                      status={"battery_state": "eos", "mode": "stopped"})
    assert one(a, "battery_eos").start_s == unix(b.t(days=2))
    assert one(a, "pump_stopped").ongoing
    assert a.withdrawal.level == "high"


def test_ok_battery_no_battery_findings(tmp_path):
    a = analyse_built(_base(), tmp_path, LogBuilder().t(days=2))
    assert not {"battery_eri", "battery_eos", "pump_stopped"} & set(kinds(a))


def test_programmed_stop_still_stopped(tmp_path):
    b = _base()
    b.program(b.t(days=1), 0.0, mode="stopped")
    a = analyse_built(b, tmp_path, b.t(days=2))
    f = one(a, "pump_stopped")
    assert f.ongoing and f.start_s == unix(b.t(days=1))
    assert f.missed_mcg == pytest.approx(240.0, rel=0.01)
    assert a.withdrawal.level == "high"


def test_damaged_page_is_a_history_gap_and_nothing_can_be_ruled_out(tmp_path):
    b = LogBuilder(page_size=256)
    b.program(b.t(), 240.0)
    a = analyse_built(b, tmp_path, b.t(days=3), damage_pages=(4,))
    f = one(a, "history_gap")
    assert f.start_s is not None and f.end_s is not None and f.end_s > f.start_s
    assert f.details.spans[0]["reasons"] == ["page_gap"]
    assert a.withdrawal.level == "cannot_rule_out"
    assert a.overdose.level == "cannot_rule_out"
    tl = a.reconstruction
    gap = tl[tl["history_missing"]]
    assert len(gap) >= 6 and gap["rotor_mcg_h"].isna().all()


def test_clean_log_has_no_history_gap_and_no_risk(tmp_path):
    a = analyse_built(_base(), tmp_path, LogBuilder().t(days=3))
    assert "history_gap" not in kinds(a)
    assert (a.withdrawal.level, a.overdose.level) == ("none", "none")


def test_records_whose_clock_cannot_be_placed_are_set_aside(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0, session=False)  # no sync point before the jump
    b.clock_jump(b.t(days=1), 1000, kind=None)  # clock falls back with no record
    a = analyse_built(b, tmp_path, b.t(days=2))
    f = one(a, "history_gap")
    assert f.details.spans[0]["reasons"] == ["clock_uncertain"]
    assert f.details.spans[0]["records"] == 24  # the program and 23 rows before the jump
    assert f.start_s is None
    assert a.window[0] >= pd.Timestamp("2024-03-01 23:00", tz="UTC")  # not decades away
    assert a.withdrawal.level == "cannot_rule_out"


def test_estimated_times_next_to_a_gap_are_marked_uncertain(tmp_path):
    b = LogBuilder(page_size=256)
    b.program(b.t(), 240.0, session=False)  # nothing anchors the history before the gap
    a = analyse_built(b, tmp_path, b.t(days=3), damage_pages=(4,))
    f = one(a, "history_gap")
    reasons = {r for s in f.details.spans for r in s["reasons"]}
    assert {"page_gap", "clock_uncertain"} <= reasons
    tl = a.reconstruction
    assert tl["time_uncertain"].sum() >= 20 and tl.loc[tl["time_uncertain"], "inferred"].all()


def test_wrapped_ring_is_not_a_gap(tmp_path):
    b = LogBuilder(page_size=256, ring_slots=8)  # 56 records: the ring wraps in 3 days
    b.program(b.t(), 240.0)
    a = analyse_built(b, tmp_path, b.t(days=3))
    assert "history_gap" not in kinds(a)
    assert any("wrapped" in x for x in a.limitations)
    assert (a.withdrawal.level, a.overdose.level) == ("none", "none")


def test_event_helper_records_are_read(tmp_path):
    b = _base()
    b.event(b.t(days=1), RecordCode.PTM_REQUEST, granted=1, reason="lockout", count_today=3,
            dose_mcg=20.0)
    a = analyse_built(b, tmp_path, b.t(days=2), status=PTM)
    f = one(a, "ptm_over_limit")
    assert "lockout" in f.explanation
