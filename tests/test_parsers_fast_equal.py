"""The fast reader's parallel paths give the tables of the one-thread path and of the
construct decoder: the one-pass decoder (chunks placed by the chunk before them, pages seen
as 32-byte slots) writing into columns paged in on another thread while the CRCs are
checked (sized by what every stored page claims, more than a damaged log decodes), and a
large log's delivery table built on a second thread while the events, pages and gaps tables
are built and the rules checked (``fast.AHEAD_RECORDS`` and ``reader._BESIDE_ROWS`` are
lowered here, so small logs take those paths too), with every kind of problem the tail
reports, in the same order, in strict mode too."""

from __future__ import annotations

import dataclasses
import random

import logfactory as lf
import pytest

from parsers import LogFormatError, fast, read_log_bytes, reader
from parsers import format as fmt
from parsers.writer import encode_log

T0 = 759_000_000
FAR = 3_700_000_000  # with FAR_HEADER, clock + offset is beyond any real date
FAR_HEADER = lf.make_header(pump_clock=20, programmer_clock=2**32 - 1)


def _dels(n: int, t: int = T0, **kw) -> list:
    return [lf.delivery(t + 900 * (i + 1), **kw) for i in range(n)]


def _far_clocks() -> bytes:
    recs = [lf.unknown(1_000_000), *_dels(40, 1_000_000), *_dels(3, FAR), lf.unknown(FAR + 5000)]
    recs += _dels(10, FAR + 10**6)
    return encode_log(lf.make_image(recs, page_size=256, ring_slots=6, first_seq=4, header=FAR_HEADER))


def _rules_and_gap() -> bytes:
    """Rows stalled beyond their interval, rows that overlap, events, and a damaged page."""
    recs = [lf.telemetry_start(T0, T0 - 30)]
    for i, d in enumerate(_dels(300)):
        if i % 97 == 5:
            d = dataclasses.replace(d, values={**d.values, "stalled_s": 901})
        if i % 89 == 7:
            d = dataclasses.replace(d, clock=d.clock - 600)
        recs.append(d)
        if i % 13 == 0:
            recs.append(lf.unknown(d.clock + 1, code=0x70 + i % 5))
    data = encode_log(lf.make_image(recs, page_size=256, ring_slots=40, first_seq=3))
    head, pages = lf.split_pages(data, 256)
    pages[7] = lf.flip_bit(pages[7], 40)
    return head + b"".join(pages)


def _shuffled_4096() -> bytes:
    """Big pages, stored out of order in the file, the newest one partly filled."""
    recs = [lf.telemetry_start(T0, T0 - 30)]
    for i, d in enumerate(_dels(2000)):
        recs.append(d)
        if i % 41 == 0:
            recs.append(lf.unknown(d.clock + 1))
    data = encode_log(lf.make_image(recs, page_size=4096, ring_slots=14, first_seq=9))
    head, pages = lf.split_pages(data, 4096)
    random.Random(3).shuffle(pages)
    return head + b"".join(pages)


LOGS = {"far_clocks": _far_clocks, "rules_and_gap": _rules_and_gap, "shuffled_4096": _shuffled_4096}


@pytest.mark.parametrize("name", LOGS)
def test_tables_built_on_two_threads_equal_one_thread_and_construct(name, monkeypatch):
    data = LOGS[name]()
    one = read_log_bytes(data, workers=1)
    monkeypatch.setattr(reader, "_BESIDE_ROWS", 1)
    monkeypatch.setattr(fast, "AHEAD_RECORDS", 1)  # columns paged in during the CRC check
    for chunk in (1, 3, fast.CHUNK_PAGES):
        monkeypatch.setattr(fast, "CHUNK_PAGES", chunk)
        lf.assert_same_decoding(read_log_bytes(data, workers=2), one)
    lf.assert_same_decoding(one, read_log_bytes(data, decoder="construct"))


def test_the_logs_report_what_they_are_built_for():
    kinds = {name: {p.kind for p in read_log_bytes(LOGS[name](), workers=1).problems} for name in LOGS}
    assert "implausible_time" in kinds["far_clocks"]
    assert {"page_gap", "stalled_beyond_interval", "delivery_overlap"} <= kinds["rules_and_gap"]
    assert not kinds["shuffled_4096"]  # pages out of order in the file are no problem


@pytest.mark.parametrize("name", ["far_clocks", "rules_and_gap"])
def test_strict_mode_raises_the_first_problem_on_two_threads_too(name, monkeypatch):
    data = LOGS[name]()
    with pytest.raises(LogFormatError) as one:
        read_log_bytes(data, strict=True, workers=1)
    monkeypatch.setattr(reader, "_BESIDE_ROWS", 1)
    with pytest.raises(LogFormatError) as two:
        read_log_bytes(data, strict=True, workers=2)
    assert str(two.value) == str(one.value)


def test_a_ring_that_ends_at_the_end_of_the_file():
    """The last page's last slot would run past the file: the chunk holding it is copied,
    not viewed, and its records are all there."""
    recs = [lf.telemetry_start(T0, T0 - 30), *_dels(fmt.records_per_page(512) * 6 - 1)]
    data = encode_log(lf.make_image(recs, page_size=512, ring_slots=6, first_seq=0))
    assert len(data) == fmt.HEADER_SIZE + fmt.STATUS_SIZE + 6 * 512
    for workers in (1, 2):
        log = read_log_bytes(data, workers=workers)
        assert not log.problems and len(log.delivery) + len(log.events) == len(recs)
        lf.assert_same_decoding(log, read_log_bytes(data, decoder="construct"))
