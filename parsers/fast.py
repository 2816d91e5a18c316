"""The fast decoder: numpy views over a read-only memory map, each record read once.

Pages are checked with one CRC call each.  Records are read through numpy structured dtypes
generated from the record table, over views of the pages, a chunk of pages at a time and in
one pass; delivery records (nearly all of a log) go straight into their table columns, and
the few event records are decoded per record type.  Nothing is decoded one record at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import format as fmt
from .crc import crc32c
from .decoded import (
    DELIVERY_FIELDS,
    ENUM_DELIVERY_FIELDS,
    EVENT_FIELDS,
    DecodedRecords,
    convert_delivery,
    delivery_column_dtype,
)
from .pages import PageOrder, PageScan
from .records import BY_CODE, DELIVERY_CODE, PAYLOAD_SIZE, RECORD_SIZE, RecordType
from .timebase import BACKWARD_TOLERANCE_S

# One chunk's event records: storage index, records, file offset and page sequence of each.
_EventPart = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
RECORD_DTYPE = np.dtype([("clock", "<u4"), ("code", "<u2"), ("aux", "<u2"), ("payload", f"V{PAYLOAD_SIZE}")])


def payload_dtype(t: RecordType) -> np.dtype:
    """A 24-byte structured dtype for one record type's payload."""
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    pos = 0
    for f in t.fields:
        names.append(f.name)
        formats.append(f.dtype)
        offsets.append(pos)
        pos += f.size
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": PAYLOAD_SIZE})


def _struct_fields(dt: np.dtype) -> list[tuple[str, np.dtype, int]]:
    """``(name, dtype, offset)`` of each field of a structured dtype, in order."""
    if dt.names is None or dt.fields is None:
        raise TypeError(f"{dt} is not a structured dtype")
    return [(n, dt.fields[n][0], dt.fields[n][1]) for n in dt.names]


PAYLOAD_DTYPES = {code: payload_dtype(t) for code, t in BY_CODE.items()}
_DP = _struct_fields(PAYLOAD_DTYPES[DELIVERY_CODE])
DELIVERY_RECORD_DTYPE = np.dtype(
    {
        "names": ["clock", "code", "aux", *[n for n, _, _ in _DP]],
        "formats": ["<u4", "<u2", "<u2", *[t for _, t, _ in _DP]],
        "offsets": [0, 4, 6, *[8 + off for _, _, off in _DP]],
        "itemsize": RECORD_SIZE,
    }
)


def page_dtype(page_size: int) -> np.dtype:
    """Header and trailer fields of a page, viewed over the whole page."""
    return np.dtype(
        {
            "names": ["sync", "count", "slot", "seq", "crc"],
            "formats": ["<u2", "<u2", "<u4", "<u4", "<u4"],
            "offsets": [0, 2, 4, 8, page_size - fmt.PAGE_TRAILER_SIZE],
            "itemsize": page_size,
        }
    )


def scan_pages(buf: memoryview, start: int, n_pages: int, page_size: int) -> PageScan:
    """Read every stored page's header and check its CRC."""
    heads = np.frombuffer(buf, dtype=page_dtype(page_size), count=n_pages, offset=start)
    body = page_size - fmt.PAGE_TRAILER_SIZE
    crc = np.fromiter(
        (crc32c(buf[o : o + body]) for o in range(start, start + n_pages * page_size, page_size)),
        dtype=np.uint32,
        count=n_pages,
    )
    return PageScan(
        offset=start + np.arange(n_pages, dtype=np.int64) * page_size,
        sync=heads["sync"].copy(),
        count=heads["count"].copy(),
        slot=heads["slot"].copy(),
        seq=heads["seq"].copy(),
        crc_stored=heads["crc"].copy(),
        crc_ok=heads["crc"] == crc,
    )


AHEAD_RECORDS = 1 << 20  # stored records from which the columns are paged in ahead


