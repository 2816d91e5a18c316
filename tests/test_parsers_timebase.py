"""Pump clock to UTC: drift interpolated between sync points, clock sets and resets as hard
boundaries, unexplained backward jumps reported and marked uncertain.  Times are checked
numerically against values computed here by hand."""

from __future__ import annotations

from fractions import Fraction

import logfactory as lf
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import LogFormatError, read_log
from parsers.model import clock_to_datetime
from parsers.timebase import interp_sorted

T0 = 700_000_000  # pump clock of the first session start (2022-03-06)
HOUR = 3600


def _read(tmp_path, image, name="t.itblog"):
    path = tmp_path / name
    lf.write_image(path, image)
    fast = read_log(path)
    lf.assert_same_decoding(fast, read_log(path, decoder="construct"))
    return path, fast


def _all_rows(log) -> pd.DataFrame:
    """Events and delivery rows in storage order, integer columns as plain int64."""
    cols = ["pump_clock", "time_utc", "time_uncertain", "offset", "code"]
    de = log.delivery.assign(code=0x10)
    rows = pd.concat([log.events[cols], de[cols]]).sort_values("offset").reset_index(drop=True)
    return rows.astype({"pump_clock": "int64", "offset": "int64", "code": "int64"})


def _utc_s(ts: pd.Timestamp) -> int:
    return int((ts - pd.Timestamp("2000-01-01", tz="UTC")).total_seconds())


def _piecewise(c: int, pts: list[tuple[int, int]]) -> Fraction:
    """Exact offset (UTC - pump) at pump clock ``c``, linear between ``pts`` = [(pump, utc)],
    constant beyond the ends."""
    xs = [p for p, _ in pts]
    offs = [Fraction(u - p) for p, u in pts]
    if c <= xs[0]:
        return offs[0]
    if c >= xs[-1]:
        return offs[-1]
    for (x0, o0), (x1, o1) in zip(
        zip(xs, offs, strict=True), zip(xs[1:], offs[1:], strict=True), strict=False
    ):
        if x0 <= c <= x1:
            return o0 + (o1 - o0) * Fraction(c - x0, x1 - x0)
    raise AssertionError("unreachable")


def test_drift_is_interpolated_between_telemetry_sync_points(tmp_path):
    t1 = T0 + 50 * HOUR  # second session: pump 100 s fast by then
    h_pump = T0 + 100 * HOUR  # interrogation: pump 200 s fast
    recs = [
        lf.delivery(T0 - 2 * HOUR),
        lf.delivery(T0 - HOUR),  # before the first sync point
        lf.telemetry_start(T0, T0, session_id=1),
    ]
    recs += [lf.delivery(T0 + k * HOUR) for k in range(1, 50)]
    recs += [lf.telemetry_start(t1, t1 - 100, session_id=2)]
    recs += [lf.delivery(T0 + k * HOUR) for k in range(51, 100)]
    header = lf.make_header(pump_clock=h_pump, programmer_clock=h_pump - 200)
    _, log = _read(tmp_path, lf.make_image(recs, header=header, ring_slots=32))
    assert log.problems == []
    rows = _all_rows(log)
    assert len(rows) == len(recs) and not rows["time_uncertain"].any()
    sync = [(T0, T0), (t1, t1 - 100), (h_pump, h_pump - 200)]
    for c, t in zip(rows["pump_clock"], rows["time_utc"], strict=True):
        exact = c + _piecewise(int(c), sync)
        assert abs(_utc_s(t) - exact) <= Fraction(1, 2), (c, t, float(exact))
    utc = dict(zip(rows["pump_clock"], rows["time_utc"].map(_utc_s), strict=True))
    # hand-computed points
    assert utc[T0 - 2 * HOUR] == T0 - 2 * HOUR  # before the first sync: its offset (0)
    assert utc[T0] == T0  # a sync point maps exactly onto the programmer's clock
    assert utc[T0 + 25 * HOUR] == T0 + 25 * HOUR - 50  # half way to the -100 s sync
    assert utc[T0 + 10 * HOUR] == T0 + 10 * HOUR - 20
    assert utc[t1] == t1 - 100
    assert utc[T0 + 75 * HOUR] == T0 + 75 * HOUR - 150  # half way to the header's -200 s
    assert utc[T0 + 99 * HOUR] == T0 + 99 * HOUR - 198
    # the pages table uses the same corrected times
    first = rows.groupby(log.pages["offset"].searchsorted(rows["offset"], side="right") - 1)
    assert log.pages["first_utc"].tolist() == first["time_utc"].first().tolist()
    assert log.pages["last_utc"].tolist() == first["time_utc"].last().tolist()


