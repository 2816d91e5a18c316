"""The motor-stall time of the two-hour check (``CheckResult.stall_s``, ``stall_ongoing`` and
the JSON's ``stall``, docs/check-json.md): the union of the ``motor_stall`` and
``stall_ongoing`` findings from ``[check] lookback_h`` before the procedure start to the
interrogation, computed once by ``analysis.check`` for the text, the JSON, the ward app and the
FHIR export.  Logs are written by ``logbuilder.LogBuilder`` (docs/log-format.md section 12),
never through the simulated pump."""

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
           status: dict | None = None, damage_in_window: bool = False, rules=None) -> CheckResult:
    path = b.write(tmp_path / "case.itblog", until, status=status)
    if damage_in_window:  # one page of history inside the MRI made unreadable (its CRC fails)
        log = read_log(path)
        page = log.pages.loc[(log.pages["first_utc"] <= _dt(start) + dt.timedelta(minutes=30))
                             & (log.pages["last_utc"] >= _dt(start))].iloc[0]
        data = bytearray(path.read_bytes())
        data[int(page["offset"]) + 40] ^= 0xFF
        path.write_bytes(bytes(data))
    return check(read_log(path), "mri", _dt(end), _dt(start), rules=rules)


def _stall(kind: str, start_s: int | None, end_s: int | None, ongoing: bool = False) -> Finding:
    return Finding(kind, "critical", start_s, end_s, "", ongoing=ongoing)


# ----- the computation itself, on findings -----------------------------------------------------

def test_stall_time_is_the_union_cut_to_the_window():
    lo, now = 10_000, 30_000
    found = [
        _stall("motor_stall", 8_000, 12_000),  # began before the window: counted from lo
        _stall("motor_stall", 11_000, 13_000),  # overlaps the first: not added twice
        _stall("motor_stall", 20_000, 21_000),
        _stall("motor_stall", 1_000, 9_000),  # ended before the window: left out
        Finding("pump_stopped", "critical", 14_000, 16_000, ""),  # not a stall
    ]
    assert stall_time(found, lo, now, history_complete=True) == (3_000 + 1_000, False)


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
    assert r.stall_s == 90 * MIN and not r.stall_ongoing
    b2, s, e, now = _mri_day()
    b2.stall(s - 4 * H, s - 3 * H)  # 10:00 to 11:00: before the window
    r2 = _check(b2, tmp_path, now, s, e)
    assert "motor_stall" in [f.kind for f in r2.assessment.findings]
    assert r2.stall_s == 0


def test_the_windows_lead_is_the_rules_lookback(tmp_path):
    b, s, e, now = _mri_day()
    b.stall(s - 2 * H, s + 30 * MIN)
    r = _check(b, tmp_path, now, s, e, rules=get_rules({"check": {"lookback_h": 2.0}}))
    assert r.stall_from_s == unix(s) - 2 * H
    assert r.stall_s == 150 * MIN


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
    # the damaged page hides where the stall began: counted from no later than its record, never None
    assert r.stall_ongoing and r.stall_s is not None
    assert 90 * MIN <= r.stall_s <= r.interrogated_s - r.stall_from_s
