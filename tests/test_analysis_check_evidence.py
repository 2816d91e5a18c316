"""The two-hour check decides from every piece of evidence (issue 13), on logs written with
``parsers.write_log`` from the documented meaning of the format (docs/log-format.md section 12)
by ``logbuilder.LogBuilder``, never through the simulated pump.

Each test is one case of the issue: a pump not delivering with no stall record, a status that
says stalled beside a damaged or cut history, a recovery made by the interrogation, a large
dose cut, a spontaneous stall, a procedure far from the interrogation, drug missed without a
stall, over-delivery after diathermy, reasons that name their cause, a stall inside the last
interval, rows off the hour, and an active critical alarm."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from logbuilder import H, LogBuilder, unix

from analysis.check import CheckInputError, check
from parsers import read_log

STALLED = {"motor_state": "stalled", "active_alarms": ("motor_stall",)}


def _dt(clock: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix(clock), dt.UTC)


def _check(b: LogBuilder, tmp_path: Path, until: int, start: int, end: int, kind: str = "mri",
           status: dict | None = None, name: str = "case", **kw):
    path = b.write(tmp_path / f"{name}.itblog", until, status=status, **kw)
    return check(read_log(path), kind, _dt(end), _dt(start))


def _mri_day(dose: float = 400.0, **kw) -> tuple[LogBuilder, int, int, int]:
    """Two days of history at ``dose``; an MRI 14:00-15:00 on day 2, checked at 17:00."""
    b = LogBuilder(**kw)
    b.program(b.t(), dose)
    return b, b.t(days=2, hours=14), b.t(days=2, hours=15), b.t(days=2, hours=17)


def _kinds(r) -> list[str]:
    return [f.kind for f in r.assessment.findings]


def _says_as_programmed(r) -> bool:
    return any("delivered as programmed" in s or "matches the prescription" in s for s in r.summary)


# 1. no delivery after an MRI, no stall record -----------------------------------------------

def test_nothing_commanded_nor_turned_after_the_mri_with_no_record_is_urgent(tmp_path):
    b, s, e, now = _mri_day()
    b.cmd_factors.append((s, 2**40, 0.0))
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict == "URGENT", r.reasons
    stop = next(f for f in r.assessment.findings if f.kind == "pump_stopped")
    assert stop.ongoing and stop.start_s == unix(s)
    assert "no stop is logged" in stop.explanation
    assert "the status reports the pump running" in stop.explanation.lower()
    assert any("seen in the delivery history; no stop record" in x for x in r.reasons)
    assert not _says_as_programmed(r)
    assert r.missed_mcg == pytest.approx(400 / 24 * 3, rel=0.02)  # 14:00 to 17:00


@pytest.mark.parametrize("reservoir_ml", [20.0, 1.0])
def test_rotor_still_with_commanded_normal_and_no_record_is_urgent(tmp_path, reservoir_ml):
    b, s, e, now = _mri_day(reservoir_ml=reservoir_ml)
    b.rotor_factors.append((s, 2**40, 0.0))
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict == "URGENT", r.reasons
    assert {"motor_stall", "stall_ongoing"} <= set(_kinds(r))
    stall = next(f for f in r.assessment.findings if f.kind == "motor_stall")
    assert stall.ongoing and stall.start_s == unix(s)
    assert "no motor-stall record" in stall.explanation
    assert "sources disagree" in stall.explanation
    assert r.assessment.withdrawal.level == "high"


# 2. the status says stalled, the history is damaged, cut or silent ----------------------------

def _stalled_status_case(tmp_path: Path, how: str):
    b, s, e, now = _mri_day(page_size=256)
    b.stall(s, None, record=True, recovery_at=None)
    path = b.write(tmp_path / "base.itblog", now, status=STALLED)
    if how == "damaged":
        log = read_log(path)
        page = log.pages.loc[(log.pages["first_utc"] <= _dt(s) + dt.timedelta(hours=1))
                             & (log.pages["last_utc"] >= _dt(s))].iloc[0]
        data = bytearray(path.read_bytes())
        data[int(page["offset"]) + 40] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "truncated":
        data = path.read_bytes()
        log = read_log(path)
        first_after = int(log.pages.loc[log.pages["last_utc"] >= _dt(s - 6 * H), "offset"].min())
        path.write_bytes(data[: first_after + 100])
    elif how == "no_record":
        b2, *_ = _mri_day(page_size=256)
        path = b2.write(tmp_path / "quiet.itblog", now, status=STALLED)
    return check(read_log(path), "mri", _dt(e), _dt(s))


@pytest.mark.parametrize("how", ["damaged", "truncated", "no_record"])
def test_a_status_that_says_stalled_outranks_a_missing_or_silent_history(tmp_path, how):
    r = _stalled_status_case(tmp_path, how)
    assert r.verdict == "URGENT", (how, r.reasons)
    assert any("STALLED" in x or "still stalled" in x for x in r.reasons)
    ongoing = [f for f in r.assessment.findings if f.kind == "stall_ongoing"]
    assert ongoing and ongoing[0].ongoing
    assert r.assessment.withdrawal.level == "high"
    assert not _says_as_programmed(r)


def test_a_stall_only_the_status_shows_says_where_it_comes_from(tmp_path):
    r = _stalled_status_case(tmp_path, "no_record")
    stall = next(f for f in r.assessment.findings if f.kind == "stall_ongoing")
    assert "status reports the motor STALLED now" in stall.explanation
    assert any("status" in x for x in r.reasons)


# 3. delivery resumed only because the pump was interrogated -----------------------------------

def test_a_recovery_made_by_the_interrogation_is_review_with_one_figure(tmp_path):
    b, s, e, _ = _mri_day(dose=600.0)
    now = b.t(days=2, hours=16, minutes=55)
    b.stall(s, None, record=True, recovery_at=now)
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict == "REVIEW", r.reasons
    stall = next(f for f in r.assessment.findings if f.kind == "motor_stall")
    assert stall.details.restarted_by_interrogation and stall.end_s == unix(now)
    assert any(x.startswith("delivery restarted only at this interrogation") for x in r.reasons)
    assert "interrogate again" in r.summary[0]
    # one figure: the stall from 14:00 to 16:55 at 600 mcg/day = 73 mcg, in the summary,
    # the finding and the JSON alike
    assert stall.missed_mcg == pytest.approx(600 / 24 * (2 + 55 / 60), rel=0.01)
    assert r.missed_mcg == pytest.approx(stall.missed_mcg, rel=0.01)
    assert any(f"about {stall.missed_mcg:.0f} mcg was not delivered" in x for x in r.summary)


# 4. a tenfold dose cut ------------------------------------------------------------------------

def test_a_tenfold_dose_cut_two_days_before_is_a_withdrawal_risk(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 900.0)
    b.program(b.t(days=3), 90.0)
    s, e, now = b.t(days=5, hours=14), b.t(days=5, hours=15), b.t(days=5, hours=17)
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict in ("REVIEW", "URGENT")
    cut = next(f for f in r.assessment.findings if f.kind == "dose_decrease")
    assert cut.details.decrease_fraction == pytest.approx(0.9)
    assert "5.1.1.3" in cut.explanation and "5.1.1.8" in cut.explanation
    assert r.assessment.withdrawal.level == "high"


def test_a_small_dose_cut_is_not_flagged(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 400.0)
    b.program(b.t(days=3), 360.0)
    s, e, now = b.t(days=5, hours=14), b.t(days=5, hours=15), b.t(days=5, hours=17)
    r = _check(b, tmp_path, now, s, e)
    assert "dose_decrease" not in _kinds(r)
    assert r.verdict == "OK", r.reasons


# 5. a spontaneous stall that recovered ----------------------------------------------------------

def test_a_recovered_stall_with_no_procedure_to_explain_it_is_review(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s - 10 * H, s - 9 * H)  # 04:00-05:00, hours before the MRI the user entered
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict == "REVIEW", r.reasons
    assert any("no procedure to explain it" in x and "procedure times" in x for x in r.reasons)


# 6. a procedure far from the interrogation ------------------------------------------------------

def test_a_procedure_days_before_the_interrogation_asks_if_it_is_the_right_log(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 400.0)
    now = b.t(days=10)
    r = _check(b, tmp_path, now, b.t(days=2), b.t(days=2, hours=1))
    assert r.verdict == "REVIEW"
    assert any("right log, or the right date" in x for x in r.reasons)


def test_a_procedure_after_the_interrogation_is_refused(tmp_path):
    b, _, _, now = _mri_day()
    path = b.write(tmp_path / "x.itblog", now)
    with pytest.raises(CheckInputError, match="after the pump was interrogated"):
        check(read_log(path), "mri", _dt(now + 10 * H), _dt(now + 9 * H))


def test_a_procedure_before_the_history_gives_no_drug_figures(tmp_path):
    b, _, _, now = _mri_day()
    r = _check(b, tmp_path, now, b.t(hours=-3), b.t(hours=-2))
    assert r.missed_mcg is None and r.excess_mcg is None
    assert r.verdict == "REVIEW"
    assert not _says_as_programmed(r)


# 7. drug missed that is not a stall -------------------------------------------------------------

def test_an_empty_reservoir_counts_as_missed_and_is_never_as_programmed(tmp_path):
    b, s, e, now = _mri_day(reservoir_ml=0.9)  # 400 mcg/day = 0.2 mL/day: empty at 0.5 mL
    r = _check(b, tmp_path, now, s, e, status={"active_alarms": ("empty_reservoir",)})
    assert r.verdict == "URGENT", r.reasons
    assert not _says_as_programmed(r)
    assert r.missed_mcg == pytest.approx(400 / 24 * 3, rel=0.05)


@pytest.mark.parametrize("sample", ["missed_refill", "pocket_fill", "dose_unit_error"])
def test_samples_with_drug_problems_never_say_as_programmed(sample):
    root = Path(__file__).resolve().parents[1] / "sample_logs"
    log = read_log(root / f"{sample}.itblog")
    end = log.header.interrogated_at - dt.timedelta(hours=2)
    r = check(log, "mri", end, end - dt.timedelta(hours=1))
    assert r.verdict in ("REVIEW", "URGENT")
    assert not _says_as_programmed(r), r.summary
    if sample == "missed_refill":  # empty since February: the whole window is missed
        assert r.missed_mcg > 0.9 * (log.status.daily_dose_mcg_day / 24 * 3)


# 8. over-delivery after diathermy ---------------------------------------------------------------

@pytest.mark.parametrize("what", ["rotor", "commanded"])
def test_over_delivery_after_diathermy_is_review_with_overdose_risk(tmp_path, what):
    b = LogBuilder()
    b.program(b.t(), 400.0)
    s, e, now = b.t(days=2, hours=10), b.t(days=2, hours=12), b.t(days=2, hours=16)
    if what == "rotor":
        b.rotor_factors.append((e, e + 2 * H, 1.4))
    else:
        b.cmd_factors.append((e, e + 2 * H, 1.4))
    r = _check(b, tmp_path, now, s, e, kind="diathermy")
    assert r.verdict == "REVIEW", r.reasons
    assert "over_delivery" in _kinds(r)
    assert r.assessment.overdose.level in ("low", "moderate", "high")
    assert r.excess_mcg == pytest.approx(400 / 24 * 2 * 0.4, rel=0.1)
    assert not _says_as_programmed(r)


# 9. reasons that name the cause -----------------------------------------------------------------

def test_a_restart_above_the_maximum_says_so(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 400.0)
    b.program(b.t(days=1), mode="stopped")
    b.program(b.t(days=3), 1320.0, override=1)
    s, e, now = b.t(days=3, hours=2), b.t(days=3, hours=3), b.t(days=3, hours=5)
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict == "URGENT"
    assert any("overdose risk is high" in x and "restart full dose" in x for x in r.reasons), r.reasons
    assert any("1320 mcg/day is above the 1000 mcg/day upper limit" in x for x in r.reasons)


def test_the_stall_figure_is_the_same_in_summary_finding_and_json(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s, s + 40 * 60)
    r = _check(b, tmp_path, now, s, e)
    stall = next(f for f in r.assessment.findings if f.kind == "motor_stall")
    assert stall.missed_mcg == pytest.approx(400 / 24 * 40 / 60, rel=0.02)
    assert r.missed_mcg == pytest.approx(stall.missed_mcg, rel=0.02)
    assert r.to_dict()["missed_mcg"] == round(r.missed_mcg, 1)


# 10. a stall that begins inside the last delivery interval --------------------------------------

@pytest.mark.parametrize("record", [True, False])
def test_a_stall_inside_the_last_interval_is_not_a_recovery(tmp_path, record):
    b, s, e, _ = _mri_day()
    stall_at = b.t(days=2, hours=16, minutes=28)
    now = b.t(days=2, hours=17, minutes=54)
    b.stall(stall_at, None, record=record, recovery_at=None)
    r = _check(b, tmp_path, now, s, e, status=STALLED)
    assert r.verdict == "URGENT", r.reasons
    assert not any("recovered at" in x for x in r.summary), r.summary
    stall = next(f for f in r.assessment.findings if f.kind == "stall_ongoing")
    assert stall.ongoing


# 11. rows not on the hour -----------------------------------------------------------------------

@pytest.mark.parametrize("phase_min", [0, 13, 33, 59])
def test_a_normal_log_is_ok_whatever_the_phase_of_its_rows(tmp_path, phase_min):
    b = LogBuilder(phase_s=phase_min * 60)
    b.program(b.t(), 400.0)
    s, e, now = b.t(days=3, hours=14), b.t(days=3, hours=15), b.t(days=3, hours=17, minutes=10)
    r = _check(b, tmp_path, now, s, e)
    assert r.verdict == "OK", (phase_min, r.reasons)
    assert r.assessment.overdose.level == "none" and r.assessment.withdrawal.level == "none"
    assert r.missed_mcg < 0.01 * 400 and r.excess_mcg < 0.01 * 400
    assert _says_as_programmed(r)


# 12. an active critical alarm -------------------------------------------------------------------

def test_an_active_motor_stall_alarm_with_the_motor_running_is_review(tmp_path):
    b, s, e, now = _mri_day()
    r = _check(b, tmp_path, now, s, e, status={"active_alarms": ("motor_stall",)})
    assert r.verdict == "REVIEW", r.reasons
    alarm = next(f for f in r.assessment.findings if f.kind == "alarm_active")
    assert alarm.details.alarm == "motor_stall" and "disagree" in alarm.explanation
    assert any("motor-stall alarm active" in x for x in r.reasons)
    assert r.assessment.withdrawal.level == "low"

