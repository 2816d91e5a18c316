"""Edge cases of the chunked, threaded fast decoder and the per-table clock correction.

Edge cases the refactor must keep: logs with no records, empty and partly filled pages in
the middle of a chunk (with stale records left in their unused slots), duplicate pages, a
ring that wraps inside a chunk, every page size, unknown enum values, far-out clocks,
duplicate sync points, the pages/gaps tables' times, and reads from several threads."""

from __future__ import annotations

import struct
import threading
from unittest import mock

import logfactory as lf
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import Page, fast, read_log, read_log_bytes
from parsers import format as fmt
from parsers.crc import crc32c
from parsers.decoded import empty_records
from parsers.model import clock_to_datetime
from parsers.records import RecordCode
from parsers.timebase import Segment, interp_sorted
from parsers.writer import encode_log

T0 = 759_000_000


def _dels(n: int, t: int = T0, step: int = 900, mode: str = "simple_continuous") -> list:
    return [lf.delivery(t + step * (i + 1), mode=mode) for i in range(n)]


def _history(n: int = 100) -> list:
    recs = [lf.telemetry_start(T0, T0 - 30), *_dels(n)]
    for i in range(3, len(recs), 11):
        recs.insert(i, lf.unknown(recs[i].clock + 1, code=0x70 + i % 5))
    return recs


def _recount(data: bytes, page_size: int, counts: list[int]) -> bytes:
    """Pages claim fewer records (CRC fixed): the records beyond stay in the unused slots."""
    head, pages = lf.split_pages(data, page_size)
    for i, c in enumerate(counts):
        p = bytearray(pages[i])
        p[2:4] = struct.pack("<H", c)
        p[-4:] = crc32c(bytes(p[:-4])).to_bytes(4, "little")
        pages[i] = bytes(p)
    return head + b"".join(pages)


def _layouts() -> dict[str, bytes]:
    img = lf.make_image(_history(), page_size=256, ring_slots=32, first_seq=5)
    clean = encode_log(img)
    n = len(img.pages)
    p2 = img.pages[2]
    empty = lf.make_image([], page_size=256, ring_slots=8)
    return {
        "no_pages": encode_log(empty),
        "only_empty_pages": encode_log(lf.with_pages(empty, [Page(s, s, ()) for s in range(5)])),
        "stale_slots": _recount(clean, 256, [[0, 1, 3, 7, 0, 7][i % 6] for i in range(n)]),
        "duplicate_same": encode_log(lf.with_pages(img, [*img.pages[:3], p2, *img.pages[3:]])),
        "duplicate_diff": encode_log(
            lf.with_pages(img, [*img.pages[:3], Page(p2.seq, p2.slot, p2.records[:3]), *img.pages[3:]])
        ),
        "wrap_in_chunk": encode_log(lf.make_image(_history(), page_size=256, ring_slots=5, first_seq=7)),
        "events_only": encode_log(
            lf.make_image([lf.telemetry_start(T0 + i, T0 + i - 30) for i in range(40)], ring_slots=16)
        ),
        "delivery_only": encode_log(lf.make_image(_dels(40), ring_slots=16)),
        "one_record": encode_log(lf.make_image(_dels(1), ring_slots=16)),
    }


LAYOUTS = _layouts()


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize(("chunk", "workers"), [(1, 1), (2, 3), (3, 2), (1024, 4)])
def test_edge_layouts_chunked_equal_construct(name, chunk, workers):
    data = LAYOUTS[name]
    reference = read_log_bytes(data, decoder="construct")
    with mock.patch.object(fast, "CHUNK_PAGES", chunk):
        log = read_log_bytes(data, workers=workers)
    lf.assert_same_decoding(log, reference)
    assert len(log.events) + len(log.delivery) == int(log.pages["count"].sum())
    if name == "stale_slots":  # only the claimed records, none of the stale ones
        assert set(log.delivery["offset"]) | set(log.events["offset"]) == {
            o + fmt.PAGE_HEADER_SIZE + 32 * j
            for o, c in zip(log.pages["offset"], log.pages["count"], strict=True)
            for j in range(c)
        }