def test_clock_set_forward_splits_the_timeline(tmp_path):
    old = T0 + 10 * HOUR  # the pump was an hour slow; the programmer sets it right
    new = old + HOUR
    recs = [lf.delivery(T0 + k * HOUR) for k in range(1, 10)]
    recs += [lf.delivery(old - 60), lf.clock_set(old, new)]
    recs += [lf.delivery(new + k * HOUR) for k in range(1, 20)]
    h_pump = new + 20 * HOUR
    header = lf.make_header(pump_clock=h_pump, programmer_clock=h_pump - 20)
    path, log = _read(tmp_path, lf.make_image(recs, header=header))
    assert log.problems == []
    read_log(path, strict=True)  # a clock set is not damage
    rows = _all_rows(log)
    assert not rows["time_uncertain"].any()
    ev = log.events[log.events["event"] == "clock_set"].iloc[0]
    assert (ev["old_clock"], ev["new_clock"], ev["pump_clock"]) == (old, new, new)
    assert _utc_s(ev["time_utc"]) == new  # set from the programmer: offset 0 at the set
    for c, t in zip(rows["pump_clock"], rows["time_utc"], strict=True):
        if c < old:  # before the set: the pump ran an hour slow
            assert _utc_s(t) == c + HOUR
        else:  # after it: 0 s at the set, drifting to -20 s at the interrogation
            exact = c + _piecewise(int(c), [(new, new), (h_pump, h_pump - 20)])
            assert abs(_utc_s(t) - exact) <= Fraction(1, 2)
    assert _utc_s(rows["time_utc"].iloc[-1]) == recs[-1].clock - 19  # 19 of 20 h: -19 s
    assert log.delivery["time_utc"].is_monotonic_increasing


def test_clock_set_backwards_is_not_a_clock_reset(tmp_path):
    old = T0 + 10 * HOUR  # the pump was two hours fast
    new = old - 2 * HOUR
    recs = [lf.delivery(T0 + k * HOUR) for k in range(1, 10)] + [lf.clock_set(old, new)]
    recs += [lf.delivery(new + k * HOUR) for k in range(1, 5)]
    header = lf.make_header(pump_clock=new + 5 * HOUR, programmer_clock=new + 5 * HOUR)
    _, log = _read(tmp_path, lf.make_image(recs, header=header))
    assert log.problems == []
    rows = _all_rows(log)
    before = rows[rows["offset"] < rows.loc[rows["code"] == 0x0A, "offset"].iloc[0]]
    assert [_utc_s(t) for t in before["time_utc"]] == [c - 2 * HOUR for c in before["pump_clock"]]
    assert log.delivery["time_utc"].is_monotonic_increasing


