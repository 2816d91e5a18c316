"""Rules of docs/log-format.md section 12 that the reader checks (issue 13, last paragraph):
a log that breaks one is read as usual and gets one warning per rule, naming the first
record that breaks it and how many do; both decoders agree; a log that keeps the rules gets
none."""

from __future__ import annotations

import dataclasses

import logfactory as lf
import pytest
from test_parsers_loss import header_for, pump_history

from parsers import LogFormatError, RecordCode, read_log_bytes
from parsers import format as fmt
from parsers.writer import encode_log

RULES = {"stalled_beyond_interval", "delivery_overlap", "prescription_step_start", "refill_outside_session"}
PS = 256
RPP = fmt.records_per_page(PS)


def _bytes(recs: list, *, first_seq: int = 0, ring_slots: int = 64) -> bytes:
    image = lf.make_image(
        recs, page_size=PS, ring_slots=ring_slots, first_seq=first_seq, header=header_for(recs)
    )
    return encode_log(image)


def _read(data: bytes):
    fast = read_log_bytes(data, "rules.itblog")
    lf.assert_same_decoding(fast, read_log_bytes(data, "rules.itblog", decoder="construct"))
    return fast


def _rules(log) -> list:
    return [p for p in log.problems if p.kind in RULES]


def _only(log, kind: str):
    found = [p for p in log.problems if p.kind == kind]
    assert len(found) == 1, [str(p) for p in log.problems]
    assert found[0].severity == "warning"
    return found[0]