class Columns:
    """The decoder's columns for up to ``rows`` records: every record's pump clock, and the
    delivery table's columns, the raw values of its enum fields, and its rows' clocks, aux
    words, byte offsets and page sequence numbers.  Rows never written are never paged in."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.clock = np.empty(rows, dtype=np.uint32)
        self.delivery = {k: np.empty(rows, dtype=delivery_column_dtype(k)) for k in DELIVERY_FIELDS}
        self.raw = {k: np.empty(rows, dtype=t) for k, t in ENUM_DELIVERY_FIELDS.items()}
        self.delivery_clock = np.empty(rows, dtype=np.uint32)
        self.delivery_aux = np.empty(rows, dtype=np.uint16)
        self.delivery_offset = np.empty(rows, dtype=np.int64)
        self.delivery_page_seq = np.empty(rows, dtype=np.uint32)
        self._paging: threading.Thread | None = None

    @classmethod
    def ahead(
        cls, buf: memoryview, start: int, n_pages: int, page_size: int, workers: int | None = None
    ) -> Columns | None:
        """Columns for every record the stored pages claim, paged in on another thread while
        this one checks the pages' CRCs (a loop that keeps one core busy, the other idle):
        the kernel maps and clears the memory now, not when the decoder first writes there.
        None for a small log, or with ``workers`` 1."""
        rpp = fmt.records_per_page(page_size)
        if (default_workers() if workers is None else workers) < 2 or n_pages * rpp < AHEAD_RECORDS:
            return None
        counts = np.ndarray((n_pages,), "<u2", buf, start + 2, (page_size,))
        out = cls(int(np.minimum(counts, rpp).sum()))
        out._paging = threading.Thread(target=out._page_in, name="itblog-page-in", daemon=True)
        out._paging.start()
        return out

    def ready(self) -> Columns:
        """These columns, once paged in."""
        if self._paging is not None:
            self._paging.join()
        return self

    def _page_in(self) -> None:
        for a in [self.clock, *self.delivery.values(), *self.raw.values(), self.delivery_clock,
                  self.delivery_aux, self.delivery_offset, self.delivery_page_seq]:
            a.view(np.uint8)[::_MEMORY_PAGE] = 0  # one byte a page: the kernel clears the rest


_MEMORY_PAGE = 4096


CHUNK_PAGES = 1024  # at most this many pages decoded at a time ...
CHUNK_BYTES = 2 << 20  # ... and about this many bytes of them: the temporaries stay in cache


def chunk_pages(page_size: int) -> int:
    """Pages decoded at a time."""
    return max(1, min(CHUNK_PAGES, CHUNK_BYTES // page_size))


def default_workers() -> int:
    """Threads for decoding a large log: numpy releases the GIL in the copies and
    conversions that make up the work, so chunks decode in parallel on separate cores."""
    return max(
        1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


def decode_records(
    buf: memoryview,
    start: int,
    n_pages: int,
    page_size: int,
    scan: PageScan,
    order: PageOrder,
    workers: int | None = None,
    columns: Columns | None = None,
) -> DecodedRecords:
    """Decode the records of the accepted pages, in sequence order, in one pass (into
    ``columns``, from :meth:`Columns.ahead`, if they are large enough).

    The pages are seen as one array of 32-byte slots: a page of ``page_size`` bytes is
    ``page_size / 32`` slots, its records and then one slot across its CRC and the next
    page's header, so a run of consecutive pages is one contiguous array and a record's byte
    offset is ``first + 32 * slot``.  A chunk of accepted pages at a time (a view of the
    file, copied only where the chunk jumps between runs), the delivery records are taken
    out once and each field converted straight into its table column while the chunk is in
    cache; the few event records are decoded per record type at the end.

    The columns are allocated for every record (the pages' counts bound the delivery rows;
    the rows never written are never paged in) and returned trimmed.  Each chunk, as soon as
    it has found its delivery records, passes on where the next chunk's rows start, so
    ``workers`` threads (default :func:`default_workers`) decode chunks in parallel with
    no counting pass before."""
    rpp = fmt.records_per_page(page_size)
    spp = page_size // RECORD_SIZE  # slots per page: a power of two, as page sizes are
    shift = spp.bit_length() - 1
    first = start + fmt.PAGE_HEADER_SIZE
    n_slots = n_pages * spp - 1  # the last page's last slot would run past its end
    words = np.frombuffer(buf, dtype=np.uint64, count=n_slots * 4, offset=first).reshape(-1, 4)
    idx = order.accepted
    counts = scan.count[idx].astype(np.int64)
    page_first = np.cumsum(counts) - counts  # storage position of each page's first record
    total = int(counts.sum())
    step = chunk_pages(page_size)
    chunk_starts = list(range(0, len(idx), step))
    out = columns.ready() if columns is not None and columns.rows >= total else Columns(total)
    clock, cols, raw_enum = out.clock[:total], out.delivery, out.raw
    dclock, daux = out.delivery_clock, out.delivery_aux
    doffset, dseq = out.delivery_offset, out.delivery_page_seq
    chain = _RowChain(len(chunk_starts))
    scratch = threading.local()

    def decode_chunk(ci: int) -> tuple[_EventPart | None, tuple[np.ndarray, np.ndarray]]:
        with chain.link(ci):
            c0 = chunk_starts[ci]
            ic, cc = idx[c0 : c0 + step], counts[c0 : c0 + step]
            m, p = len(ic), int(page_first[c0])
            # the chunk's slots, page i's lane j at row i * spp + j
            a = int(ic[0])
            run = (a + m) * spp <= n_slots and bool(np.all(np.diff(ic) == 1))
            raw = words[a * spp : (a + m) * spp] if run else _gather(words, ic, spp)
            recs = raw.view(RECORD_DTYPE).reshape(m, spp)
            is_del = recs["code"] == DELIVERY_CODE
            short = np.flatnonzero(cc < rpp).tolist()  # pages not full (the newest, damaged ones)
            _past_records(is_del, cc, short, rpp)
            sel = np.flatnonzero(is_del)
            k = len(sel)
            q = chain.rows(ci, k)  # where this chunk's delivery rows go; the next chunk's follow
        n = int(cc.sum())
        if short:
            clock[p : p + n] = recs["clock"][np.arange(spp) < cc[:, None]]
        else:
            clock[p : p + n].reshape(m, rpp)[...] = recs["clock"][:, :rpp]
        rows = slice(q, q + k)
        full = np.take(raw, sel, axis=0, out=_scratch(scratch, step * spp)[:k], mode="clip")
        full = full.view(DELIVERY_RECORD_DTYPE).reshape(-1)  # the one copy of the records
        for name, col in raw_enum.items():
            col[rows] = full[name]
        for name, col in cols.items():
            convert_delivery(name, raw_enum[name][rows] if name in raw_enum else full[name], col[rows])
        dclock[rows] = full["clock"]
        daux[rows] = full["aux"]
        # row r of the chunk is slot ic[r >> shift] * spp + r % spp, at byte first + 32 * slot
        np.multiply(sel, RECORD_SIZE, out=doffset[rows])
        sel >>= shift  # the page in the chunk
        if run:
            doffset[rows] += first + RECORD_SIZE * spp * a
        else:
            doffset[rows] += np.take(first + RECORD_SIZE * spp * (ic - np.arange(m)), sel, mode="clip")
        np.take(scan.seq[ic], sel, out=dseq[rows], mode="clip")
        # section-12 row checks on the columns just written, while they are in cache
        flagged = _row_candidates(dclock[rows], cols["stalled_s"][rows], cols["interval_s"][rows], q)
        if k == n:
            return None, flagged
        np.logical_not(is_del, out=is_del)  # now: the event records
        _past_records(is_del, cc, short, rpp)
        at = np.flatnonzero(is_del)
        page, lane = at >> shift, at & (spp - 1)
        ev = np.take(raw, at, axis=0, mode="clip").view(RECORD_DTYPE).reshape(-1)
        offsets = (ic[page] * spp + lane) * RECORD_SIZE + first
        return (page_first[c0 + page] + lane, ev, offsets, scan.seq[ic[page]]), flagged

    workers = default_workers() if workers is None else max(1, workers)
    chunks = range(len(chunk_starts))
    if workers > 1 and len(chunk_starts) > 1:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(decode_chunk, chunks))
    else:
        results = list(map(decode_chunk, chunks))
    q_first = chain.starts
    nd = q_first[-1]
    cols = {k: v[:nd] for k, v in cols.items()}
    raw_enum = {k: v[:nd] for k, v in raw_enum.items()}
    dclock, daux, doffset, dseq = dclock[:nd], daux[:nd], doffset[:nd], dseq[:nd]
    parts = [part for part, _ in results]
    # each chunk's first row against the row before it, in an earlier chunk
    firsts = np.array([q for q, q_next in itertools.pairwise(q_first) if 0 < q < q_next], dtype=np.int64)
    seam = firsts[_starts_early(dclock[firsts], dclock[firsts - 1], cols["interval_s"][firsts])]
    flags = [f for _, f in results]
    row_flags = (
        np.concatenate([np.empty(0, np.int64), *(a for a, _ in flags)]),
        np.sort(np.concatenate([seam, *(b for _, b in flags)])),
    )
    ev_parts = [part for part in parts if part is not None]
    if ev_parts:
        event_idx, ev, ev_offset, ev_seq = (np.concatenate(a) for a in zip(*ev_parts, strict=True))
    else:
        event_idx, ev = np.empty(0, np.int64), np.empty(0, RECORD_DTYPE)
        ev_offset, ev_seq = np.empty(0, np.int64), np.empty(0, np.uint32)
    events, unknown = _event_fields(ev)
    return DecodedRecords(
        clock=clock,
        event_idx=event_idx.astype(np.int64, copy=False),
        event_code=ev["code"].copy(),
        event_clock=ev["clock"].copy(),
        event_aux=ev["aux"].copy(),
        event_offset=ev_offset.astype(np.int64, copy=False),
        event_page_seq=ev_seq.astype(np.uint32, copy=False),
        events=events,
        unknown_payload=unknown,
        delivery_clock=dclock,
        delivery_aux=daux,
        delivery_offset=doffset,
        delivery_page_seq=dseq,
        delivery=cols,
        delivery_raw=raw_enum,
        row_flags=row_flags,
    )


class _RowChain:
    """Where each chunk's delivery rows start, passed from chunk to chunk: a chunk learns its
    start from the chunk before it and passes on its own end as soon as it has counted its
    rows, so chunks decode in parallel and their rows still come out in sequence order."""

    def __init__(self, n: int) -> None:
        self.starts: list[int] = [0] + [-1] * n  # -1: not known (yet)
        self._ready = [threading.Event() for _ in range(n + 1)]
        self._ready[0].set()

    @contextlib.contextmanager
    def link(self, ci: int) -> Iterator[None]:
        """Chunk ``ci`` counts its rows in this block; when it ends, even by an error, the
        next chunk may go on.  After an error every later chunk is released at once, and fails
        too: a chunk the pool cancels because of the error never runs to release the one after
        it, which must not wait for ever."""
        try:
            yield
        except BaseException:
            for ready in self._ready[ci + 1 :]:
                ready.set()
            raise
        finally:
            self._ready[ci + 1].set()

    def rows(self, ci: int, k: int) -> int:
        """Chunk ``ci``'s first row, once the chunk before has passed it on; the next
        chunk's is ``k`` rows on."""
        self._ready[ci].wait()
        q = self.starts[ci]
        if q < 0:
            raise RuntimeError("an earlier chunk of the log failed to decode")
        self.starts[ci + 1] = q + k
        return q