def test_pump_reset_links_times_through_clock_before(tmp_path):
    pre = [lf.delivery(T0 + k * 900) for k in range(1, 30)]
    clock_before = pre[-1].clock + 300
    post = [lf.delivery(5 + k * 900) for k in range(1, 30)]
    h_pump, h_prog = post[-1].clock + 100, T0 + 200_000
    recs = [*pre, lf.pump_reset(5, clock_before, "low_battery"), *post]
    path, log = _read(
        tmp_path, lf.make_image(recs, header=lf.make_header(pump_clock=h_pump, programmer_clock=h_prog))
    )
    reset_offset = lf.record_offset(29 // 7, 29 % 7, 256)
    p = [q for q in log.problems if q.kind == "pump_reset"]
    assert len(p) == 1 and p[0].offset == reset_offset and p[0].severity == "warning"
    assert f"was {clock_before} s, now 5 s" in p[0].message
    assert [q.kind for q in log.problems] == ["pump_reset"]
    rows = _all_rows(log)
    assert not rows["time_uncertain"].any()  # linked, not guessed
    after = h_prog - h_pump  # offset after the reset: the header's
    reset_utc = 5 + after
    for c, t, off in zip(rows["pump_clock"], rows["time_utc"], rows["offset"], strict=True):
        if off < reset_offset:
            assert _utc_s(t) == c + (reset_utc - clock_before)
        else:
            assert _utc_s(t) == c + after
    # continuity: the last record before the reset is 300 s before it in UTC as well
    utc = rows["time_utc"].map(_utc_s).tolist()
    assert utc[29] == reset_utc and utc[28] == reset_utc - 300
    assert log.delivery["time_utc"].is_monotonic_increasing
    with pytest.raises(LogFormatError, match=f"byte {reset_offset}: pump reset"):
        read_log(path, strict=True)


def test_clock_jump_back_without_a_record(tmp_path):
    pre = [lf.delivery(T0 + k * 900) for k in range(1, 12)]
    post = [lf.delivery(100 + k * 900) for k in range(0, 12)]
    header = lf.make_header(pump_clock=post[-1].clock + 60, programmer_clock=T0 + 100_000)
    path, log = _read(tmp_path, lf.make_image([*pre, *post], header=header))
    jump_at = lf.record_offset(11 // 7, 11 % 7, 256)
    assert [p.kind for p in log.problems] == ["clock_reset"]
    p = log.problems[0]
    assert p.offset == jump_at and p.severity == "error"
    assert f"jumps back from {pre[-1].clock} s to {post[0].clock} s" in p.message
    assert str(path) in str(p) and f"byte {jump_at}:" in str(p)
    rows = _all_rows(log)
    assert rows["time_uncertain"].tolist() == [True] * 11 + [False] * 12
    after = T0 + 100_000 - header.pump_clock
    assert [_utc_s(t) for t in rows["time_utc"][11:]] == [c + after for c in rows["pump_clock"][11:]]
    assert log.damaged
    with pytest.raises(LogFormatError) as info:
        read_log(path, strict=True)
    assert str(info.value) == str(p)


def test_small_backward_stamps_are_tolerated(tmp_path):
    recs = [lf.delivery(T0 + 10), lf.rec(0x06, T0 + 8, alarm="eri"), lf.delivery(T0 + 20)]
    _, log = _read(tmp_path, lf.make_image(recs))
    # rows 10 s apart with 900 s intervals overlap (a 12.1 rule, warned); no clock problem
    assert [p.kind for p in log.problems] == ["delivery_overlap"]


def test_gap_without_sync_point_marks_times_uncertain(tmp_path):
    recs = [lf.delivery(T0 + k * 900) for k in range(1, 36)]  # no session start at all
    header = lf.make_header(pump_clock=T0 + 40 * 900, programmer_clock=T0 + 40 * 900 - 30)
    path = tmp_path / "gap.itblog"
    data = lf.write_image(path, lf.make_image(recs, header=header))
    path = lf.write_bytes(tmp_path / "gap2.itblog", lf.flip_bit(data, lf.page_offset(2, 256) + 50))
    log = read_log(path)
    lf.assert_same_decoding(log, read_log(path, decoder="construct"))
    assert [p.kind for p in log.problems] == ["bad_page_crc", "clock_uncertain", "page_gap"]
    warn = log.problems[1]
    assert warn.offset == lf.record_offset(0, 0, 256) and warn.severity == "warning"
    assert "14 records" in warn.message
    d = log.delivery
    assert d["time_uncertain"].tolist() == [True] * 14 + [False] * 14
    # the estimate borrows the neighbouring segment's offset (-30 s)
    assert [_utc_s(t) for t in d["time_utc"]] == [c - 30 for c in d["pump_clock"].astype("int64")]
    gap = log.gaps.iloc[0]
    assert gap["start_utc"] == clock_to_datetime(recs[13].clock - 30)
    assert gap["end_utc"] == clock_to_datetime(recs[21].clock - 30)


def test_out_of_range_time_is_not_wrapped(tmp_path):
    header = lf.make_header(pump_clock=0, programmer_clock=0xFFFF_FFFF)
    path = tmp_path / "far.itblog"
    lf.write_image(path, lf.make_image([lf.delivery(0xFFFF_FFFF)], header=header))
    try:
        log = read_log(path)
    except LogFormatError:
        return  # refusing the file with a clear message is acceptable
    t = log.delivery["time_utc"].iloc[0]
    assert pd.isna(t) or t.year > 2200 or log.problems, t


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=2, max_size=30, unique=True),
    st.data(),
)
def test_block_interpolation_equals_numpy_interp(sync_clocks, data):
    """The straight-line-per-stretch interpolation used for in-order blocks gives exactly
    np.interp's whole seconds, on sync points, between them and beyond both ends."""
    xs = np.array(sorted(sync_clocks), dtype=np.float64)
    offs = np.array(data.draw(st.lists(st.integers(-5000, 5000), min_size=len(xs), max_size=len(xs))), float)
    extra = data.draw(st.lists(st.integers(0, 10**6 + 1000), max_size=500))
    c = np.sort(np.array([*extra, *sync_clocks], dtype=np.uint32))
    got = c.astype(np.int64)
    interp_sorted(c, got, xs, offs)
    want = c.astype(np.int64) + np.rint(np.interp(c, xs, offs)).astype(np.int64)
    assert np.array_equal(got, want)
