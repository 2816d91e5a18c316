"""Decode tests written from docs/log-format.md alone: every log is built byte by byte with struct
and CRC-32C as sections 3-6 and 8 define it (the builder is checked against the worked example of
section 9), and every expectation is the document's (values 6, 11.3; order 5.3; clocks 7; problems 11).
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pandas as pd
import pytest
from crc32c import crc32c

import parsers

UNIX = 946_684_800  # section 1: Unix time = ITB clock + 946 684 800
MAGIC = b"\x89ITB\r\n\x1a\n"
T0 = 825_000_000    # pump clock of the first row in most logs below
OFF = -30           # the pump is 30 s fast: UTC = pump clock - 30
U32 = 0xFFFFFFFF

# ---------------------------------------------------------------- the builder (sections 3-6, 8)


def asc(text: str, width: int) -> bytes:
    return text.encode("ascii").ljust(width, b"\0")


def header(*, page_size=256, ring_slots=4, page_count=1, pump_clock=0, programmer_clock=0,
           version_minor=1, model_ml=20, serial="NGP123456H", firmware="8637-2.1",
           implant_days=18_793, programmer_id="PRG-0001") -> bytes:
    body = (MAGIC + struct.pack("<BBHHHHBBII", 1, version_minor, 128, 256, page_size, 32,
                                model_ml, 0, ring_slots, page_count)
            + asc(serial, 16) + asc(firmware, 12)
            + struct.pack("<iII", implant_days, pump_clock, programmer_clock)
            + asc(programmer_id, 16) + bytes(40))
    assert len(body) == 124
    return body + struct.pack("<I", crc32c(body))


def status(*, reservoir_nl=12_500_000, low_nl=2_000_000, drug="baclofen", conc_milli=2_000_000,
           mode=1, flex_step_count=0, motor=0, battery=0, daily_ng=200_000, rate_nl=100_000,
           active_alarms=0, ring=None) -> bytes:
    """``ring`` = (ring_last_seq, ring_pages, ring_last_count) or None (a 1.0 status)."""
    body = (struct.pack("<II", reservoir_nl, low_nl) + asc(drug, 16)
            + struct.pack("<IBBBBIIBBHIIII", conc_milli, mode, flex_step_count, motor, battery,
                          daily_ng, rate_nl, 0, 0, 0, 0, active_alarms, 0, 0)
            + bytes(13 * 12))
    assert len(body) == 216
    body += struct.pack("<IIHB", *ring, 1) if ring else bytes(11)
    body += bytes(25)
    return body + struct.pack("<I", crc32c(body))


# payload layout of each record type (6.2), from payload offset 0; the rest is zero padding
PAYLOAD = {0x01: "<BBBBIIIH", 0x02: "<BBHIII", 0x04: "<BBHI", 0x05: "<IIIII", 0x06: "<HHI", 0x07: "<HHI",
           0x0A: "<II", 0x0B: "<BBHI", 0x0C: "<II", 0x0D: "<I", 0x10: "<IIIIIBBH"}


def rec(clock: int, code: int, *fields, raw: bytes = b"", aux: int = 0) -> bytes:
    payload = struct.pack(PAYLOAD[code], *fields) if fields else raw
    return struct.pack("<IHH", clock, code, aux) + payload.ljust(24, b"\0")


def delivery(clock, interval_s=3600, commanded_nl=4167, rotor_nl=4160, stalled_s=0,
             reservoir_nl=12_500_000, mode=1, flags=0, reserved=0, aux=0) -> bytes:
    return rec(clock, 0x10, interval_s, commanded_nl, rotor_nl, stalled_s, reservoir_nl, mode, flags,
               reserved, aux=aux)


def telemetry_start(clock, session_id, programmer_clock) -> bytes:
    return rec(clock, 0x0C, session_id, programmer_clock)


def page(seq: int, records: list[bytes], *, ring_slots: int, page_size=256, slot=None,
         count=None, fill: bytes | None = None) -> bytes:
    rpp = (page_size - 20) // 32
    assert len(records) <= rpp
    body = struct.pack("<HHIII", 0x4750, len(records) if count is None else count,
                       seq % ring_slots if slot is None else slot, seq, 0) + b"".join(records)
    body += (fill or b"").ljust(page_size - 4 - len(body), b"\xff")[: page_size - 4 - len(body)]
    return body + struct.pack("<I", crc32c(body))


def assemble(pages: list[bytes], *, slots: int, clock: int, ring, off=None, ps=256) -> bytes:
    """Header (interrogation at pump ``clock``, UTC ``clock + off``), status with ``ring``, pages."""
    off = OFF if off is None else off
    return (header(page_size=ps, ring_slots=slots, page_count=len(pages), pump_clock=clock,
                   programmer_clock=clock + off) + status(ring=ring) + b"".join(pages))


def paged(recs, slots, first=0):
    """Pages seq first, first+1, ... of 7 records (256-byte pages), in seq order."""
    return [page(first + i, c, ring_slots=slots) for i, c in enumerate(split(recs))]


def split(recs, rpp=7):
    return [recs[i:i + rpp] for i in range(0, len(recs), rpp)]


def utc(clock: int) -> pd.Timestamp:
    return pd.Timestamp((clock + UNIX) * 1_000_000_000, tz="UTC")


def problems(log) -> list[tuple]:
    return sorted((p.kind, p.severity) for p in log.problems)


def by_kind(log, kind):
    return [p for p in log.problems if p.kind == kind]


def offsets(log_table) -> list[int]:
    return [int(x) for x in log_table["offset"]]


def both(data: bytes, name="t.itblog", **kw):
    """Read with the fast decoder (one thread and several) and the construct decoder; the document
    (11) says they give identical results: check it here on every log, and return the fast one."""
    logs = [parsers.read_log_bytes(data, name, decoder="fast", workers=1, **kw),
            parsers.read_log_bytes(data, name, decoder="fast", workers=3, **kw),
            parsers.read_log_bytes(data, name, decoder="construct", **kw)]
    for other in logs[1:]:
        assert_same(logs[0], other)
    return logs[0]


def assert_same(a, b):
    for table in ("delivery", "events", "pages", "gaps"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), check_exact=True)
    key = [(p.kind, p.severity, p.offset, p.page_seq, p.last_seq, p.length, p.message) for p in a.problems]
    assert key == [(p.kind, p.severity, p.offset, p.page_seq, p.last_seq, p.length, p.message)
                   for p in b.problems]
    assert a.header == b.header and a.status == b.status and a.damaged == b.damaged


# ----------------------------------------------------------------------- 9. the worked example

HEXDUMP = """
00000000  89 49 54 42 0d 0a 1a 0a  01 01 80 00 00 01 00 01
00000010  20 00 14 00 04 00 00 00  01 00 00 00 4e 47 50 31
00000020  32 33 34 35 36 48 00 00  00 00 00 00 38 36 33 37
00000030  2d 32 2e 31 00 00 00 00  69 49 00 00 94 11 38 31
00000040  6a 11 38 31 50 52 47 2d  30 30 30 31 00 00 00 00
00000050  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
*
00000070  00 00 00 00 00 00 00 00  00 00 00 00 31 a9 f7 24
00000080  20 bc be 00 80 84 1e 00  62 61 63 6c 6f 66 65 6e
00000090  00 00 00 00 00 00 00 00  80 84 1e 00 01 00 00 00
000000a0  40 0d 03 00 a0 86 01 00  00 00 00 00 00 00 00 00
000000b0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
*
00000150  00 00 00 00 00 00 00 00  00 00 00 00 01 00 00 00
00000160  02 00 01 00 00 00 00 00  00 00 00 00 00 00 00 00
00000170  00 00 00 00 00 00 00 00  00 00 00 00 d9 ee 3b 5b
00000180  50 47 02 00 00 00 00 00  00 00 00 00 00 00 00 00
00000190  10 0e 38 31 0c 00 00 00  07 00 00 00 e8 0d 38 31
000001a0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
000001b0  30 11 38 31 10 00 00 00  10 0e 00 00 47 10 00 00
000001c0  40 10 00 00 00 00 00 00  20 bc be 00 01 00 00 00
000001d0  ff ff ff ff ff ff ff ff  ff ff ff ff ff ff ff ff
*
00000270  ff ff ff ff ff ff ff ff  ff ff ff ff 88 f3 03 06
00000280
"""


def from_hexdump(text: str) -> bytes:
    out, last = bytearray(), b""
    for line in text.strip().splitlines():
        if line == "*":
            continue
        addr, _, rest = line.partition("  ")
        while len(out) < int(addr, 16):  # a '*' line: repeats of the line above
            out += last
        if rest:
            last = bytes.fromhex(rest.replace("  ", " "))
            out += last
    return bytes(out)


def tiny(version_minor=1) -> bytes:
    ring = (0, 1, 2) if version_minor else None
    return (header(page_size=256, ring_slots=4, page_count=1, pump_clock=825_758_100,
                   programmer_clock=825_758_058, version_minor=version_minor)
            + status(ring=ring)
            + page(0, [telemetry_start(825_757_200, 7, 825_757_160),
                       delivery(825_758_000, 3600, 4167, 4160, 0, 12_500_000, 1)], ring_slots=4))


def test_builder_reproduces_the_worked_example_byte_for_byte():
    expected = from_hexdump(HEXDUMP)
    assert len(expected) == 640
    assert tiny() == expected
    assert crc32c(b"123456789") == 0xE3069283
    # 9.3: the 1.0 variant differs in byte 9, the ring bytes and the two CRCs
    old = tiny(version_minor=0)
    assert old[9] == 0 and old[0x158:0x163] == bytes(11)
    assert old[0x7C:0x80] == bytes.fromhex("07462bf2") and old[0x17C:0x180] == bytes.fromhex("84daf40a")
    assert old[0x180:] == expected[0x180:]


def test_worked_example_decodes_as_section_9_5(tmp_path):
    path = tmp_path / "tiny.itblog"
    path.write_bytes(tiny())
    assert_same(parsers.read_log(path), parsers.read_log_bytes(path.read_bytes(), str(path)))
    log = both(tiny())
    assert list(log.problems) == [] and not log.damaged
    assert log.header.version_minor == 1 and log.header.page_size == 256
    assert (log.status.ring_last_seq, log.status.ring_pages, log.status.ring_last_count) == (0, 1, 2)
    assert len(log.events) == 1 and len(log.delivery) == 1
    ev, dl = log.events.iloc[0], log.delivery.iloc[0]
    assert ev["event"] == "telemetry_start" and int(ev["code"]) == 0x0C and int(ev["session_id"]) == 7
    assert ev["time_utc"] == pd.Timestamp("2026-03-02 08:59:20", tz="UTC")
    assert dl["time_utc"] == pd.Timestamp("2026-03-02 09:12:38", tz="UTC")  # offset -41.78 -> -42
    assert int(dl["interval_s"]) == 3600 and int(dl["stalled_s"]) == 0
    assert dl["commanded_ml"] == pytest.approx(0.004167, abs=1e-12)
    assert dl["rotor_ml"] == pytest.approx(0.00416, abs=1e-12)
    assert dl["reservoir_ml"] == pytest.approx(12.5, abs=1e-12) and dl["mode"] == "simple_continuous"
    assert int(dl["pump_clock"]) == 825_758_000 and not dl["time_uncertain"]
    assert (int(ev["page_seq"]), int(dl["page_seq"])) == (0, 0)
    assert (int(ev["offset"]), int(dl["offset"])) == (400, 432)
    assert log.delivery["offset"].dtype == np.int64 and log.delivery["page_seq"].dtype == np.uint32
    assert log.gaps.empty and list(log.pages["seq"]) == [0]
    # 10.2: the 1.0 file is read in full; no ring position
    old = both(tiny(version_minor=0))
    assert list(old.problems) == [] and old.header.version_minor == 0
    assert (old.status.ring_last_seq, old.status.ring_pages, old.status.ring_last_count) == (None,) * 3
    assert list(old.delivery["time_utc"]) == [pd.Timestamp("2026-03-02 09:12:38", tz="UTC")]


# ------------------------------------------------------------------------------ ring and pages


def rows_from(clock0, n, step=3600):
    return [delivery(clock0 + i * step, commanded_nl=4000 + i) for i in range(n)]


def test_wrapped_ring_oldest_page_in_the_middle_and_partial_newest_page():
    # ring of 4 slots; pages seq 5..8 are kept (5.2), stored in slot order: 8, 5, 6, 7; seq 8, the
    # head page, holds 3 records.
    pages = paged(rows_from(T0, 24), 4, first=5)
    last = T0 + 23 * 3600
    log = both(assemble([pages[3], *pages[:3]], slots=4, clock=last + 1000, ring=(8, 4, 3)))
    assert list(log.problems) == [] and log.gaps.empty and log.events.empty
    assert list(log.pages["seq"]) == [5, 6, 7, 8] and list(log.pages["slot"]) == [1, 2, 3, 0]
    assert list(log.pages["offset"]) == [640, 896, 1152, 384] and list(log.pages["count"]) == [7, 7, 7, 3]
    d = log.delivery
    assert list(d["pump_clock"]) == [T0 + i * 3600 for i in range(24)]
    assert list(d["time_utc"]) == [utc(T0 + i * 3600 + OFF) for i in range(24)]
    assert list(d["commanded_ml"]) == pytest.approx([(4000 + i) / 1e6 for i in range(24)], abs=1e-15)
    assert list(d["page_seq"]) == [5] * 7 + [6] * 7 + [7] * 7 + [8] * 3
    page_off = {5: 640, 6: 896, 7: 1152, 8: 384}
    assert offsets(d) == [page_off[q] + 16 + 32 * (i % 7) for i, q in enumerate(d["page_seq"])]
    assert not d["time_uncertain"].any()
    assert log.pages["first_utc"].iloc[0] == utc(T0 + OFF)
    assert log.pages["last_utc"].iloc[-1] == utc(last + OFF)


def test_storage_order_is_not_sequence_order_and_bytes_after_count_are_not_decoded():
    # 5.3: a reader does not depend on where a page sits in the file; 5.1: bytes after the last
    # record are never decoded, even when they look like records (here: valid delivery records).
    chunks = split(rows_from(T0, 38))
    junk = delivery(T0 + 10**6, commanded_nl=999_999) * 7
    order = [3, 0, 5, 1, 4, 2]
    log = both(assemble([page(q, chunks[q], ring_slots=8, fill=junk) for q in order], slots=8,
                        clock=T0 + 38 * 3600, ring=(5, 6, 3)))
    assert list(log.problems) == []
    where = {q: 384 + 256 * i for i, q in enumerate(order)}
    assert list(log.pages["seq"]) == [0, 1, 2, 3, 4, 5]
    assert list(log.pages["offset"]) == [where[q] for q in range(6)]
    d = log.delivery
    assert list(d["pump_clock"]) == [T0 + i * 3600 for i in range(38)]
    assert offsets(d) == [where[i // 7] + 16 + 32 * (i % 7) for i in range(38)]
    assert (d["commanded_ml"] < 0.5).all()
    # 5.3: slot != seq % ring_slots is kept, ordered by seq, and reported as page_out_of_place
    c = split(rows_from(T0, 21))
    log = both(assemble([page(0, c[0], ring_slots=4), page(1, c[1], ring_slots=4, slot=3),
                         page(2, c[2], ring_slots=4, slot=1)], slots=4, clock=T0 + 21 * 3600, ring=(2, 3, 7)))
    assert [(p.kind, p.severity, p.offset) for p in log.problems] == [
        ("page_out_of_place", "warning", 640), ("page_out_of_place", "warning", 896)]
    assert list(log.delivery["pump_clock"]) == [T0 + i * 3600 for i in range(21)]


def _resign(pg: bytearray) -> bytearray:
    pg[-4:] = struct.pack("<I", crc32c(bytes(pg[:-4])))
    return pg


DAMAGE_KINDS = {   # how page seq 2 is damaged -> the problem reported at it (5.3: marker, CRC, count, slot)
    "bad_page_crc": lambda pg: pg.__setitem__(16 + 32 * 3 + 12, pg[16 + 32 * 3 + 12] ^ 1),
    "bad_page_marker": lambda pg: _resign(pg.__setitem__(0, 0x12) or pg),
    "bad_page_marker_ffff": lambda pg: _resign(pg.__setitem__(slice(0, 2), b"\xff\xff") or pg),
    "bad_record_count": lambda pg: _resign(pg.__setitem__(slice(2, 4), b"\x08\x00") or pg),
    "bad_slot": lambda pg: _resign(pg.__setitem__(slice(4, 8), b"\x08\x00\x00\x00") or pg),
    "erased": lambda pg: pg.__setitem__(slice(0, 256), b"\xff" * 256),
}


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_damaged_page_between_good_ones(kind):
    # seq 0..4 in a ring of 8; seq 2 is damaged. The records around it are all recovered, with
    # their times (both segments have a sync point: the telemetry_start before the gap, the header
    # after it), and the lost records are covered by the problem at the damage and the page_gap.
    recs = [telemetry_start(T0 - 60, 3, T0 - 60 + OFF), *rows_from(T0, 34)]
    pages = [bytearray(pg) for pg in paged(recs, 8)]
    DAMAGE_KINDS[kind](pages[2])
    log = both(assemble([bytes(pg) for pg in pages], slots=8, clock=T0 + 34 * 3600, ring=(4, 5, 7)))
    assert log.damaged
    if kind == "erased":
        assert problems(log) == [("page_gap", "error")]   # 11.2: an erased slot is not itself a problem
    else:
        assert problems(log) == [(kind.replace("_ffff", ""), "error"), ("page_gap", "error")]
        [bad] = [p for p in log.problems if p.kind != "page_gap"]
        assert (bad.offset, bad.length) == (384 + 2 * 256, 256)
    gap = by_kind(log, "page_gap")[0]
    assert (gap.page_seq, gap.last_seq, gap.offset) == (2, 2, 384 + 3 * 256)
    assert f"seq 2 at byte {384 + 2 * 256}" in gap.message
    assert list(log.pages["seq"]) == [0, 1, 3, 4]
    kept = [i for i in range(1, 35) if not 14 <= i < 21]
    d = log.delivery
    assert list(d["pump_clock"]) == [T0 + (i - 1) * 3600 for i in kept]
    assert list(d["time_utc"]) == [utc(T0 + (i - 1) * 3600 + OFF) for i in kept]
    assert offsets(d) == [384 + 256 * (i // 7) + 16 + 32 * (i % 7) for i in kept]
    assert not d["time_uncertain"].any()
    g = log.gaps
    assert (len(g), int(g["first_missing_seq"][0]), int(g["last_missing_seq"][0])) == (1, 2, 2)
    assert g["start_utc"][0] == utc(T0 + 12 * 3600 + OFF)   # last record of seq 1
    assert g["end_utc"][0] == utc(T0 + 20 * 3600 + OFF)     # first record of seq 3
    assert int(g["next_page_offset"][0]) == 384 + 3 * 256


def test_missing_pages_at_both_ends_from_the_ring_position():
    # 5.3/5.4: the ring holds seq 1..7, the file only 3..5 (slots 3..5 of 8, stored at file
    # positions 0..2). Missing 1..2 before (start_utc NaT) and 6..7 after (end_utc NaT).
    recs = [telemetry_start(T0 - 60, 3, T0 - 60 + OFF), *rows_from(T0, 20)]
    log = both(assemble(paged(recs, 8, first=3), slots=8, clock=T0 + 30 * 3600, ring=(7, 7, 7)))
    gaps = sorted((p.page_seq, p.last_seq, p.severity) for p in by_kind(log, "page_gap"))
    assert gaps == [(1, 2, "error"), (6, 7, "error")]
    end = next(p for p in by_kind(log, "page_gap") if p.page_seq == 6)
    assert end.offset == 384 + 3 * 256     # nowhere found: the end of the stored pages
    g = log.gaps
    assert list(g["first_missing_seq"]) == [1, 6] and list(g["last_missing_seq"]) == [2, 7]
    assert pd.isna(g["start_utc"][0]) and g["end_utc"][0] == utc(T0 - 60 + OFF)
    assert g["start_utc"][1] == utc(T0 + 19 * 3600 + OFF) and pd.isna(g["end_utc"][1])
    assert list(g["next_page_offset"]) == [384, 384 + 3 * 256]
    assert len(log.delivery) == 20 and log.damaged


def test_newest_page_holds_fewer_or_more_records_than_the_status_says():
    pages = paged(rows_from(T0, 10), 4)                     # the head page holds 3
    fewer = both(assemble(pages, slots=4, clock=T0 + 10 * 3600, ring=(1, 2, 5)))
    [rp] = by_kind(fewer, "ring_position")
    assert rp.severity == "error" and fewer.damaged
    assert list(fewer.delivery["pump_clock"]) == [T0 + i * 3600 for i in range(10)]
    more = both(assemble(pages, slots=4, clock=T0 + 10 * 3600, ring=(1, 2, 2)))
    assert problems(more) == [("ring_position", "warning")] and len(more.delivery) == 10


def test_duplicate_seq_keeps_the_first_in_file_order():
    other = page(1, [delivery(T0 + 7 * 3600, commanded_nl=999)], ring_slots=4)
    log = both(assemble([*paged(rows_from(T0, 21), 4), other], slots=4, clock=T0 + 21 * 3600, ring=(2, 3, 7)))
    [dup] = by_kind(log, "duplicate_page")
    assert dup.offset == 384 + 3 * 256 and dup.severity == "error"   # not an identical copy
    assert list(log.delivery["commanded_ml"]) == pytest.approx([(4000 + i) / 1e6 for i in range(21)],
                                                               abs=1e-15)
    assert list(log.pages["offset"]) == [384, 640, 896]


def test_truncated_file_and_trailing_bytes():
    recs = [telemetry_start(T0 - 5, 1, T0 - 5 + OFF), *rows_from(T0, 20)]
    full = assemble(paged(recs, 4), slots=4, clock=T0 + 20 * 3600, ring=(2, 3, 7))
    cut = both(full[:-100])
    [tr] = by_kind(cut, "truncated")
    assert (tr.offset, tr.length, tr.severity) == (384 + 512, 256, "error")
    assert len(cut.delivery) == 13 and offsets(cut.delivery)[-1] == 384 + 256 + 16 + 6 * 32
    assert [(p.page_seq, p.last_seq) for p in by_kind(cut, "page_gap")] == [(2, 2)]
    assert pd.isna(cut.gaps["end_utc"][0]) and cut.gaps["start_utc"][0] == utc(T0 + 12 * 3600 + OFF)
    extra = both(full + b"\0" * 10)
    [tb] = extra.problems
    assert (tb.kind, tb.severity, tb.offset) == ("trailing_bytes", "warning", len(full))
    assert len(extra.delivery) == 20


# ------------------------------------------------------------------------- records and values


def test_event_records_between_delivery_records_in_one_page():
    c = T0
    recs = [delivery(c), rec(c + 1, 6, 1, 0, 1_999_000), delivery(c + 3600),
            rec(c + 4000, 2, 1, 0, 12, 50_000, 25_000, 600),   # bolus_start
            rec(c + 5000, 4, 0, 1, 2, 30_000), delivery(c + 7200),  # ptm_request
            rec(c + 7300, 0x42, raw=bytes(range(1, 25)), aux=7)]
    log = both(assemble(paged(recs, 4), slots=4, clock=c + 7400, ring=(0, 1, 7)))
    assert list(log.problems) == []
    d, e = log.delivery, log.events
    assert offsets(d) == [400, 464, 560] and list(d["pump_clock"]) == [c, c + 3600, c + 7200]
    assert list(e["event"]) == ["alarm_raised", "bolus_start", "ptm_request", "unknown_0x0042"]
    assert list(e["code"]) == [6, 2, 4, 0x42] and offsets(e) == [432, 496, 528, 592]
    assert list(e["time_utc"]) == [utc(x + OFF) for x in (c + 1, c + 4000, c + 5000, c + 7300)]
    assert list(e["page_seq"]) == [0, 0, 0, 0] and list(e["aux"]) == [0, 0, 0, 7]
    assert e["alarm"][0] == "low_reservoir" and int(e["value"][0]) == 1_999_000
    b = e.iloc[1]
    assert b["kind"] == "clinician" and int(b["bolus_id"]) == 12 and int(b["duration_s"]) == 600
    assert b["dose_mcg"] == pytest.approx(50.0) and b["volume_ml"] == pytest.approx(0.025)
    p = e.iloc[2]
    assert int(p["granted"]) == 0 and p["reason"] == "lockout" and int(p["count_today"]) == 2
    assert p["dose_mcg"] == pytest.approx(30.0)
    assert pd.isna(e["alarm"][1]) and pd.isna(e["bolus_id"][0]) and pd.isna(e["dose_mcg"][0])
    assert e["payload_hex"][3] == bytes(range(1, 25)).hex()
    assert list(e.columns[:8]) == ["time_utc", "event", "code", "pump_clock", "time_uncertain",
                                   "page_seq", "offset", "aux"]
    assert e.columns[-1] == "payload_hex"


def test_delivery_values_at_their_limits():
    c = T0
    recs = [telemetry_start(c - 10, 1, c - 10 + OFF),
            delivery(c, 3600, U32, U32, 3600, U32, mode=3, flags=0xFF, reserved=0xFFFF, aux=0xFFFF),
            delivery(c + 3600, 3600, 0, 0, 3601, 0, mode=9, flags=0x80),
            delivery(c + 7200, U32, 1, 2, U32, 3, mode=255),
            delivery(c + 10800, 3600, 1_000_000, 999_999, 0, 19_999_999, mode=0),
            delivery(c + 14400, 3600, 2_500_000, 1, 0, 20_000_000, mode=2)]
    log = both(assemble(paged(recs, 4), slots=4, clock=c + 15000, ring=(0, 1, 6)))
    d = log.delivery
    assert list(d["interval_s"]) == [3600, 3600, U32, 3600, 3600] and d["interval_s"].dtype == np.int64
    assert list(d["stalled_s"]) == [3600, 3601, U32, 0, 0] and d["stalled_s"].dtype == np.int64
    assert list(d["commanded_ml"]) == pytest.approx([4294.967295, 0, 1e-6, 1.0, 2.5], abs=1e-12)
    assert list(d["rotor_ml"]) == pytest.approx([4294.967295, 0, 2e-6, 0.999999, 1e-6], abs=1e-12)
    assert list(d["reservoir_ml"]) == pytest.approx([4294.967295, 0, 3e-6, 19.999999, 20.0], abs=1e-12)
    assert [str(m) for m in d["mode"]] == ["minimum_rate", "unknown_9", "unknown_255", "stopped", "flex"]
    assert list(d["flags"]) == [0xFF, 0x80, 0, 0, 0] and d["flags"].dtype == np.uint8
    assert list(d["reserved"]) == [0xFFFF, 0, 0, 0, 0] and d["reserved"].dtype == np.uint16
    assert list(d["aux"]) == [0xFFFF, 0, 0, 0, 0] and d["aux"].dtype == np.uint16
    assert list(d["time_utc"]) == [utc(c + k * 3600 + OFF) for k in range(5)]
    # 11.2: only row B has stalled_s > interval_s (row C: both 2**32-1); row C begins 2**32-1 s
    # before the previous stamp: delivery_overlap at it. Warnings: the log is not damaged.
    assert [(p.kind, p.offset) for p in sorted(log.problems, key=lambda p: p.kind)] == [
        ("delivery_overlap", 400 + 3 * 32), ("stalled_beyond_interval", 400 + 2 * 32)]
    assert {p.severity for p in log.problems} == {"warning"} and not log.damaged


def test_event_enum_and_counter_limits():
    c = T0
    recs = [telemetry_start(c, U32, c + OFF), rec(c + 1, 6, 0xFFFF, 0xFFFF, U32),
            rec(c + 2, 7, 99, 0, 0), rec(c + 3, 2, 0, 0, 65535, U32, U32, U32),
            rec(c + 4, 4, 1, 200, 65535, U32), rec(c + 5, 0xFFFF, raw=b"\xff" * 24, aux=0xFFFF)]
    log = both(assemble(paged(recs, 4), slots=4, clock=c + 6, ring=(0, 1, 6)))
    assert list(log.problems) == []
    e = log.events
    assert list(e["event"]) == ["telemetry_start", "alarm_raised", "alarm_cleared", "bolus_start",
                                "ptm_request", "unknown_0xffff"]
    assert int(e["session_id"][0]) == U32
    assert str(e["alarm"][1]) == "unknown_65535" and int(e["value"][1]) == U32
    assert str(e["alarm"][2]) == "unknown_99"
    assert str(e["kind"][3]) == "unknown_0" and int(e["bolus_id"][3]) == 65535
    assert e["dose_mcg"][3] == pytest.approx(4_294_967.295)
    assert e["volume_ml"][3] == pytest.approx(4294.967295)
    assert int(e["duration_s"][3]) == U32
    assert str(e["reason"][4]) == "unknown_200" and int(e["count_today"][4]) == 65535
    assert int(e["code"][5]) == 0xFFFF and int(e["aux"][5]) == 0xFFFF and e["payload_hex"][5] == "ff" * 24
    assert list(e["time_utc"]) == [utc(c + k + OFF) for k in range(6)]


# ---------------------------------------------------------------------------------- 7. clocks


def test_clock_extremes():
    # 1: a u32 clock reaches 2136-02-07T06:28:15
    recs = [telemetry_start(U32 - 3600, 1, U32 - 3600), delivery(U32)]
    log = both(assemble([page(0, recs, ring_slots=2)], slots=2, clock=U32, off=0, ring=(0, 1, 2)))
    assert list(log.problems) == []
    assert log.delivery["time_utc"][0] == pd.Timestamp("2136-02-07 06:28:15", tz="UTC")
    assert int(log.delivery["pump_clock"][0]) == U32
    # 7, 11.2: an offset of 2**32-1 s puts the row stamped 2**32-1 after 2250: NaT, implausible_time,
    # sorted last although the row after it (a backward jump: clock_reset) is stored later. Both
    # segments have a sync point (the telemetry_start; the header), so no time is borrowed (7.5).
    # 11.2 (clock_reset) and the reader's message now say what section 7 (steps 3-5) does: only a
    # segment without a sync point of its own borrows an offset and is marked uncertain.
    recs = [telemetry_start(0, 1, U32), delivery(10, 10), delivery(2**31), delivery(U32),
            delivery(2**31 + 3600)]
    log = both(assemble([page(0, recs, ring_slots=2)], slots=2, clock=0, off=U32, ring=(0, 1, 5)))
    assert sorted((p.kind, p.severity, p.offset) for p in log.problems) == [
        ("clock_reset", "error", 400 + 4 * 32), ("implausible_time", "error", 400 + 3 * 32)]
    d = log.delivery
    assert list(d["pump_clock"]) == [10, 2**31, 2**31 + 3600, U32]
    assert list(d["time_utc"][:3]) == [utc(10 + U32), utc(2**31 + U32), utc(2**31 + 3600 + U32)]
    assert pd.isna(d["time_utc"][3]) and list(d["time_uncertain"]) == [False, False, False, True]


def test_clock_set_backwards_mid_log():
    # The pump runs 3600 s fast. At a session between rows 9 and 10 the programmer sets it back
    # by an hour (12.7): the row after the set carries the same raw stamp as the row before it,
    # yet ends 3600 s later in UTC (the interval timer goes on, 12.1).
    s = T0 + 9 * 3600 + 1000                                        # the session, old clock
    raw = [T0 + i * 3600 for i in range(10)] + [T0 + (8 + k) * 3600 for k in range(1, 9)]
    recs = [delivery(x, commanded_nl=5000 + i) for i, x in enumerate(raw)]
    recs[10:10] = [telemetry_start(s, 5, s - 3600), rec(s - 3600, 0x0A, s, s - 3600)]  # clock_set
    # 20 records: pages of 7, 7, 6
    log = both(assemble(paged(recs, 4), slots=4, clock=raw[-1] + 50, off=0, ring=(2, 3, 6)))
    assert list(log.problems) == [] and not log.damaged
    d = log.delivery
    assert list(d["time_utc"]) == [utc(x - 3600) for x in raw[:10]] + [utc(x) for x in raw[10:]]
    assert list(d["pump_clock"]) == raw and raw[9] == raw[10]
    assert list(d["commanded_ml"]) == pytest.approx([(5000 + i) / 1e6 for i in range(18)], abs=1e-15)
    assert (d["time_utc"].diff().iloc[1:] == pd.Timedelta(seconds=3600)).all()
    assert not d["time_uncertain"].any()
    rec_off = [384 + 256 * (i // 7) + 16 + 32 * (i % 7) for i in range(20)]
    assert offsets(d) == rec_off[:10] + rec_off[12:]
    e = log.events
    assert list(e["event"]) == ["telemetry_start", "clock_set"] and list(e["time_utc"]) == [utc(s - 3600)] * 2
    assert int(e["old_clock"][1]) == s and int(e["new_clock"][1]) == s - 3600


def test_unexplained_backward_jump_is_a_clock_reset():
    # Rows 0..6 (page 0, no sync point), then the clock jumps back 4 h with nothing to explain
    # it: a new segment (7, step 1). The first segment borrows the next one's offset (step 5),
    # its times are uncertain, and clock_reset (not clock_uncertain) reports it.
    clocks = [T0 + i * 3600 for i in range(7)] + [T0 + (2 + k) * 3600 for k in range(7)]
    recs = [delivery(x, commanded_nl=7000 + i) for i, x in enumerate(clocks)]
    log = both(assemble(paged(recs, 4), slots=4, clock=clocks[-1] + 10, ring=(1, 2, 7)))
    [cr] = log.problems
    assert (cr.kind, cr.severity, cr.offset) == ("clock_reset", "error", 384 + 256 + 16)
    want = sorted([(x + OFF, i, i < 7) for i, x in enumerate(clocks)], key=lambda t: t[0])  # stable (5.3)
    d = log.delivery
    assert list(d["time_utc"]) == [utc(t) for t, _, _ in want]
    assert list(d["commanded_ml"]) == pytest.approx([(7000 + i) / 1e6 for _, i, _ in want], abs=1e-15)
    assert list(d["time_uncertain"]) == [u for _, _, u in want]


def test_pump_reset_links_the_segment_before_it():
    # 7 step 4: the segment before a reset has no sync point; the reset record's UTC (by the
    # segment after it, dated by the header) is the UTC of clock_before.
    before = [T0 + i * 3600 for i in range(6)]
    reset_at = before[-1] + 1000                                   # old clock
    after = [2600 + k * 3600 for k in range(6)]                    # restarted clock; rows tile on
    recs = ([delivery(c) for c in before] + [rec(0, 0x0B, 1, 0, 0, reset_at)]
            + [delivery(c) for c in after])
    o2 = reset_at + OFF                                            # UTC of the reset = 0 + o2
    log = both(assemble(paged(recs, 4), slots=4, clock=after[-1] + 10, off=o2, ring=(1, 2, 6)))
    assert [(p.kind, p.offset) for p in log.problems] == [("pump_reset", 384 + 16 + 6 * 32)]
    d = log.delivery
    assert list(d["time_utc"]) == [utc(c + OFF) for c in before] + [utc(c + o2) for c in after]
    assert (d["time_utc"].diff().iloc[1:] == pd.Timedelta(seconds=3600)).all()
    assert not d["time_uncertain"].any()
    assert log.events["event"].tolist() == ["pump_reset"]
    assert str(log.events["reset_reason"][0]) == "low_battery"
    assert int(log.events["clock_before"][0]) == reset_at


# ------------------------------------------------------------------ many chunks, several threads


def big_log(damage: dict, n=3000, first=2500):
    """A wrapped ring of n slots of 256 bytes, seq first..first+n-1 (the oldest page in the middle of
    the file), rows every 3600 s with events scattered so that chunks hold different numbers of each
    kind of row, a partial head page; ``damage`` maps a seq to "crc" or "erased"."""
    rng = np.random.default_rng(20260302)
    recs, clocks, clock = [], [], T0
    while len(recs) < 7 * n - 4:
        kind = rng.integers(0, 10)
        if kind == 0 or not recs:
            recs.append(telemetry_start(clock - 1, len(recs), clock - 1 + OFF))
        elif kind == 1:
            recs.append(rec(clock - 1, 6, int(rng.integers(1, 12)), 0, len(recs)))
        else:
            recs.append(delivery(clock + 1, commanded_nl=len(recs), mode=int(rng.integers(0, 5))))
            clock += 3600
        clocks.append(struct.unpack_from("<I", recs[-1])[0])
    slots = {}
    for i, c in enumerate(split(recs)):
        p = bytearray(page(first + i, c, ring_slots=n))
        if damage.get(first + i) == "crc":
            p[40] ^= 0xFF
        slots[(first + i) % n] = b"\xff" * 256 if damage.get(first + i) == "erased" else bytes(p)
    data = (header(ring_slots=n, page_count=n, pump_clock=clock, programmer_clock=clock + OFF)
            + status(ring=(first + n - 1, n, 3)) + b"".join(slots[s] for s in range(n)))
    return data, recs, clocks


# file positions 1023/1024 and 2047/2048 hold seq 4023/4024 and 5047/5048: chunk boundaries of 1024
# pages; position 2500 holds the oldest page, seq 2500, and 2499 the head page, seq 5499; positions
# 1024..2047 are one whole chunk of erased slots. With each: the missing runs of seq (the gaps).
DAMAGE = [({3100: "crc", 4444: "crc"}, [[3100, 3100], [4444, 4444]]),
          ({2500: "crc", 4023: "crc", 4024: "crc", 5047: "crc", 5048: "erased", 5499: "crc"},
           [[2500, 2500], [4023, 4024], [5047, 5048], [5499, 5499]]),
          ({s: "erased" for s in range(4024, 5048)}, [[4024, 5047]])]


@pytest.mark.parametrize(("damage", "runs"), DAMAGE, ids=["two-bad", "at-boundaries", "erased-chunk"])
def test_many_pages_chunks_and_threads_agree_and_are_right(damage, runs):
    n, first = 3000, 2500
    data, recs, clocks = big_log(damage, n, first)
    logs = [parsers.read_log_bytes(data, "big", workers=w) for w in (1, 3, 4, None)]
    logs.append(parsers.read_log_bytes(data, "big", decoder="construct"))
    for other in logs[1:]:
        assert_same(logs[0], other)
    log = logs[1]
    kept = [i for i in range(len(recs)) if first + i // 7 not in damage]

    def where(i):  # record i of the stream: its page's file position, then its place in the page
        return 384 + 256 * ((first + i // 7) % n) + 16 + 32 * (i % 7)

    for table, is_row in ((log.delivery, True), (log.events, False)):
        mine = [i for i in kept if (recs[i][4] == 0x10) == is_row]
        assert list(table["pump_clock"]) == [clocks[i] for i in mine]
        assert offsets(table) == [where(i) for i in mine]
        assert list(table["page_seq"]) == [first + i // 7 for i in mine]
        assert list(table["time_utc"]) == [utc(clocks[i] + OFF) for i in mine]
        assert not table["time_uncertain"].any()
    d = log.delivery
    rows = [i for i in kept if recs[i][4] == 0x10]
    assert list(d["commanded_ml"]) == pytest.approx([i / 1e6 for i in rows], abs=1e-15)
    names = {0: "stopped", 1: "simple_continuous", 2: "flex", 3: "minimum_rate", 4: "unknown_4"}
    assert [str(m) for m in d["mode"]] == [names[recs[i][28]] for i in rows]
    assert list(log.events["event"]) == ["telemetry_start" if recs[i][4] == 0x0C else "alarm_raised"
                                         for i in kept if recs[i][4] != 0x10]
    assert list(log.pages["seq"]) == [s for s in range(first, first + n) if s not in damage]
    g = log.gaps
    assert [[int(x), int(y)] for x, y in zip(g["first_missing_seq"], g["last_missing_seq"], strict=True)
            ] == runs
    for k, (lo, hi) in enumerate(runs):
        before = [i for i in kept if first + i // 7 < lo]
        after = [i for i in kept if first + i // 7 > hi]
        assert g["start_utc"][k] == utc(clocks[before[-1]] + OFF) if before else pd.isna(g["start_utc"][k])
        assert g["end_utc"][k] == utc(clocks[after[0]] + OFF) if after else pd.isna(g["end_utc"][k])
    bad = sorted(384 + 256 * (q % n) for q, what in damage.items() if what == "crc")
    assert sorted(p.offset for p in by_kind(log, "bad_page_crc")) == bad
    assert sorted((p.page_seq, p.last_seq) for p in by_kind(log, "page_gap")) == [tuple(r) for r in runs]
    assert problems(log) == sorted([("bad_page_crc", "error")] * len(bad)
                                   + [("page_gap", "error")] * len(runs))


def test_chunk_boundaries_with_empty_pages_and_a_chunk_without_rows():
    # 4096-byte pages, so a chunk of about 2 MiB holds some 512 pages (11): pages 0..699 hold
    # delivery rows only (some of them none at all), 700..1299 events only (so at least one whole
    # chunk has no delivery row), 1300..1599 rows again. The first row after the event-only
    # stretch overlaps the last row before it (same clock segment, 12.1) and, like every 40th row
    # after it, is stalled beyond its interval; seq 1450 is an erased slot and seq 1500 is damaged.
    n, ps = 1600, 4096
    rng = np.random.default_rng(7)
    clock, body, rows, alarms = T0, [], [], []        # rows: (clock, offset, interval, stalled, nL)
    for seq in range(n):
        recs = [telemetry_start(clock, seq, clock + OFF)] if seq in (0, 1451, 1501) else []
        for _ in range(int(rng.integers(0, 7))):
            at = 384 + ps * seq + 16 + 32 * len(recs)
            if 700 <= seq < 1300:
                clock += 60
                alarms.append((clock, at, bool(len(recs) % 2)))
                recs.append(rec(clock, 7 if alarms[-1][2] else 6, 5, 0, seq))
                continue
            clock, k = clock + 3600, sum(1 for r in rows if r[1] >= 384 + ps * 1300)
            interval = clock - rows[-1][0] + 3600 if seq >= 1300 and k == 0 else 3600
            stalled = interval + 1 if seq >= 1300 and k % 40 == 0 else 0
            recs.append(delivery(clock, interval, commanded_nl=len(rows), stalled_s=stalled))
            rows.append((clock, at, interval, stalled, len(rows)))
        rows = [r for r in rows if not (seq in (1450, 1500) and r[1] >= 384 + ps * seq)]
        pg = bytearray(page(seq, recs, ring_slots=n, page_size=ps))
        pg[12] ^= seq == 1500
        body.append(b"\xff" * ps if seq == 1450 else bytes(pg))
    log = both(assemble(body, slots=n, clock=clock + 1, ring=(n - 1, n, len(recs)), ps=ps))
    assert problems(log) == [("bad_page_crc", "error"), ("delivery_overlap", "warning"),
                             ("page_gap", "error"), ("page_gap", "error"),
                             ("stalled_beyond_interval", "warning")]
    assert sorted((p.page_seq, p.last_seq) for p in by_kind(log, "page_gap")) == [(1450, 1450), (1500, 1500)]
    d = log.delivery
    assert list(d["pump_clock"]) == [r[0] for r in rows] and offsets(d) == [r[1] for r in rows]
    assert list(d["time_utc"]) == [utc(r[0] + OFF) for r in rows]
    assert list(d["interval_s"]) == [r[2] for r in rows] and list(d["stalled_s"]) == [r[3] for r in rows]
    assert list(d["commanded_ml"]) == pytest.approx([r[4] / 1e6 for r in rows], abs=1e-15)
    first_after = next(r for r in rows if r[1] >= 384 + ps * 1300)
    [ov], [sb] = by_kind(log, "delivery_overlap"), by_kind(log, "stalled_beyond_interval")
    assert ov.offset == sb.offset == first_after[1]
    assert re.search(rf"\b{sum(1 for r in rows if r[3] > r[2])}\b", sb.message)   # the count (12)
    e = log.events[log.events["event"] != "telemetry_start"]
    assert list(e["pump_clock"]) == [a[0] for a in alarms] and offsets(e) == [a[1] for a in alarms]
    assert list(e["event"]) == ["alarm_cleared" if a[2] else "alarm_raised" for a in alarms]
    assert list(log.pages["count"]) == [struct.unpack_from("<H", b, 2)[0] for i, b in enumerate(body)
                                        if i not in (1450, 1500)]


def _plain(n=3000):
    recs = [telemetry_start(T0 - 5, 1, T0 - 5 + OFF)] + [delivery(T0 + i * 3600, commanded_nl=i)
                                                         for i in range(7 * n - 1)]
    return paged(recs, n)


@pytest.mark.parametrize("variant", ["reversed", "copy-over-head", "extra-copy", "bad-header"])
def test_many_pages_storage_layouts(variant):
    # 5.3: pages stored newest first over 3 chunks; a copy of seq 5 standing where the head page
    # (seq 2999) belonged (an error naming 2999, and a page_gap found there); an identical extra copy
    # of seq 1500 that displaced nothing (a warning); a header whose CRC fails and whose page_size
    # says 512 (5.5: the layout is found from the pages).
    n, pages = 3000, _plain()
    slots, at = n, {q: q for q in range(n)}             # seq -> file position
    if variant == "reversed":
        pages, at = pages[::-1], {q: n - 1 - q for q in range(n)}
    elif variant == "copy-over-head":
        pages, at = [*pages[:-1], pages[5]], {q: q for q in range(n - 1)}
    elif variant == "extra-copy":
        pages, slots = [*pages, pages[1500]], n + 1
    data = bytearray(assemble(pages, slots=slots, clock=T0 + 7 * n * 3600, ring=(n - 1, n, 7)))
    if variant == "bad-header":
        data[14:16] = struct.pack("<H", 512)
    log = both(bytes(data))
    want = {"reversed": [],
            "copy-over-head": [("duplicate_page", "error", 384 + 256 * 2999, 2999, 2999),
                               ("page_gap", "error", 384 + 256 * 2999, 2999, 2999)],
            "extra-copy": [("duplicate_page", "warning", 384 + 256 * 3000, 1500, None)],
            "bad-header": [("bad_header_crc", "error", 124, None, None),
                           ("layout_from_pages", "warning", 14, None, None)]}[variant]
    assert [(p.kind, p.severity, p.offset, p.page_seq, p.last_seq) for p in log.problems] == want
    assert (log.header.page_size, log.header.page_count) == (256, len(pages))
    kept = [i for i in range(1, 7 * n) if i // 7 in at]
    d = log.delivery
    assert list(d["pump_clock"]) == [T0 + (i - 1) * 3600 for i in kept]
    assert list(d["commanded_ml"]) == pytest.approx([(i - 1) / 1e6 for i in kept], abs=1e-15)
    assert offsets(d) == [384 + 256 * at[i // 7] + 16 + 32 * (i % 7) for i in kept]
    assert list(d["time_utc"]) == [utc(T0 + (i - 1) * 3600 + OFF) for i in kept]


def test_section_12_rules_across_chunks():
    # 11.2, 12.8: refills before the first session (the history starts at seq 0) and after a
    # telemetry_end are outside a session, one in the interrogating session is not, one after the
    # last telemetry_end with no telemetry_start after it is not judged; 12.4: step_start_min 5
    # outside flex. The session boundaries sit at the 1024-page chunk boundaries.
    def refill(c):
        return rec(c, 0x05, 20_000_000, 10**6, 10**6, 2_000_000, 20_000_000)

    def presc(c, mode):
        return rec(c, 0x01, mode, 255, 0, 0, 200_000, 100_000, 2_000_000, 5)

    n, clock = 3000, T0
    special = {3: refill, 10: lambda c: telemetry_start(c, 1, c + OFF), 11: refill,
               7 * 1023 + 6: lambda c: rec(c, 0x0D, 1), 7 * 1024: refill,
               7 * 2047 + 6: lambda c: telemetry_start(c, 2, c + OFF), 7 * 2048: refill,
               7 * 2048 + 1: lambda c: presc(c, 1), 7 * 2048 + 2: lambda c: presc(c, 2),
               7 * 2500: lambda c: rec(c, 0x0D, 2), 7 * 2999: refill}
    recs = []
    for i in range(7 * n - 2):
        clock += 600
        recs.append(special.get(i, lambda c: delivery(c, 600))(clock))
    log = both(assemble(paged(recs, n), slots=n, clock=clock + 1, ring=(n - 1, n, 5)))
    where = {i: 384 + 256 * (i // 7) + 16 + 32 * (i % 7) for i in special}
    assert [(p.kind, p.severity, p.offset) for p in sorted(log.problems, key=lambda p: p.kind)] == [
        ("prescription_step_start", "warning", where[7 * 2048 + 1]),
        ("refill_outside_session", "warning", where[3])]
    assert re.search(r"\b2\b", by_kind(log, "refill_outside_session")[0].message)   # 2 records break it
    assert len(log.delivery) == 7 * n - 2 - len(special) and not log.damaged
