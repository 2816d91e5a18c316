"""The motor-stall time of the two-hour check (``CheckResult.stall_s``, ``stall_ongoing`` and the
JSON's ``stall``, docs/check-json.md): the union of the ``motor_stall`` and ``stall_ongoing``
findings that touch the window from ``[check] lookback_h`` before the procedure start to the
interrogation, each counted from its own start, computed once by ``analysis.check`` for the
text, the JSON, the ward app and the FHIR export. Logs are written by ``logbuilder.LogBuilder``
(docs/log-format.md section 12), never through the simulated pump."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from logbuilder import H, LogBuilder, unix

from analysis.check import CheckResult, check, stall_time
from analysis.findings import Finding
from clinical.rules import get_rules
from parsers import read_log

MIN = 60
STALLED = {"motor_state": "stalled", "active_alarms": ("motor_stall",)}


def _dt(clock: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix(clock), dt.UTC)


def _mri_day(dose: float = 480.0) -> tuple[LogBuilder, int, int, int]:
    """Two days of history at ``dose``; an MRI 14:00-15:00 on day 3, checked at 17:00."""
    b = LogBuilder()
    b.program(b.t(), dose)
    return b, b.t(days=2, hours=14), b.t(days=2, hours=15), b.t(days=2, hours=17)


def _check(b: LogBuilder, tmp_path: Path, until: int, start: int, end: int, *,
           status: dict | None = None, damage_in_window: bool = False, damage_at: int | None = None,
           rules=None) -> CheckResult:
    path = b.write(tmp_path / "case.itblog", until, status=status)
    if damage_in_window or damage_at is not None:  # one page of history made unreadable (bad CRC)
        at = _dt(start if damage_at is None else damage_at)  # default: the page at the MRI's start
        log = read_log(path)
        page = log.pages.loc[(log.pages["first_utc"] <= at + dt.timedelta(minutes=30))
                             & (log.pages["last_utc"] >= at)].iloc[0]
        data = bytearray(path.read_bytes())
        data[int(page["offset"]) + 40] ^= 0xFF
        path.write_bytes(bytes(data))
    return check(read_log(path), "mri", _dt(end), _dt(start), rules=rules)


def _stall(kind: str, start_s: int | None, end_s: int | None, ongoing: bool = False) -> Finding:
    return Finding(kind, "critical", start_s, end_s, "", ongoing=ongoing)


# ----- the computation itself, on findings -----------------------------------------------------

def test_stall_time_is_the_union_of_the_stalls_touching_the_window_each_from_its_start():
    lo, now = 10_000, 30_000
    found = [
        _stall("motor_stall", 8_000, 12_000),  # began before the window: counted whole, from 8_000
        _stall("motor_stall", 11_000, 13_000),  # overlaps the first: not added twice
        _stall("motor_stall", 20_000, 21_000),
        _stall("motor_stall", 1_000, 9_000),  # ended before the window: left out
        Finding("pump_stopped", "critical", 14_000, 16_000, ""),  # not a stall
    ]
    assert stall_time(found, lo, now, history_complete=True) == (5_000 + 1_000, False)


def test_a_stall_still_going_or_without_a_known_end_counts_to_the_interrogation():
    lo, now = 10_000, 30_000
    going = [_stall("motor_stall", 25_000, None, ongoing=True), _stall("stall_ongoing", 25_000, None, True)]
    assert stall_time(going, lo, now, history_complete=True) == (5_000, True)
    no_end = [_stall("motor_stall", 29_000, None)]
    assert stall_time(no_end, lo, now, history_complete=False) == (1_000, True)
    no_start = [_stall("motor_stall", None, 10_600)]  # an unknown start counts from the window's
    assert stall_time(no_start, lo, now, history_complete=True) == (600, False)


def test_no_stall_is_zero_only_when_the_history_is_complete():
    assert stall_time([], 10_000, 30_000, history_complete=True) == (0, False)
    assert stall_time([], 10_000, 30_000, history_complete=False) == (None, False)


# ----- on CheckResult, from hand-built logs ------------------------------------------------------

def test_a_recovered_stall_in_the_mri_is_its_minutes(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s + 10 * MIN, s + 40 * MIN)
    r = _check(b, tmp_path, now, s, e)
    assert (r.stall_s, r.stall_ongoing) == (30 * MIN, False)
    assert r.stall_from_s == unix(s) - H  # [check] lookback_h = 1
    assert r.to_dict()["stall"] == {"minutes": 30.0, "ongoing": False, "from": _dt(s - H).isoformat()}


def test_two_stalls_add_and_the_stall_ongoing_finding_is_not_counted_twice(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s + 10 * MIN, s + 30 * MIN)  # 14:10 to 14:30
    b.stall(e + 75 * MIN, None, record=True, recovery_at=None)  # from 16:15, still stalled at 17:00
    r = _check(b, tmp_path, now, s, e, status=STALLED)
    kinds = [f.kind for f in r.assessment.findings]
    assert kinds.count("motor_stall") == 2 and "stall_ongoing" in kinds  # same stall, two findings
    assert (r.stall_s, r.stall_ongoing) == (20 * MIN + 45 * MIN, True)
    assert r.to_dict()["stall"]["minutes"] == 65.0 and r.to_dict()["stall"]["ongoing"] is True
    assert r.verdict == "URGENT"


def test_a_stall_that_began_before_the_window_counts_from_its_start(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s - 2 * H, s + 30 * MIN)  # 12:00 to 14:30; the window opens at 13:00
    r = _check(b, tmp_path, now, s, e)
    assert r.stall_s == 150 * MIN and not r.stall_ongoing  # the child went 2 h 30 min without drug
    assert any("2 h 30 min" in x for x in r.summary), r.summary  # as the text says
    b2, s, e, now = _mri_day()
    b2.stall(s - 4 * H, s - 3 * H)  # 10:00 to 11:00: before the window
    r2 = _check(b2, tmp_path, now, s, e)
    assert "motor_stall" in [f.kind for f in r2.assessment.findings]
    assert r2.stall_s == 0


def test_the_windows_lead_is_the_rules_lookback(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s - 150 * MIN, s - 90 * MIN)  # 11:30 to 12:30: inside a 2 h lead, before a 1 h one
    r = _check(b, tmp_path, now, s, e, rules=get_rules({"check": {"lookback_h": 2.0}}))
    assert r.stall_from_s == unix(s) - 2 * H
    assert r.stall_s == 60 * MIN
    assert _check(b, tmp_path, now, s, e).stall_s == 0


def test_no_stall_in_a_complete_history_is_zero(tmp_path):
    b, s, e, now = _mri_day()
    r = _check(b, tmp_path, now, s, e)
    assert r.missed_mcg is not None
    assert (r.stall_s, r.stall_ongoing) == (0, False)
    assert r.to_dict()["stall"]["minutes"] == 0.0


def test_no_stall_in_an_incomplete_history_cannot_be_ruled_out(tmp_path):
    b, s, e, now = _mri_day()
    b.page_size = 256
    r = _check(b, tmp_path, now, s, e, damage_in_window=True)
    assert r.missed_mcg is None
    assert r.stall_s is None and r.stall_ongoing is False
    assert r.to_dict()["stall"]["minutes"] is None
    assert any("stall cannot be ruled out" in x for x in r.summary)


def test_a_stall_found_in_an_incomplete_history_is_counted(tmp_path):
    b, s, e, now = _mri_day()
    b.page_size = 256
    b.stall(e + 30 * MIN, None, record=True, recovery_at=None)
    r = _check(b, tmp_path, now, s, e, status=STALLED, damage_in_window=True)
    assert r.missed_mcg is None
    # the damaged page hides where the stall began: the analysis dates it from the last good row
    # before the damage, and the stall time and the text say the same; never None
    assert r.stall_ongoing and r.stall_s is not None and r.stall_s >= 90 * MIN
    began = min(f.start_s for f in r.assessment.findings if f.kind == "motor_stall")
    assert r.stall_s == r.interrogated_s - began
    hours, minutes = divmod(r.stall_s // MIN, 60)
    assert any(f"{hours} h {minutes:02d} min without delivery" in x for x in r.summary), r.summary


def test_damage_in_the_hour_before_the_procedure_means_a_stall_cannot_be_ruled_out(tmp_path):
    """The window opens lookback_h before the procedure: a damaged page there hides what the
    motor did then, so "no stall" may not be said, although the drug sums (from the procedure's
    start) are complete (review finding)."""
    b, s, e, now = _mri_day()
    b.page_size, b.interval_s = 256, 5 * MIN  # a page holds 7 five-minute rows: 35 min
    r = _check(b, tmp_path, now, s, e, damage_at=s - 45 * MIN)  # a page around 13:15 unreadable
    assert r.missed_mcg is not None  # the drug sums start at 14:00: complete
    assert r.stall_s is None and r.to_dict()["stall"]["minutes"] is None
    assert any("stall cannot be ruled out" in x for x in r.summary), r.summary
    assert not any(x.startswith("No motor stall was found during or after the MRI (records")
                   for x in r.summary)
    assert r.verdict != "OK"
