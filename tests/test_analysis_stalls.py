"""Stall detectors on hand-built logs: motor_stall (cause, latency, drug missed),
stall_ongoing, stall_recovery_unlogged, intermittent_stalls and long_stall."""

from __future__ import annotations

import pytest
from test_analysis_logbuilder import LogBuilder, analyse_built, iso, kinds, one, unix


def _base(dose: float = 240.0) -> LogBuilder:
    b = LogBuilder()
    b.program(b.t(), dose)  # 240 mcg/day = 10 mcg/h
    return b


def test_no_stall_no_stall_findings(tmp_path):
    b = _base()
    a = analyse_built(b, tmp_path, b.t(days=3))
    assert not {"motor_stall", "stall_ongoing", "stall_recovery_unlogged", "intermittent_stalls",
                "long_stall"} & set(kinds(a))


def test_spontaneous_stall_times_and_missed_drug(tmp_path):
    b = _base()
    s, e = b.t(days=1, hours=10, minutes=30), b.t(days=1, hours=13)
    b.stall(s, e)
    a = analyse_built(b, tmp_path, b.t(days=6))
    f = one(a, "motor_stall")
    assert f.start_s == unix(s)
    assert abs(f.end_s - unix(e)) <= 60
    assert f.details.cause == "spontaneous"
    assert not f.ongoing
    assert f.missed_mcg == pytest.approx(25.0, rel=0.02)  # 2.5 h at 10 mcg/h
    assert f.missed_share == pytest.approx(25.0 / 240, rel=0.02)
    assert f.evidence  # record and row offsets
    assert "stall_ongoing" not in kinds(a)


def test_stall_during_mri_is_procedure_caused_with_latency(tmp_path):
    b = _base()
    mri_s, mri_e = b.t(days=1, hours=10), b.t(days=1, hours=10, minutes=45)
    b.stall(mri_s, b.t(days=1, hours=14, minutes=20))
    a = analyse_built(b, tmp_path, b.t(days=1, hours=16),
                      procedures=[{"kind": "mri", "start_utc": iso(mri_s), "end_utc": iso(mri_e)}])
    f = one(a, "motor_stall")
    assert f.details.cause == "procedure"
    assert f.details.procedure == "mri"
    assert f.details.recovery_latency_h == pytest.approx(3 + 35 / 60, abs=0.05)
    assert "MRI" in f.explanation


def test_ongoing_stall_gives_stall_ongoing_and_high_withdrawal(tmp_path):
    b = _base()
    s = b.t(days=1, hours=10)
    b.stall(s, None, recovery_at=None)
    a = analyse_built(b, tmp_path, b.t(days=1, hours=15), status={"motor_state": "stalled"})
    ms, so = one(a, "motor_stall"), one(a, "stall_ongoing")
    assert ms.ongoing and so.ongoing and so.end_s is None
    assert so.start_s == unix(s)
    assert so.missed_mcg == pytest.approx(50.0, rel=0.05)  # 5 h at 10 mcg/h
    assert a.withdrawal.level == "high"
    assert any(act.section == "5.1.3.3" for act in a.withdrawal.actions)


def test_recovery_never_logged_while_rotor_turns(tmp_path):
    b = _base()
    b.stall(b.t(days=1, hours=10), b.t(days=1, hours=10, minutes=20), recovery_at=None)
    a = analyse_built(b, tmp_path, b.t(days=1, hours=14))
    f = one(a, "stall_recovery_unlogged")
    assert f.details.type == "rotor_turning_no_record"
    assert abs(f.start_s - unix(b.t(days=1, hours=10, minutes=20))) <= 60
    assert f.ongoing
    assert one(a, "motor_stall").end_s is not None


def test_recovery_logged_late_at_an_earlier_session_is_not_flagged(tmp_path):
    b = _base()
    late = b.t(days=2, hours=9)
    b.stall(b.t(days=1, hours=10), b.t(days=1, hours=10, minutes=20), recovery_at=late)
    b.session(late)
    a = analyse_built(b, tmp_path, b.t(days=5))
    assert "stall_recovery_unlogged" not in kinds(a)
    assert one(a, "motor_stall").end_s is not None