def _offset(index: int) -> int:
    """Byte offset of the record at storage ``index`` (pages stored in order from seq 0)."""
    return lf.record_offset(index // RPP, index % RPP, PS)


def _index(recs: list, pred) -> int:
    return next(i for i, r in enumerate(recs) if pred(r))


def _rows(recs: list) -> list[int]:
    return [i for i, r in enumerate(recs) if r.code == RecordCode.DELIVERY]


def _with(rec, **values):
    return dataclasses.replace(rec, values={**rec.values, **values})


def test_a_log_that_keeps_the_rules_has_no_warning():
    for recs in (pump_history(60), pump_history(120, reset_at=40)):
        log = _read(_bytes(recs))
        assert _rules(log) == [] and not log.damaged


def test_stalled_longer_than_the_interval():
    recs = pump_history(60)
    rows = _rows(recs)
    for k in (rows[10], rows[20]):
        recs[k] = _with(recs[k], stalled_s=901)
    log = _read(_bytes(recs))
    p = _only(log, "stalled_beyond_interval")
    assert p.offset == _offset(rows[10]) and p.page_seq == rows[10] // RPP
    assert "2 delivery rows" in p.message and "stalled_s 901 > interval_s 900" in p.message
    assert f"byte {p.offset}:" in str(p) and "12.2" in p.message
    assert not log.damaged  # a warning: the log is read as usual
    assert len(log.delivery) == len(rows)


def test_a_row_stalled_for_its_whole_interval_keeps_the_rule():
    recs = pump_history(60)
    k = _rows(recs)[10]
    recs[k] = _with(recs[k], stalled_s=900, rotor_ml=0.0)
    assert _rules(_read(_bytes(recs))) == []


def test_rows_that_overlap_in_pump_time():
    recs = pump_history(60)
    rows = _rows(recs)
    k = rows[30]
    recs[k] = dataclasses.replace(recs[k], clock=recs[k].clock - 600)  # begins 600 s before the last ended
    log = _read(_bytes(recs))
    p = _only(log, "delivery_overlap")
    assert p.offset == _offset(k) and "1 delivery row" in p.message and "12.1" in p.message


@pytest.mark.parametrize("jitter", [-2, -1, 1, 2])
def test_stamps_a_second_or_two_off_are_no_overlap(jitter):
    recs = pump_history(60)
    for n, k in enumerate(_rows(recs)):
        if n % 3 == 1:
            recs[k] = dataclasses.replace(recs[k], clock=recs[k].clock + jitter)
    assert _rules(_read(_bytes(recs))) == []


def test_a_hole_between_rows_is_no_overlap():
    recs = pump_history(60)
    k = _rows(recs)[30]
    recs[k:] = [dataclasses.replace(r, clock=r.clock + 1800) for r in recs[k:-1]] + [recs[-1]]
    assert _rules(_read(_bytes(recs))) == []


def _set_back(recs: list, k: int, by: int, *, with_clock_set: bool) -> list:
    """Records from ``k`` on stamped ``by`` seconds earlier, after a clock set back (or not)."""
    t = recs[k - 1].clock
    shifted = [dataclasses.replace(r, clock=r.clock - by) for r in recs[k:]]
    last = shifted[-1]
    shifted[-1] = lf.telemetry_start(last.clock, last.clock - 30, session_id=last.values["session_id"])
    return [*recs[:k], *([lf.clock_set(t + 10, t + 10 - by)] if with_clock_set else []), *shifted]


def test_overlap_is_checked_within_a_clock_segment_only():
    """A clock set starts a new segment: rows on either side are not compared."""
    recs = pump_history(60)
    k = _rows(recs)[30]
    assert _rules(_read(_bytes(_set_back(recs, k, 600, with_clock_set=True)))) == []
    # the same rows without the clock set: the row after begins 600 s before the last ended
    log = _read(_bytes(_set_back(recs, k, 600, with_clock_set=False)))
    p = _only(log, "delivery_overlap")
    assert p.offset == _offset(k)
    # a jump back by more than the interval is a clock reset (a new segment), not an overlap
    log = _read(_bytes(_set_back(recs, k, 3000, with_clock_set=False)))
    assert "clock_reset" in {q.kind for q in log.problems} and _rules(log) == []


def test_no_overlap_across_a_page_gap():
    recs = pump_history(60)
    rows = _rows(recs)
    k = next(i for i in rows if i % RPP == 0 and i > 20)  # first record of a page
    recs[k] = dataclasses.replace(recs[k], clock=recs[k].clock - 600)
    data = _bytes(recs)
    assert "delivery_overlap" in {p.kind for p in _read(data).problems}
    # damage the page before it: the rows are in different segments now
    damaged = lf.flip_bit(data, lf.page_offset(k // RPP - 1, PS) + 40)
    assert "delivery_overlap" not in {p.kind for p in _read(damaged).problems}


def test_step_start_in_a_non_flex_prescription():
    recs = pump_history(60)
    k = _index(recs, lambda r: r.code == RecordCode.PRESCRIPTION)
    recs[k] = _with(recs[k], step_start_min=120)
    p = _only(_read(_bytes(recs)), "prescription_step_start")
    assert p.offset == _offset(k) and "step_start_min 120" in p.message and "12.4" in p.message


def test_flex_steps_may_start_anywhere():
    recs = pump_history(60)
    k = _index(recs, lambda r: r.code == RecordCode.PRESCRIPTION)
    t = recs[k].clock
    steps = [
        lf.rec(
            RecordCode.PRESCRIPTION,
            t,
            mode="flex",
            step=i,
            step_count=2,
            daily_dose_mcg_day=150.0,
            rate_ml_day=0.075,
            concentration_mcg_ml=2000.0,
            step_start_min=start,
        )
        for i, start in enumerate((360, 1200))
    ]
    assert _rules(_read(_bytes([*recs[:k], *steps, *recs[k + 1 :]]))) == []


def _refill_outside(recs: list) -> tuple[list, int]:
    """The refill moved out of its session, to just after its ``telemetry_end``."""
    k = _index(recs, lambda r: r.code == RecordCode.REFILL)
    refill, end = recs[k], recs[k + 1]
    assert end.code == RecordCode.TELEMETRY_END
    out = [*recs[:k], end, dataclasses.replace(refill, clock=end.clock + 60), *recs[k + 2 :]]
    return out, k + 1


def test_refill_outside_a_session():
    recs, k = _refill_outside(pump_history(60))
    p = _only(_read(_bytes(recs)), "refill_outside_session")
    assert p.offset == _offset(k) and "1 refill record" in p.message and "12.8" in p.message


def test_refill_in_the_interrogating_session_keeps_the_rule():
    recs = pump_history(60)
    ts = recs[-1]
    refill = recs[_index(recs, lambda r: r.code == RecordCode.REFILL)]
    recs.append(dataclasses.replace(refill, clock=ts.clock))
    last = lf.telemetry_start(ts.clock, ts.values["programmer_clock"], session_id=99)
    recs.insert(len(recs) - 1, last)  # keep header_for's interrogating session the last record
    recs[-1], recs[-2] = recs[-2], recs[-1]
    assert _rules(_read(_bytes(recs))) == []


def test_refill_after_a_lost_session_start_is_not_reported():
    """The session's start lost to a page gap, or to the ring before the history starts: the
    session state is unknown, so nothing is said (docs/log-format.md 12.8)."""
    recs = pump_history(60)
    k = _index(recs, lambda r: r.code == RecordCode.REFILL)
    refill = recs.pop(k)  # now at k the session's telemetry_end
    end = k
    later = end + 2 * RPP  # a refill two pages later, outside any session
    recs.insert(later, dataclasses.replace(refill, clock=recs[later - 1].clock + 1))
    data = _bytes(recs)
    p = _only(_read(data), "refill_outside_session")
    assert p.offset == _offset(later)
    # the page that held the telemetry_end is damaged: after the gap nothing is known
    log = _read(lf.flip_bit(data, lf.page_offset(end // RPP, PS) + 40))
    assert "page_gap" in {q.kind for q in log.problems} and _rules(log) == []
    # a wrapped ring: the history does not start at the pump's first page and begins with a
    # refill whose session start was overwritten; from the pump's first page on, the same
    # refill would be outside any session
    recs = pump_history(60)
    cut = recs[_index(recs, lambda r: r.code == RecordCode.REFILL) :]
    assert _rules(_read(_bytes(cut, first_seq=5))) == []
    assert "refill_outside_session" in {q.kind for q in _rules(_read(_bytes(cut)))}


def test_strict_mode_raises_on_a_broken_rule():
    recs = pump_history(60)
    k = _rows(recs)[10]
    recs[k] = _with(recs[k], stalled_s=901)
    data = _bytes(recs)
    with pytest.raises(LogFormatError, match="stood still longer"):
        read_log_bytes(data, strict=True)


def test_rule_warnings_come_after_the_damage():
    recs = pump_history(60)
    k = _rows(recs)[10]
    recs[k] = _with(recs[k], stalled_s=901)
    data = lf.flip_bit(_bytes(recs), lf.page_offset(5, PS) + 40)
    kinds = [p.kind for p in _read(data).problems]
    assert kinds[-1] == "stalled_beyond_interval" and "bad_page_crc" in kinds


def test_random_logs_agree_across_decoders():
    """Random records break the rules every which way; the decoders report the same."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(image=lf.log_images(max_records=60))
    def run(image):
        data = encode_log(image)
        lf.assert_same_decoding(read_log_bytes(data), read_log_bytes(data, decoder="construct"))

    run()


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_decoder_finds_the_rows_at_chunk_seams(workers):
    """The fast decoder flags rows chunk by chunk, while they are in cache; a row that opens
    a chunk is checked against the last row of the chunk before (here: chunks of 2 pages,
    some holding no delivery row at all).  The construct decoder finds the same."""
    from unittest import mock

    from parsers import fast

    recs = pump_history(120)
    rows = _rows(recs)
    seams = [k for k in rows if k % (2 * RPP) == 0][1:5]  # rows that open a chunk
    for k in seams:
        recs[k] = dataclasses.replace(recs[k], clock=recs[k].clock - 600)
    for k in rows[5::17]:
        recs[k] = _with(recs[k], stalled_s=1000)
    events = [lf.rec(RecordCode.ALARM_CLEARED, recs[-2].clock + 1, alarm="eri")] * (2 * RPP)
    recs[-1:-1] = events  # a chunk of events only, before the last row
    recs.insert(
        len(recs) - 1, lf.delivery(recs[-2].clock + 299, interval_s=900)
    )  # overlaps the row before the events
    data = _bytes(recs, ring_slots=256)
    with mock.patch.object(fast, "CHUNK_PAGES", 2):
        log = read_log_bytes(data, workers=workers)
    lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
    overlap = _only(log, "delivery_overlap")
    assert overlap.offset == _offset(seams[0]) and f"{len(seams) + 1} delivery rows" in overlap.message
    stalled = _only(log, "stalled_beyond_interval")
    assert stalled.offset == _offset(rows[5]) and f"{len(rows[5::17])} delivery rows" in stalled.message
