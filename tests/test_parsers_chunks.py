"""The fast decoder works a chunk of pages at a time, on several threads for a large log.

Real logs of the samples fit in one chunk, so here the chunk is shrunk to a few pages: the
chunk edges then fall inside wrapped rings, around damaged and reordered pages and next to
partly filled pages.  Whatever the chunking and the number of threads, the tables must be
exactly those of the construct decoder."""

from __future__ import annotations

import random
import threading
import uuid
from unittest import mock

import logfactory as lf
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import fast, read_log, read_log_bytes

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PS = 384  # header + status


def _damage(data: bytes, page_size: int, rng: random.Random, how: str) -> bytes:
    head, pages = lf.split_pages(data, page_size)
    if how == "flip" and pages:  # one page fails its CRC: a gap, and a break in the page runs
        i = rng.randrange(len(pages))
        pages[i] = lf.flip_bit(pages[i], rng.randrange(page_size), rng.randrange(8))
    elif how == "shuffle":  # pages stored out of slot order: many short runs per chunk
        rng.shuffle(pages)
    return head + b"".join(pages)


def _history(rng: random.Random, n: int) -> list:
    """``n`` delivery records with events between them now and then (sessions, unknown
    types, clock sets), clocks moving forward."""
    t = 759_000_000
    out = [lf.telemetry_start(t, t - 30)]
    for _ in range(n):
        t += 900
        out.append(lf.delivery(t, reservoir_nl=rng.randrange(1_000_000, 20_000_000)))
        roll = rng.random()
        if roll < 0.05:
            out.append(lf.unknown(t + 1, code=0x70 + rng.randrange(8)))
        elif roll < 0.08:
            out.append(lf.telemetry_start(t + 2, t - 28 + rng.randrange(-5, 6)))
        elif roll < 0.09:
            out.append(lf.clock_set(t + 3, t + 3603))
            t += 3600
    return out


@SETTINGS
@given(
    n=st.integers(60, 250),
    page_size=st.sampled_from([256, 512]),
    slack=st.integers(-40, 10),
    first_seq=st.integers(0, 1000),
    chunk=st.integers(1, 3),
    workers=st.sampled_from([1, 2, 3]),
    how=st.sampled_from(["none", "flip", "shuffle"]),
    seed=st.integers(0, 2**16),
)
def test_chunked_and_threaded_decoding_equals_construct(
    tmp_path, n, page_size, slack, first_seq, chunk, workers, how, seed
):
    rng = random.Random(seed)
    recs = _history(rng, n)
    pages_needed = -(-len(recs) // lf.records_per_page(page_size))
    ring = max(chunk + 1, pages_needed + slack)  # a negative slack wraps the ring (oldest pages lost)
    image = lf.make_image(recs, page_size=page_size, ring_slots=ring, first_seq=first_seq)
    assert len(image.pages) > chunk  # several chunks
    data = _damage(lf.write_image(tmp_path / "clean.itblog", image), page_size, rng, how)
    path = lf.write_bytes(tmp_path / f"{uuid.uuid4().hex}.itblog", data)
    reference = read_log(path, decoder="construct")
    with mock.patch.object(fast, "CHUNK_PAGES", chunk):
        log = read_log(path, workers=workers)
    lf.assert_same_decoding(log, reference)


def test_threads_and_one_thread_agree_on_a_multi_chunk_log(tmp_path):
    """A log of several real-size chunks (1024 pages each) read with 1 and 4 threads."""
    t0, n = 759_000_000, 3 * fast.CHUNK_PAGES * 7 + 11
    recs = [lf.telemetry_start(t0, t0 - 30)]
    for i in range(n):
        recs.append(lf.delivery(t0 + 900 * (i + 1), reservoir_nl=15_000_000 - 1042 * (i // 10)))
        if i % 500 == 250:  # an event now and then, so chunks hold both kinds of rows
            recs.append(lf.unknown(t0 + 900 * (i + 1) + 1))
    image = lf.make_image(recs, page_size=256, ring_slots=4000, first_seq=17)
    data = lf.write_image(tmp_path / "big.itblog", image)
    assert len(image.pages) > 2 * fast.CHUNK_PAGES
    one = read_log_bytes(data, workers=1)
    four = read_log_bytes(data, workers=4)
    lf.assert_same_decoding(one, four)
    assert not one.problems
    assert len(one.delivery) + len(one.events) == len(recs)
    assert np.all(np.diff(one.delivery["offset"].to_numpy()) > 0)  # storage order, no wrap here


def test_a_chunk_that_fails_stops_the_read_and_no_thread_waits_for_ever(tmp_path, monkeypatch):
    """A chunk passes on where the next chunk's rows start even when it fails, so the chunks
    after it fail too instead of waiting; the read raises the first chunk's error."""
    image = lf.make_image(lf.base_history(n_delivery=200), page_size=256, ring_slots=64, first_seq=0)
    path = tmp_path / "x.itblog"
    lf.write_image(path, image)
    real = fast._past_records
    calls = iter(range(10**6))

    def third_chunk_fails(mask, held, short, rpp):
        if next(calls) == 2:
            raise MemoryError("no memory for chunk 2")
        return real(mask, held, short, rpp)

    monkeypatch.setattr(fast, "_past_records", third_chunk_fails)
    monkeypatch.setattr(fast, "CHUNK_PAGES", 2)
    for workers in (1, 3):
        calls = iter(range(10**6))
        errors: list[BaseException] = []

        def read(workers: int = workers, errors: list[BaseException] = errors) -> None:
            try:
                read_log(path, workers=workers)
            except BaseException as exc:  # handed to the test's thread
                errors.append(exc)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), f"the read with {workers} threads hung"
        assert len(errors) == 1 and isinstance(errors[0], MemoryError), errors


def test_a_failed_chunk_releases_every_later_chunk_even_one_whose_predecessor_never_runs():
    """When a chunk fails the pool cancels chunks not yet started: a cancelled chunk never
    passes its rows on, so the chunk after it would wait for ever unless the failure itself
    releases every later chunk (review finding).  Chunk 0 fails, chunk 1 is 'cancelled' (never
    runs), chunk 2 must fail at once, not hang."""
    chain = fast._RowChain(3)
    try:
        with chain.link(0):
            raise MemoryError("chunk 0")
    except MemoryError:
        pass
    outcome: list[BaseException] = []

    def chunk_2() -> None:
        try:
            with chain.link(2):
                chain.rows(2, 5)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    t = threading.Thread(target=chunk_2, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "chunk 2 waits for a chunk that never runs"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