def test_recovery_logged_only_at_this_interrogation_is_flagged(tmp_path):
    b = _base()
    now = b.t(days=1, hours=14)
    b.stall(b.t(days=1, hours=10), b.t(days=1, hours=10, minutes=20), recovery_at=now - 30)
    b.session(now - 30)
    a = analyse_built(b, tmp_path, now)
    f = one(a, "stall_recovery_unlogged")
    assert f.end_s == unix(now - 30)


def test_recovery_record_but_rotor_still_stalled(tmp_path):
    b = _base()
    b.stall(b.t(days=1, hours=10), b.t(days=1, hours=20), recovery_at=b.t(days=1, hours=11))
    a = analyse_built(b, tmp_path, b.t(days=1, hours=20, minutes=30))
    f = one(a, "stall_recovery_unlogged")
    assert f.details.type == "record_but_rotor_stalled"
    assert f.start_s == unix(b.t(days=1, hours=11))
    assert f.missed_mcg == pytest.approx(90.0, rel=0.02)  # rows 11:00-20:00 at 10 mcg/h


def test_three_spontaneous_stalls_in_three_days_are_intermittent(tmp_path):
    b = _base()
    for d in (1, 2, 3):
        b.stall(b.t(days=d, hours=6), b.t(days=d, hours=6, minutes=40))
    a = analyse_built(b, tmp_path, b.t(days=4, hours=12))
    f = one(a, "intermittent_stalls")
    assert f.details.count == 3
    assert f.start_s == unix(b.t(days=1, hours=6))
    assert kinds(a).count("motor_stall") == 3
    assert a.withdrawal.level == "moderate"


def test_stalls_spread_out_or_caused_by_mri_are_not_intermittent(tmp_path):
    b = _base()
    for d in (1, 6, 11):
        b.stall(b.t(days=d, hours=6), b.t(days=d, hours=6, minutes=40))
    a = analyse_built(b, tmp_path, b.t(days=12))
    assert "intermittent_stalls" not in kinds(a)

    b = _base()
    procs = []
    for d in (1, 2, 3):
        s = b.t(days=d, hours=6)
        b.stall(s, s + 40 * 60)
        procs.append({"kind": "mri", "start_utc": iso(s), "end_utc": iso(s + 30 * 60)})
    a = analyse_built(b, tmp_path, b.t(days=4), name="mri", procedures=procs)
    assert "intermittent_stalls" not in kinds(a)


def test_long_stall_over_48h(tmp_path):
    b = _base()
    b.stall(b.t(days=1), b.t(days=3, hours=12))
    a = analyse_built(b, tmp_path, b.t(days=5))
    f = one(a, "long_stall")
    assert f.direction == "overdose"
    assert f.details.duration_h == pytest.approx(60, abs=0.1)

    b = _base()
    b.stall(b.t(days=1), b.t(days=2, hours=6))
    a = analyse_built(b, tmp_path, b.t(days=5), name="short")
    assert "long_stall" not in kinds(a)


def test_stall_seen_only_in_rows_is_still_a_stall(tmp_path):
    b = _base()
    b.stall(b.t(days=1, hours=10), b.t(days=1, hours=13), record=False)
    a = analyse_built(b, tmp_path, b.t(days=2))
    f = one(a, "motor_stall")
    assert "no motor-stall record" in f.explanation
    assert f.missed_mcg == pytest.approx(30.0, rel=0.02)



def test_mri_stall_beyond_the_reported_recovery_delays(tmp_path):
    b = _base()
    mri_s, mri_e = b.t(days=1, hours=10), b.t(days=1, hours=11)
    b.stall(mri_s, b.t(days=2, hours=15))  # 28 h after the scan
    a = analyse_built(b, tmp_path, b.t(days=3),
                      procedures=[{"kind": "mri", "start_utc": iso(mri_s), "end_utc": iso(mri_e)}])
    assert "may not recover on its own" in one(a, "motor_stall").explanation


def test_interrogating_too_soon_after_mri_is_a_limitation(tmp_path):
    b = _base()
    mri_s, mri_e = b.t(days=1, hours=10), b.t(days=1, hours=11)
    proc = [{"kind": "mri", "start_utc": iso(mri_s), "end_utc": iso(mri_e)}]
    a = analyse_built(b, tmp_path, b.t(days=1, hours=12), procedures=proc)
    assert any("read them again" in x for x in a.limitations)
    a = analyse_built(b, tmp_path, b.t(days=1, hours=14), procedures=proc, name="later")
    assert not any("read them again" in x for x in a.limitations)