@pytest.mark.parametrize("page_size", fmt.ALLOWED_PAGE_SIZES)
def test_every_page_size_wrapped_and_chunked_equals_construct(page_size):
    recs = [
        *_history(1500),
        lf.clock_set(T0 + 1501 * 900, T0 + 1501 * 900 + 3600),
        *_dels(200, T0 + 1502 * 900 + 3600),
    ]
    pages = -(-len(recs) // fmt.records_per_page(page_size))
    img = lf.make_image(recs, page_size=page_size, ring_slots=max(2, pages - 1), first_seq=3)
    data = encode_log(img)
    with mock.patch.object(fast, "CHUNK_PAGES", 1):
        log = read_log_bytes(data, workers=2)
    lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
    assert len(log.events) + len(log.delivery) == sum(len(p.records) for p in img.pages)


def test_unknown_delivery_mode_in_one_chunk_only():
    recs = [*_dels(30), *_dels(3, T0 + 10**6, mode="unknown_7"), *_dels(30, T0 + 2 * 10**6, mode="flex")]
    data = encode_log(lf.make_image(recs, page_size=256, ring_slots=32))
    with mock.patch.object(fast, "CHUNK_PAGES", 1):
        log = read_log_bytes(data, workers=3)
    lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
    mode = log.delivery["mode"]
    assert mode.cat.categories.tolist() == [
        "stopped",
        "simple_continuous",
        "flex",
        "minimum_rate",
        "unknown_7",
    ]
    assert mode.tolist() == ["simple_continuous"] * 30 + ["unknown_7"] * 3 + ["flex"] * 30


def test_unknown_event_enum_values_are_named():
    recs = [
        lf.rec(RecordCode.BOLUS_START, T0 + 1, kind="unknown_0"),
        lf.rec(RecordCode.ALARM_RAISED, T0 + 2, alarm="unknown_999"),
        lf.rec(RecordCode.PTM_REQUEST, T0 + 3, reason="unknown_77"),
        lf.rec(RecordCode.PRESCRIPTION, T0 + 5, mode="unknown_4"),
        lf.unknown(T0 + 6, code=0x0E),
        *_dels(10, T0 + 10),
    ]
    data = encode_log(lf.make_image(recs, page_size=256, ring_slots=32))
    log = read_log_bytes(data)
    lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
    ev = log.events.set_index("event", drop=False)
    assert ev.loc["bolus_start", "kind"] == "unknown_0"
    assert ev.loc["alarm_raised", "alarm"] == "unknown_999"
    assert ev.loc["ptm_request", "reason"] == "unknown_77"
    assert ev.loc["prescription", "mode"] == "unknown_4"
    assert pd.isna(ev.loc["alarm_raised", "kind"])  # a field the type lacks stays missing
    assert ev.loc["unknown_0x000e", "payload_hex"] == bytes(range(24)).hex()


# ---- far-out clocks: the implausible_time problem names the first such record -------------

FAR_HEADER = lf.make_header(pump_clock=20, programmer_clock=2**32 - 1)  # UTC = clock + ~2**32
FAR = 3_700_000_000  # clock + offset > MAX_UTC_S


@pytest.mark.parametrize(
    "tail",
    [
        [*_dels(3, FAR), lf.unknown(FAR + 5000)],  # first far record: a delivery row
        [lf.unknown(FAR), *_dels(3, FAR + 1)],  # first far record: an event row
    ],
    ids=["delivery_first", "event_first"],
)
@pytest.mark.parametrize("ring", [6, 40])
def test_implausible_time_names_the_first_far_record_in_storage_order(tail, ring):
    recs = [lf.unknown(1_000_000), *_dels(40, 1_000_000), *tail, *_dels(10, FAR + 10**6)]
    img = lf.make_image(recs, page_size=256, ring_slots=ring, first_seq=ring - 2, header=FAR_HEADER)
    data = encode_log(img)
    with mock.patch.object(fast, "CHUNK_PAGES", 2):
        log = read_log_bytes(data, workers=2)
    lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
    rows = pd.concat([log.events, log.delivery])
    far = rows[rows["time_utc"].isna()].sort_values(["page_seq", "offset"])
    assert len(far) and far["time_uncertain"].all()
    (p,) = [p for p in log.problems if p.kind == "implausible_time"]
    assert p.offset == int(far["offset"].iloc[0])
    assert p.message.startswith(f"{len(far)} records")


def test_two_sync_points_at_one_pump_clock_give_real_times():
    """Two session starts stamped with the same pump clock but different programmer
    clocks, alone in their segment (a backward jump follows): before the refactor the
    two-point shortcut divided by zero and gave those records garbage times."""
    p = T0 + 10**6
    recs = [lf.telemetry_start(p, p - 30), lf.telemetry_start(p, p - 20), *_dels(5, T0)]
    log = read_log_bytes(encode_log(lf.make_image(recs, ring_slots=16)))
    assert "implausible_time" not in {x.kind for x in log.problems}
    sessions = log.events[log.events["event"] == "telemetry_start"]
    assert sessions["time_utc"].notna().all()
    assert all(clock_to_datetime(p - 30) <= t <= clock_to_datetime(p - 20) for t in sessions["time_utc"])


# ---- tables ---------------------------------------------------------------------------------


def test_empty_log_tables_keep_the_column_types_of_a_full_one():
    """(Before the refactor an empty log's events.page_seq was int64, a full one's uint32.)"""
    empty = read_log_bytes(LAYOUTS["no_pages"])
    for full in (read_log_bytes(LAYOUTS["events_only"]), read_log_bytes(LAYOUTS["delivery_only"])):
        for table in ("events", "delivery", "pages", "gaps"):
            assert getattr(empty, table).dtypes.to_dict() == getattr(full, table).dtypes.to_dict(), table
    assert empty_records().equals(empty_records())


def _times_by_offset(log) -> pd.Series:
    rows = pd.concat([log.events[["offset", "time_utc"]], log.delivery[["offset", "time_utc"]]])
    return rows.set_index("offset")["time_utc"]


def _same_time(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b


def test_pages_and_gaps_times_are_those_of_their_records():
    """Across segments (clock set, reset, backward jump), a wrapped ring, damaged pages and
    partly filled pages, each page's first/last time and each gap's start/end are the times
    of the records that bound them in the tables."""
    recs = [lf.telemetry_start(T0, T0 - 30), *_dels(60)]
    recs += [lf.clock_set(T0 + 61 * 900, T0 + 61 * 900 + 7200), *_dels(60, T0 + 61 * 900 + 7200)]
    recs += [lf.pump_reset(100, T0 + 200 * 900), *_dels(60, 100)]
    recs += [*_dels(60, T0 - 10**6), lf.telemetry_start(T0 - 10**6 + 61 * 900, T0 - 10**6 + 61 * 900 + 50)]
    img = lf.make_image(recs, page_size=256, ring_slots=30, first_seq=11)
    data = _recount(encode_log(img), 256, [7, 7, 3, 7, 0, 7] * 5)
    head, pages = lf.split_pages(data, 256)
    for i in (4, 9, 10, 20):
        pages[i] = lf.flip_bit(pages[i], 100)
    data = head + b"".join(pages)
    with mock.patch.object(fast, "CHUNK_PAGES", 3):
        log = read_log_bytes(data, workers=2)
    lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
    t = _times_by_offset(log)
    pg = log.pages.reset_index(drop=True)
    assert pg["first_utc"].notna().sum() > 10 and len(log.gaps) >= 2
    for r in pg.itertuples():
        if r.count == 0:
            assert pd.isna(r.first_utc) and pd.isna(r.last_utc)
            continue
        assert _same_time(r.first_utc, t[r.offset + 16])
        assert _same_time(r.last_utc, t[r.offset + 16 + 32 * (r.count - 1)])
    for g in log.gaps.itertuples():
        i = int(np.flatnonzero(pg["offset"] == g.next_page_offset)[0])
        before, after = pg.iloc[i - 1], pg.iloc[i]
        want_start = t[before.offset + 16 + 32 * (before["count"] - 1)] if before["count"] else pd.NaT
        want_end = t[after.offset + 16] if after["count"] else pd.NaT
        assert _same_time(g.start_utc, want_start) and _same_time(g.end_utc, want_end)


# ---- timebase and record positions -----------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8), st.data())
def test_segment_interpolation_equals_numpy_on_full_range_and_repeated_sync_clocks(sync, data):
    """Pump clocks over the whole u32 range, offsets of +-2**32 and sync points sharing a
    pump clock (two sessions in one second): both block paths equal np.interp."""
    xs = np.array(sorted(sync), dtype=np.float64)
    offs = np.array(
        data.draw(st.lists(st.integers(-(2**32), 2**32), min_size=len(xs), max_size=len(xs))), float
    )
    extra = data.draw(st.lists(st.integers(0, 2**32 - 1), max_size=200))
    c = np.sort(np.array([*extra, *sync], dtype=np.uint32))
    want = c.astype(np.int64) + np.rint(np.interp(c, xs, offs)).astype(np.int64)
    got = c.astype(np.int64)
    interp_sorted(c, got, xs, offs)
    assert np.array_equal(got, want)
    out = np.empty(len(c), np.int64)
    Segment(0, len(c), xs, offs, False).apply(c, out)
    assert np.array_equal(out, want)
    shuffled = c[::-1].copy()  # out of order: the np.interp path
    out = np.empty(len(c), np.int64)
    Segment(0, len(c), xs, offs, False).apply(shuffled, out)
    assert np.array_equal(out, want[::-1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=60))
def test_storage_positions_of_event_and_delivery_rows(is_event):
    dec = empty_records()
    dec.event_idx = np.flatnonzero(np.array(is_event, dtype=bool)).astype(np.int64)
    dec.clock = np.zeros(len(is_event), np.uint32)
    delivery_pos = [i for i, e in enumerate(is_event) if not e]
    assert [dec.storage_position(r, events=False) for r in range(len(delivery_pos))] == delivery_pos
    assert [dec.storage_position(r, events=True) for r in range(len(dec.event_idx))] == dec.event_idx.tolist()
    positions = np.arange(len(is_event) + 1)
    want = [sum(not e for e in is_event[:p]) for p in positions]
    assert dec.delivery_starts(positions).tolist() == want


# ---- threads and buffers ---------------------------------------------------------------------


def test_concurrent_reads_on_threads_agree(tmp_path):
    path = tmp_path / "x.itblog"
    path.write_bytes(encode_log(lf.make_image(_history(600), ring_slots=90)))
    with mock.patch.object(fast, "CHUNK_PAGES", 2):
        reference = read_log(path, workers=1)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                for _ in range(3):
                    lf.assert_same_decoding(read_log(path, workers=4), reference)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


def test_bytes_like_inputs_are_released_after_a_threaded_read(tmp_path):
    data = encode_log(lf.make_image(_history(600), ring_slots=90, first_seq=40))
    path = tmp_path / "x.itblog"
    path.write_bytes(data)
    with mock.patch.object(fast, "CHUNK_PAGES", 3):
        reference = read_log(path, workers=3)
        buf = bytearray(data)
        for given_data in (data, buf, memoryview(data)):
            lf.assert_same_decoding(read_log_bytes(given_data, name=str(path), workers=3), reference)
    buf.extend(b"\0")  # no view of the caller's buffer outlives the read
    assert len(buf) == len(data) + 1


def test_chunks_finishing_out_of_order_keep_the_sequence_order(tmp_path, monkeypatch):
    """Each chunk learns where its delivery rows start from the chunk before it (there is no
    counting pass): when the first chunks are the last to finish, the rows of every chunk are
    still in their places, and the tables are the construct decoder's."""
    img = lf.make_image(_history(300), ring_slots=60, first_seq=0)
    path = tmp_path / "x.itblog"
    lf.write_image(path, img)
    reference = read_log(path, decoder="construct")
    real = fast._row_candidates
    finished: list[int] = []

    def late_first_chunks(clock, stalled, interval, q):  # runs after a chunk has passed the word on
        if q < 20:
            threading.Event().wait(0.2)
        finished.append(q)
        return real(clock, stalled, interval, q)

    monkeypatch.setattr(fast, "_row_candidates", late_first_chunks)
    monkeypatch.setattr(fast, "CHUNK_PAGES", 2)
    log = read_log(path, workers=3)
    assert finished != sorted(finished)  # the threads did finish out of order
    lf.assert_same_decoding(log, reference)
