"""Independent tests of the check's ``stall`` key, written from the documentation only.

Sources: docs/check-json.md (``stall``: minutes / ongoing / from; ``summary``, ``reasons``,
verdict rules), docs/clinical-rules.md (``lookback_h``) and docs/log-format.md section 12
(delivery rows, stall records, the status snapshot, sessions).  Logs are hand-built with
``tests/logbuilder.py``; the analysis sources were not read.

Every log: a 480 mcg/day program, 10-minute delivery rows (so unrecorded stalls aligned to
10-minute boundaries are placed exactly by the rows), 256-byte pages (about an hour of rows
each, so one damaged page removes about an hour), an MRI from day 1 10:00 to 11:00 UTC and
the interrogation at 13:00 UTC (2 h after the MRI ended), with the interrogating session's
``telemetry_start`` (12.7).  The stall window ``from`` is then 09:00 UTC (lookback_h = 1).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from logbuilder import LogBuilder

from analysis.check import check
from clinical.rules import get_rules
from parsers import RecordCode, read_log

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
IV = 600
MIN = 60


def utc(clock: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=clock)


def builder(**kw: Any) -> LogBuilder:
    b = LogBuilder(interval_s=IV, page_size=256, ring_slots=4096, **kw)
    b.program(b.t(minutes=1), 480.0)
    return b


def times(b: LogBuilder) -> tuple[int, int, int]:
    """MRI start, MRI end, interrogation."""
    return b.t(days=1, hours=10), b.t(days=1, hours=11), b.t(days=1, hours=13)


def at(b: LogBuilder, hh: int, mm: int = 0) -> int:
    """A time on day 1 (the procedure's day)."""
    return b.t(days=1, hours=hh, minutes=mm)


def damage_page_within(path: Path, lo: int, hi: int) -> None:
    """Flip a byte inside one page whose rows lie wholly in [lo, hi] (ITB clock, UTC)."""
    pages = read_log(path).pages
    for _, row in pages.iterrows():
        first = row.first_utc.to_pydatetime() - dt.timedelta(seconds=IV)  # the first row's start
        last = row.last_utc.to_pydatetime()
        if utc(lo) <= first and last <= utc(hi):
            data = bytearray(path.read_bytes())
            data[int(row.offset) + 40] ^= 0xFF
            path.write_bytes(bytes(data))
            assert read_log(path).damaged
            return
    raise AssertionError(f"no page wholly inside {utc(lo)}..{utc(hi)}:\n{pages}")


def run(b: LogBuilder, tmp_path: Path, *, start: int | None = None, end: int | None = None,
        until: int | None = None, status: dict[str, Any] | None = None,
        damage: tuple[int, int] | None = None, rules: Any = None,
        name: str = "log") -> dict[str, Any]:
    s0, e0, u0 = times(b)
    start = s0 if start is None else start
    end = e0 if end is None else end
    until = u0 if until is None else until
    b.event(until, RecordCode.TELEMETRY_START, session_id=900, programmer_clock=until)
    path = b.write(tmp_path / f"{name}.itblog", until, status=status)
    if damage is not None:
        damage_page_within(path, *damage)
    kw = {"rules": rules} if rules is not None else {}
    return check(read_log(path), "mri", utc(end), utc(start), **kw).to_dict()


def text(d: dict[str, Any], key: str) -> str:
    return " ".join(d[key]).lower()


def from_time(d: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(d["stall"]["from"])


STALLED = {"motor_state": "stalled", "active_alarms": ("motor_stall",)}


# ----- stalls that began before the window ------------------------------------------------
def test_stall_began_before_window_still_going_counts_from_own_start(tmp_path: Path) -> None:
    """check-json `stall.minutes`: a stall that began before `from` is counted whole, to the
    interrogation when still going; `ongoing` true; URGENT (pump not delivering now)."""
    b = builder()
    b.stall(at(b, 7, 30), None, recovery_at=None)
    d = run(b, tmp_path, status=STALLED)
    s, _, _ = times(b)
    assert from_time(d) == utc(s) - dt.timedelta(hours=1)
    assert d["stall"]["minutes"] == pytest.approx(330.0, abs=0.1)  # 07:30 -> 13:00
    assert d["stall"]["ongoing"] is True
    assert d["verdict"] == "URGENT"
    assert d["reasons"]
    # "as the summary tells it": the summary dates the stall from its own start
    assert "2024-03-02 07:30" in " ".join(d["summary"])


def test_unrecorded_stall_before_window_still_going(tmp_path: Path) -> None:
    """Seen only in the rows (record=False), began 07:30, reaches the last row: still going
    (12.12 'the end of the history is not a recovery'), counted from its own start."""
    b = builder()
    b.stall(at(b, 7, 30), None, record=False)
    d = run(b, tmp_path, status=STALLED)
    assert d["stall"]["minutes"] == pytest.approx(330.0, abs=0.1)
    assert d["stall"]["ongoing"] is True
    assert d["verdict"] == "URGENT"


def test_stall_began_before_window_recovered_inside_counted_whole(tmp_path: Path) -> None:
    b = builder()
    b.stall(at(b, 8, 0), at(b, 10, 30))
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == pytest.approx(150.0, abs=0.1)
    assert d["stall"]["ongoing"] is False
    assert d["verdict"] != "OK"


def test_stall_entirely_before_window_complete_history_is_zero(tmp_path: Path) -> None:
    b = builder()
    b.stall(at(b, 5, 0), at(b, 6, 30))
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == 0
    assert d["stall"]["ongoing"] is False
    assert "no motor stall" in text(d, "summary") or "no stall" in text(d, "summary")


# ----- no stall -----------------------------------------------------------------------------
def test_no_stall_complete_history_is_zero_and_summary_says_none(tmp_path: Path) -> None:
    b = builder()
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == 0
    assert d["stall"]["minutes"] is not None
    assert d["stall"]["ongoing"] is False
    summary = text(d, "summary")
    assert "no motor stall" in summary or "no stall" in summary
    assert "cannot be ruled out" not in summary
    assert d["verdict"] == "OK"
    assert d["reasons"] == []
    assert d["missed_mcg"] == pytest.approx(0.0, abs=0.1)


# ----- incomplete history: null -------------------------------------------------------------
def _assert_cannot_rule_out(d: dict[str, Any]) -> None:
    assert d["stall"]["minutes"] is None
    assert d["stall"]["ongoing"] is False  # "false when minutes is null"
    assert "cannot be ruled out" in text(d, "summary")
    assert d["verdict"] != "OK"
    assert d["reasons"]


def test_damaged_page_inside_window_is_null(tmp_path: Path) -> None:
    b = builder()
    d = run(b, tmp_path, damage=(at(b, 10, 0), at(b, 12, 30)))
    _assert_cannot_rule_out(d)
    assert d["missed_mcg"] is None


def test_damaged_page_in_lookback_hour_is_null(tmp_path: Path) -> None:
    """The lookback hour (09:00-10:00) before the MRI is part of the window."""
    b = builder()
    d = run(b, tmp_path, damage=(at(b, 8, 0), at(b, 10, 0)))
    _assert_cannot_rule_out(d)
    # "part of the history from lookback_h before the procedure start ... is missing": REVIEW
    assert d["verdict"] == "REVIEW"


def test_damaged_page_before_window_keeps_zero(tmp_path: Path) -> None:
    """Damage wholly before `from` leaves the window's history complete: 0, not null."""
    b = builder()
    d = run(b, tmp_path, damage=(at(b, 4, 0), at(b, 7, 0)))
    assert d["stall"]["minutes"] == 0
    assert d["stall"]["minutes"] is not None
    stall_lines = [s.lower() for s in d["summary"] if "stall" in s.lower()]
    assert stall_lines and not any("cannot be ruled out" in s for s in stall_lines)


# Failed before the fix (found by this file): the verdict was OK with no reason although the
# history began inside the lookback hour; check-json.md's verdict rules and log-format.md 12.12
# ask for REVIEW when history from `[check] lookback_h` before the procedure is missing.
def test_history_starting_after_window_opens_is_null(tmp_path: Path) -> None:
    """History starts 30 min after `from` (and before the MRI): it does not reach back."""
    b = builder()
    s = b.t(minutes=30)  # `from` = start - 1 h = 30 min before the history began
    d = run(b, tmp_path, start=s, end=s + 3600, until=s + 3 * 3600)
    _assert_cannot_rule_out(d)
    assert d["verdict"] == "REVIEW"


# Failed before the fix (found by this file): a wrapped ring whose oldest row starts at 09:20,
# after `from` (09:00), gave minutes 0, "No motor stall was found" and OK: the check looked at
# the hour the first row falls in, not the row's own start.
def test_wrapped_ring_oldest_row_after_from_is_null(tmp_path: Path) -> None:
    b = builder()
    b.ring_slots = 4
    d = run(b, tmp_path)
    first = read_log(tmp_path / "log.itblog").pages.first_utc.min().to_pydatetime()
    s, _, _ = times(b)
    # precondition: the oldest row kept starts after `from` but before the MRI
    assert utc(s) - dt.timedelta(hours=1) < first - dt.timedelta(seconds=IV) < utc(s)
    _assert_cannot_rule_out(d)
    assert d["verdict"] == "REVIEW"


def test_wrapped_ring_reaching_back_to_from_is_zero(tmp_path: Path) -> None:
    """Control for the test above: 5 slots keep rows from 08:10, before `from`."""
    b = builder()
    b.ring_slots = 5
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == 0
    assert d["verdict"] == "OK"


def test_history_starting_after_procedure_start_is_null(tmp_path: Path) -> None:
    b = builder()
    s = b.t(minutes=-30)
    d = run(b, tmp_path, start=s, end=s + 3600, until=s + 3 * 3600)
    _assert_cannot_rule_out(d)
    assert d["missed_mcg"] is None


def test_stall_found_in_incomplete_history_is_counted(tmp_path: Path) -> None:
    """'When a stall was found in an incomplete history, it is counted ... the reasons say
    the history is incomplete'."""
    b = builder()
    b.stall(at(b, 10, 10), at(b, 10, 40))
    d = run(b, tmp_path, damage=(at(b, 8, 0), at(b, 10, 0)))
    assert d["stall"]["minutes"] == pytest.approx(30.0, abs=0.1)
    assert d["stall"]["ongoing"] is False
    assert d["verdict"] != "OK"
    assert any("missing" in r or "damaged" in r or "incomplete" in r for r in d["reasons"])


# ----- two stalls, recorded and unrecorded --------------------------------------------------
def test_two_stalls_recorded_and_unrecorded_disjoint_are_added(tmp_path: Path) -> None:
    b = builder()
    b.stall(at(b, 10, 10), at(b, 10, 40))  # recorded, 30 min
    b.stall(at(b, 11, 20), at(b, 11, 50), record=False)  # rows only, 30 min
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == pytest.approx(60.0, abs=0.1)
    assert d["stall"]["ongoing"] is False
    assert d["verdict"] != "OK"


def test_two_stalls_overlapping_counted_as_union(tmp_path: Path) -> None:
    """Recorded 10:10-10:40 and rows-only 10:30-11:00: the union is 50 min, not 60."""
    b = builder()
    b.stall(at(b, 10, 10), at(b, 10, 40))
    b.stall(at(b, 10, 30), at(b, 11, 0), record=False)
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == pytest.approx(50.0, abs=0.1)
    assert d["stall"]["ongoing"] is False


def test_recorded_stall_before_window_and_unrecorded_ongoing(tmp_path: Path) -> None:
    """One recorded stall wholly before the window (not counted) and one rows-only stall
    from 12:00 still going at the interrogation (status stalled)."""
    b = builder()
    b.stall(at(b, 6, 0), at(b, 6, 30))
    b.stall(at(b, 12, 0), None, record=False)
    d = run(b, tmp_path, status=STALLED)
    assert d["stall"]["minutes"] == pytest.approx(60.0, abs=0.1)
    assert d["stall"]["ongoing"] is True
    assert d["verdict"] == "URGENT"


# ----- recovery not logged ------------------------------------------------------------------
def test_stall_without_recovery_record_but_rows_deliver_again(tmp_path: Path) -> None:
    """12.2: a delayed recovery record; the rows show the rotor turning from 10:40, status
    `running` with the motor_stall alarm bit still set.  12.12 item 4: the stall is open
    only while no later row shows the rotor turning, so it ended at 10:40: 30 min, not
    ongoing; `stall_recovery_unlogged` gives REVIEW."""
    b = builder()
    b.stall(at(b, 10, 10), at(b, 10, 40), recovery_at=None)
    d = run(b, tmp_path, status={"motor_state": "running", "active_alarms": ("motor_stall",)})
    assert d["stall"]["minutes"] == pytest.approx(30.0, abs=0.1)
    assert d["stall"]["ongoing"] is False
    assert d["verdict"] == "REVIEW"
    assert any("not logged" in r for r in d["reasons"])


def test_recorded_stall_reaching_last_row_with_status_running_is_ongoing(tmp_path: Path) -> None:
    """Verdict rules: a stall that reaches the last row with no later recovery is still
    going; a status `running` does not clear it."""
    b = builder()
    b.stall(at(b, 11, 30), None, recovery_at=None)
    d = run(b, tmp_path, status={"motor_state": "running", "active_alarms": ("motor_stall",)})
    assert d["stall"]["minutes"] == pytest.approx(90.0, abs=0.1)
    assert d["stall"]["ongoing"] is True
    assert d["verdict"] == "URGENT"


def test_status_only_stall_dated_from_last_delivering_row(tmp_path: Path) -> None:
    """12.12 item 5: rows deliver to the last row (13:00), status says stalled at 13:05:
    the stall is dated from the last row that shows delivery: 5 min, ongoing, URGENT."""
    b = builder()
    until = at(b, 13, 5)
    d = run(b, tmp_path, until=until, status=STALLED)
    assert d["stall"]["minutes"] == pytest.approx(5.0, abs=0.1)
    assert d["stall"]["ongoing"] is True
    assert d["verdict"] == "URGENT"


# ----- ongoing false when every stall recovered ----------------------------------------------
def test_ongoing_false_when_every_stall_recovered(tmp_path: Path) -> None:
    b = builder()
    b.stall(at(b, 9, 20), at(b, 9, 40))
    b.stall(at(b, 10, 20), at(b, 10, 50))
    b.stall(at(b, 12, 0), at(b, 12, 10), record=False)
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == pytest.approx(60.0, abs=0.1)
    assert d["stall"]["ongoing"] is False
    assert d["verdict"] != "URGENT" or not any("still stalled" in r for r in d["reasons"])


# ----- lookback_h ----------------------------------------------------------------------------
LOOKBACK2 = {"check": {"lookback_h": 2.0}}


def test_lookback_2h_moves_from_and_counts_earlier_stall(tmp_path: Path) -> None:
    """A stall 08:10-08:40 is outside the default window (from 09:00), inside lookback 2 h."""
    b1 = builder()
    b1.stall(at(b1, 8, 10), at(b1, 8, 40))
    d1 = run(b1, tmp_path, name="l1")
    assert d1["stall"]["minutes"] == 0
    b2 = builder()
    b2.stall(at(b2, 8, 10), at(b2, 8, 40))
    d2 = run(b2, tmp_path, rules=get_rules(LOOKBACK2), name="l2")
    s, _, _ = times(b2)
    assert from_time(d2) == utc(s) - dt.timedelta(hours=2)
    assert from_time(d1) == utc(s) - dt.timedelta(hours=1)
    assert d2["stall"]["minutes"] == pytest.approx(30.0, abs=0.1)
    assert d2["stall"]["ongoing"] is False


def test_lookback_2h_damage_in_the_extra_hour_is_null(tmp_path: Path) -> None:
    """Damage 07:00-08:10: before the default window, inside the 2 h lookback."""
    b1 = builder()
    d1 = run(b1, tmp_path, damage=(at(b1, 7, 0), at(b1, 8, 50)), name="d1")
    assert d1["stall"]["minutes"] == 0
    b2 = builder()
    d2 = run(b2, tmp_path, damage=(at(b2, 7, 0), at(b2, 8, 50)),
             rules=get_rules(LOOKBACK2), name="d2")
    _assert_cannot_rule_out(d2)


# ----- edges ---------------------------------------------------------------------------------
def test_stall_straddling_from_counted_whole(tmp_path: Path) -> None:
    """08:30-09:10 touches the window (from 09:00): counted from its own start, 40 min."""
    b = builder()
    b.stall(at(b, 8, 30), at(b, 9, 10))
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == pytest.approx(40.0, abs=0.1)
    assert d["stall"]["ongoing"] is False


def test_recovery_made_by_the_interrogation(tmp_path: Path) -> None:
    """12.2: a recovery stamped at the interrogating session's telemetry_start was made by
    it; the pump was not delivering up to it: 10:10 -> 13:00 = 170 min; verdict rules give
    at least REVIEW ('delivery restarted only at this interrogation')."""
    b = builder()
    _, _, u = times(b)
    b.stall(at(b, 10, 10), u, recovery_at=u)
    d = run(b, tmp_path)
    assert d["stall"]["minutes"] == pytest.approx(170.0, abs=0.1)
    assert d["verdict"] != "OK"
