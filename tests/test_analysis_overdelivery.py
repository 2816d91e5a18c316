"""Volume detectors on hand-built logs: over_delivery (rotor above commanded, commanded above
prescribed beyond labeled accuracy) and rotor_shortfall (sustained, outside stalls)."""

from __future__ import annotations

import pytest
from test_analysis_logbuilder import LogBuilder, analyse_built, iso, kinds, one, unix


def _base() -> LogBuilder:
    b = LogBuilder()
    b.program(b.t(), 240.0)  # 10 mcg/h
    return b


def test_normal_delivery_has_no_volume_findings(tmp_path):
    a = analyse_built(_base(), tmp_path, LogBuilder().t(days=4))
    assert not {"over_delivery", "rotor_shortfall"} & set(kinds(a))


def test_rotor_faster_than_commanded_during_diathermy(tmp_path):
    b = _base()
    s, e = b.t(days=2, hours=10), b.t(days=2, hours=12)
    b.rotor_factors.append((s, e, 3.0))
    a = analyse_built(b, tmp_path, b.t(days=2, hours=14),
                      procedures=[{"kind": "diathermy", "start_utc": iso(s), "end_utc": iso(e)}])
    f = one(a, "over_delivery")
    assert (f.start_s, f.end_s) == (unix(s), unix(e))
    assert f.details.source == "rotor"
    assert f.details.procedure == "diathermy"
    assert f.excess_mcg == pytest.approx(40.0, rel=0.02)  # 2 h x 2 x 10 mcg/h
    # a 3-fold rate for 2 h raises the estimated CSF level well above prescription
    assert a.overdose.level == "moderate"
    assert any("CSF" in r for r in a.overdose.reasons)


def test_pump_commanding_more_than_prescribed(tmp_path):
    b = _base()
    s, e = b.t(days=1), b.t(days=2)
    b.cmd_factors.append((s, e, 1.5))
    a = analyse_built(b, tmp_path, b.t(days=3))
    f = one(a, "over_delivery")
    assert f.details.source == "commanded"
    assert abs(f.start_s - unix(s)) <= 3600 and abs(f.end_s - unix(e)) <= 3600
    assert f.excess_mcg == pytest.approx(120.0, rel=0.05)


def test_commanded_within_labeled_accuracy_is_not_over_delivery(tmp_path):
    b = _base()
    b.cmd_factors.append((b.t(days=1), b.t(days=2), 1.10))
    a = analyse_built(b, tmp_path, b.t(days=3))
    assert "over_delivery" not in kinds(a)


def test_sustained_rotor_shortfall_outside_stalls(tmp_path):
    b = _base()
    s, e = b.t(days=1, hours=6), b.t(days=1, hours=18)
    b.rotor_factors.append((s, e, 0.7))
    a = analyse_built(b, tmp_path, b.t(days=3))
    f = one(a, "rotor_shortfall")
    assert (f.start_s, f.end_s) == (unix(s), unix(e))
    assert f.missed_mcg == pytest.approx(36.0, rel=0.02)  # 30% of 12 h at 10 mcg/h
    assert f.details.ratio == pytest.approx(0.7, abs=0.01)


def test_short_or_small_shortfall_is_not_flagged(tmp_path):
    b = _base()
    b.rotor_factors.append((b.t(days=1, hours=6), b.t(days=1, hours=9), 0.7))  # 3 h only
    b.rotor_factors.append((b.t(days=2), b.t(days=3), 0.95))  # within 10%
    a = analyse_built(b, tmp_path, b.t(days=4))
    assert "rotor_shortfall" not in kinds(a)


def test_a_stall_is_not_a_rotor_shortfall(tmp_path):
    b = _base()
    b.stall(b.t(days=1, hours=6), b.t(days=1, hours=20))
    a = analyse_built(b, tmp_path, b.t(days=3))
    assert "rotor_shortfall" not in kinds(a)
    assert "motor_stall" in kinds(a)