def _scratch(local: threading.local, rows: int) -> np.ndarray:
    """This thread's buffer of ``rows`` records, made once per decode: a chunk's records are
    copied into the same memory every time, not into memory the allocator has just freed
    and handed back to the system."""
    buf = getattr(local, "records", None)
    if buf is None:
        buf = local.records = np.empty((rows, 4), dtype=np.uint64)
    return buf


def _past_records(mask: np.ndarray, held: np.ndarray, short: list[int], rpp: int) -> None:
    """Clear a (pages, slots) mask beyond each page's records: the slot across the CRC and
    the next header, and the unused slots of the pages in ``short``."""
    mask[:, rpp:] = False
    for i in short:
        mask[i, held[i] :] = False


def _starts_early(clock: np.ndarray, prev: np.ndarray, interval: np.ndarray) -> np.ndarray:
    """Rows stamped less than ``interval`` minus 2 s after the row before them (a candidate
    overlap, docs/log-format.md 12.1; :mod:`parsers.checks` applies the rest of the rule)."""
    d = clock.astype(np.int64)
    d -= prev
    d += BACKWARD_TOLERANCE_S
    return d < interval


def _row_candidates(
    clock: np.ndarray, stalled: np.ndarray, interval: np.ndarray, q: int
) -> tuple[np.ndarray, np.ndarray]:
    """In one chunk's delivery rows (the first is delivery row ``q``): rows whose
    ``stalled_s`` exceeds ``interval_s``, and rows (after the chunk's first) that start early."""
    long_rows = np.flatnonzero(stalled > interval) + q
    if len(clock) < 2:
        return long_rows, np.empty(0, dtype=np.int64)
    early = np.flatnonzero(_starts_early(clock[1:], clock[:-1], interval[1:])) + (q + 1)
    return long_rows, early


