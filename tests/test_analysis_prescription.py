"""Programming detectors on hand-built logs: titration_violation, concentration_mismatch
(wrong concentration, concentration change without bridge bolus) and restart_full_dose."""

from __future__ import annotations

import dataclasses

import pytest
from test_analysis_logbuilder import T0, LogBuilder, analyse_built, kinds, one, unix


def _prog(b: LogBuilder, *steps: tuple[float, float], **kw) -> LogBuilder:
    for day, dose in steps:
        b.program(b.t(days=day), dose, **kw)
    return b


def test_guideline_titration_is_not_flagged(tmp_path):
    b = _prog(LogBuilder(), (0, 300), (7, 330), (14, 360), (21, 300))
    a = analyse_built(b, tmp_path, b.t(days=25))
    assert "titration_violation" not in kinds(a)
    assert a.overdose.level == "none"


def test_big_step_too_soon_with_override(tmp_path):
    b = _prog(LogBuilder(), (0, 300), (10, 330))
    b.program(b.t(days=12), 495.0, override=1)
    a = analyse_built(b, tmp_path, b.t(days=14))
    f = one(a, "titration_violation")
    assert f.start_s == unix(b.t(days=12)) and f.ongoing
    assert "495 mcg/day is 50% above the previous 330 mcg/day" in f.explanation
    assert "2.0 days" in f.explanation
    assert "overridden" in f.explanation and f.details.override
    assert f.excess_mcg == pytest.approx((495 - 330 * 1.15) * (2 - 10 / 86400), rel=0.01)
    assert a.overdose.level in ("low", "moderate")


def test_dose_above_the_maximum(tmp_path):
    b = _prog(LogBuilder(), (0, 900), (7, 1030))
    a = analyse_built(b, tmp_path, b.t(days=9))
    f = one(a, "titration_violation")
    assert f.details.above_max
    assert a.overdose.level == "moderate"


def test_dose_entered_in_the_wrong_unit(tmp_path):
    b = _prog(LogBuilder(), (0, 200))
    b.program(b.t(days=5), 200_000.0)
    a = analyse_built(b, tmp_path, b.t(days=5, hours=2))
    f = one(a, "titration_violation")
    assert f.details.unit_error and f.severity == "critical"
    assert a.overdose.level == "high"


def test_inpatient_titration_after_implant_is_allowed(tmp_path):
    b = LogBuilder(implant_date=T0.date())
    _prog(b, (0, 100), (1, 150), (2, 200))
    a = analyse_built(b, tmp_path, b.t(days=3))
    assert "titration_violation" not in kinds(a)


def test_programmed_for_half_the_concentration_in_the_reservoir(tmp_path):
    b = _prog(LogBuilder(), (0, 250))
    b.refill(b.t(days=1), 20.0, conc=2000.0)
    b.program(b.t(days=2), 250.0, conc=1000.0, override=1)
    a = analyse_built(b, tmp_path, b.t(days=4))
    f = one(a, "concentration_mismatch")
    assert f.start_s == unix(b.t(days=2)) and f.ongoing
    assert f.details.factor == pytest.approx(2.0)
    assert f.excess_mcg == pytest.approx(500.0, rel=0.02)  # 2 days x 250 mcg extra
    assert a.overdose.level == "high"


def test_wrong_concentration_with_no_refill_in_the_log(tmp_path):
    b = LogBuilder(concentration=2000.0)  # the reservoir holds 2000 mcg/mL (status snapshot)
    b.program(b.t(), 250.0, conc=1000.0)
    a = analyse_built(b, tmp_path, b.t(days=2))
    f = one(a, "concentration_mismatch")
    assert f.start_s == unix(b.t()) and f.details.factor == pytest.approx(2.0)
    assert "no refill" not in f.explanation  # the status snapshot gives the drug
    assert not a.reconstruction["concentration_inferred"].any()


def test_concentration_change_with_reprogram_and_bridge_bolus_is_fine(tmp_path):
    b = _prog(LogBuilder(), (0, 250))
    t = b.t(days=1)
    b.refill(t, 20.0, conc=1000.0)
    b.program(t + 1200, 250.0, conc=1000.0)
    b.bolus(t + 1500, 25.0, kind="bridge", conc=1000.0)
    a = analyse_built(b, tmp_path, b.t(days=3))
    assert "concentration_mismatch" not in kinds(a)


def test_concentration_change_without_bridge_bolus(tmp_path):
    b = _prog(LogBuilder(), (0, 250))
    t = b.t(days=1)
    b.refill(t, 20.0, conc=1000.0)
    b.program(t + 1200, 250.0, conc=1000.0)
    a = analyse_built(b, tmp_path, b.t(days=3))
    f = one(a, "concentration_mismatch")
    assert f.details.bridge_bolus is False
    assert f.start_s == unix(t)
    assert f.direction == "overdose"  # the old, stronger drug is pushed at the new rate


def test_restart_at_full_dose_after_a_two_day_stop(tmp_path):
    b = _prog(LogBuilder(), (0, 300))
    b.program(b.t(days=2), 0.0, mode="stopped")
    b.program(b.t(days=4), 300.0)
    a = analyse_built(b, tmp_path, b.t(days=4, hours=6))
    f = one(a, "restart_full_dose")
    assert f.start_s == unix(b.t(days=4))
    assert f.details.stop_h == pytest.approx(48.0, abs=0.1)
    assert a.overdose.level == "high"
    stop = one(a, "pump_stopped")
    assert stop.end_s == unix(b.t(days=4)) and stop.missed_mcg == pytest.approx(600.0, rel=0.01)


def test_restart_at_a_reduced_dose_is_fine(tmp_path):
    b = _prog(LogBuilder(), (0, 300))
    b.program(b.t(days=2), 0.0, mode="stopped")
    b.program(b.t(days=4), 100.0)
    a = analyse_built(b, tmp_path, b.t(days=4, hours=6))
    assert "restart_full_dose" not in kinds(a)
    assert "titration_violation" not in kinds(a)


def test_flex_program_daily_dose_is_time_weighted(tmp_path):
    b = LogBuilder()
    b.program(b.t(), flex=[(0, 240), (720, 480)])
    b.program(b.t(days=7), flex=[(0, 240), (720, 600)])  # 360 -> 420: +16.7%
    a = analyse_built(b, tmp_path, b.t(days=8))
    f = one(a, "titration_violation")
    assert f.details.new_dose_mcg == pytest.approx(420.0)
    assert f.details.previous_dose_mcg == pytest.approx(360.0)
    assert dataclasses.is_dataclass(f)
