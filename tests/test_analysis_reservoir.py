"""Reservoir detectors on hand-built logs: refill discrepancies (under-delivery,
over-infusion, drug missing), empty reservoir, low before refill, refill overdue."""

from __future__ import annotations

import pytest
from test_analysis_logbuilder import LogBuilder, analyse_built, kinds, one, unix

REFILL_KINDS = {"refill_under_delivery", "refill_over_infusion"}


def _pump(dose: float = 400.0, reservoir: float = 20.0) -> LogBuilder:
    b = LogBuilder(reservoir_ml=reservoir)
    b.program(b.t(), dose)  # 400 mcg/day at 2000 mcg/mL = 0.2 mL/day
    return b


def _two_refills(b: LogBuilder, delta_ml: float | None) -> int:
    """Refill on day 1 (to 20 mL) and day 41 with measured = expected + delta."""
    b.refill(b.t(days=1), 20.0)
    expected = 20.0 - 0.2 * 40
    t2 = b.t(days=41)
    measured = None if delta_ml is None else expected + delta_ml
    b.refill(t2, 20.0, expected=expected, measured=measured)
    return t2


def test_refill_as_expected_gives_no_discrepancy(tmp_path):
    b = _pump()
    _two_refills(b, None)
    a = analyse_built(b, tmp_path, b.t(days=42))
    assert not REFILL_KINDS & set(kinds(a))
    assert a.withdrawal.level == "none" and a.overdose.level == "none"


def test_measured_above_expected_is_under_delivery(tmp_path):
    b = _pump()
    t2 = _two_refills(b, +2.0)
    a = analyse_built(b, tmp_path, b.t(days=42))
    f = one(a, "refill_under_delivery")
    assert f.end_s == unix(t2) and f.start_s == unix(b.t(days=1))
    assert f.missed_mcg == pytest.approx(4000.0)
    assert f.details.limit_ml == pytest.approx(max(1.0, 0.145 * 8.0))
    assert a.withdrawal.level != "none"


def test_discrepancy_within_accuracy_and_volume_limit_is_not_flagged(tmp_path):
    b = _pump()
    _two_refills(b, +1.1)  # above 1 mL but within 14.5% of the 8 mL used
    a = analyse_built(b, tmp_path, b.t(days=42))
    assert not REFILL_KINDS & set(kinds(a))


def test_measured_below_expected_is_over_infusion(tmp_path):
    b = _pump()
    _two_refills(b, -2.0)
    a = analyse_built(b, tmp_path, b.t(days=42))
    f = one(a, "refill_over_infusion")
    assert f.excess_mcg == pytest.approx(4000.0)
    assert f.direction == "overdose"
    assert f.details.actual_over_expected == pytest.approx(10.0 / 8.0)
    assert a.overdose.level in ("low", "moderate")


def test_nearly_empty_days_after_a_refill_means_drug_missing(tmp_path):
    b = _pump()
    b.refill(b.t(days=1), 20.0)
    t2 = b.t(days=4)
    b.refill(t2, 20.0, expected=19.4, measured=0.0)
    a = analyse_built(b, tmp_path, b.t(days=4, hours=1))
    f = one(a, "refill_over_infusion")
    assert f.details.drug_missing is True
    assert f.direction == "withdrawal"
    assert "pocket" in f.explanation
    assert a.withdrawal.level == "high"
    assert a.overdose.level == "none"


def test_empty_reservoir_still_empty_at_interrogation(tmp_path):
    b = _pump(reservoir=1.0)  # empty (0.5 mL) after 2.5 days
    a = analyse_built(b, tmp_path, b.t(days=5))
    f = one(a, "empty_reservoir")
    assert f.ongoing and f.end_s is None
    assert abs(f.start_s - unix(b.t(days=2, hours=12))) <= 3600
    assert f.missed_mcg == pytest.approx(400 * 2.5, rel=0.05)
    assert a.withdrawal.level == "high"
    assert "reservoir_low_before_refill" not in kinds(a)  # empty already says it


def test_empty_reservoir_resolved_by_refill(tmp_path):
    b = _pump(reservoir=1.0)
    t_refill = b.t(days=4)
    b.refill(t_refill, 20.0, expected=0.0, measured=0.0)
    a = analyse_built(b, tmp_path, b.t(days=10))
    f = one(a, "empty_reservoir")
    assert not f.ongoing
    assert f.end_s == unix(t_refill)


def test_full_reservoir_is_not_empty_or_low(tmp_path):
    b = _pump()
    a = analyse_built(b, tmp_path, b.t(days=5))
    assert not {"empty_reservoir", "reservoir_low_before_refill"} & set(kinds(a))


def test_reservoir_projected_below_safe_residual(tmp_path):
    b = _pump(reservoir=6.0)  # 5 mL after 5 days: 4 mL safe residual within a week
    a = analyse_built(b, tmp_path, b.t(days=5))
    f = one(a, "reservoir_low_before_refill")
    assert 0 < f.details.days_to_safe_residual < 7
    assert a.withdrawal.level == "moderate"


def test_refill_overdue_at_interrogation(tmp_path):
    b = _pump(dose=100.0)
    t_refill = b.t(hours=2)
    b.refill(t_refill, 20.0)
    a = analyse_built(b, tmp_path, b.t(days=190))
    f = one(a, "refill_overdue")
    assert f.ongoing
    assert f.start_s == unix(t_refill + 180 * 86400)


def test_refill_overdue_between_refills_and_not_when_on_time(tmp_path):
    b = _pump(dose=100.0)
    b.refill(b.t(hours=2), 20.0)
    t2 = b.t(days=200)
    b.refill(t2, 20.0)
    a = analyse_built(b, tmp_path, b.t(days=201))
    f = one(a, "refill_overdue")
    assert f.end_s == unix(t2) and not f.ongoing

    b = _pump(dose=100.0)
    b.refill(b.t(hours=2), 20.0)
    b.refill(b.t(days=90), 20.0)
    a = analyse_built(b, tmp_path, b.t(days=100), name="ontime")
    assert "refill_overdue" not in kinds(a)