def _gather(words: np.ndarray, pages: np.ndarray, spp: int) -> np.ndarray:
    """The slots of ``pages`` (page i's at rows ``i * spp`` on), copied a run of consecutive
    pages at a time; the slot after a run's last record is left unset."""
    out = np.empty((len(pages) * spp, words.shape[1]), dtype=words.dtype)
    breaks = [0, *(np.flatnonzero(np.diff(pages) != 1) + 1).tolist(), len(pages)]
    for i, j in itertools.pairwise(breaks):
        a, b = int(pages[i]) * spp, (int(pages[j - 1]) + 1) * spp - 1
        out[i * spp : i * spp + b - a] = words[a:b]
    return out


def _event_fields(ev: np.ndarray) -> tuple[dict[str, np.ndarray], dict[int, bytes]]:
    """Each event field's raw integers (0 where the type has no such field), one pass per
    record type; unknown types keep their payload bytes.  The fields are rows of one block:
    one large allocation, not dozens of middling ones each paged in afresh."""
    n = len(ev)
    events = dict(zip(EVENT_FIELDS, np.zeros((len(EVENT_FIELDS), n), dtype=np.int64), strict=True))
    unknown: dict[int, bytes] = {}
    if n == 0:
        return events, unknown
    code = ev["code"]
    words = np.ascontiguousarray(ev).view(np.uint64).reshape(n, 4)
    by_code = np.argsort(code, kind="stable")  # each type's rows in order, one after the other
    kinds, firsts = np.unique(code[by_code], return_index=True)
    for c, rows in zip(kinds.tolist(), np.split(by_code, firsts[1:]), strict=True):
        dt = _EVENT_RECORD_DTYPES.get(c)
        if dt is None:
            for r in rows.tolist():
                unknown[r] = ev["payload"][r].tobytes()
            continue
        vals = np.take(words, rows, axis=0).view(dt).reshape(-1)
        for name, _, _ in _struct_fields(dt):
            events[name][rows] = vals[name]
    return events, unknown


def _record_dtype(payload: np.dtype) -> np.dtype:
    """A 32-byte dtype of a whole record with only ``payload``'s fields, at their place."""
    fields = _struct_fields(payload)
    return np.dtype(
        {
            "names": [name for name, _, _ in fields],
            "formats": [t for _, t, _ in fields],
            "offsets": [8 + off for _, _, off in fields],
            "itemsize": RECORD_SIZE,
        }
    )


_EVENT_RECORD_DTYPES = {c: _record_dtype(dt) for c, dt in PAYLOAD_DTYPES.items() if c != DELIVERY_CODE}
