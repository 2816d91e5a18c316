"""The fast decoder: numpy views over a read-only memory map, one pass per record type.

Pages are checked with one CRC call each.  Records are read through numpy structured dtypes
generated from the record table, over strided views of the pages, a chunk of pages at a
time; delivery records (nearly all of a log) go straight into their table columns, and the
few event records are decoded per record type.  Nothing is decoded one record at a time.
"""

from __future__ import annotations

import itertools
import os
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
from .errors import LogFormatError
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


CHUNK_PAGES = 1024  # pages worked at a time: keeps the temporaries to a few MiB, in cache


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
) -> DecodedRecords:
    """Decode the records of the accepted pages, in sequence order.

    Works through the pages a chunk at a time over views of the file, writing each delivery
    column straight into its preallocated table column while the chunk is in cache; the few
    event records are gathered and decoded per record type at the end.  A first, cheap pass
    counts each chunk's delivery records, so that chunks own disjoint slices of the columns
    and can be decoded by ``workers`` threads (default :func:`default_workers`)."""
    rpp = fmt.records_per_page(page_size)
    # each record as four 8-byte words: gathers and takes of plain integers are much faster
    # in numpy than boolean indexing or copies of structured records
    first_rec = start + fmt.PAGE_HEADER_SIZE
    words = np.ndarray((n_pages, rpp, 4), np.uint64, buf, first_rec, (page_size, RECORD_SIZE, 8))
    codes = np.ndarray((n_pages, rpp), "<u2", buf, first_rec + 4, (page_size, RECORD_SIZE))
    idx = order.accepted
    counts = scan.count[idx].astype(np.int64)
    page_first = np.cumsum(counts) - counts  # storage position of each page's first record
    total = int(counts.sum())
    clock = np.empty(total, dtype=np.uint32)
    lane = np.arange(rpp, dtype=np.int64)
    lane_bytes = lane * RECORD_SIZE
    chunk_starts = list(range(0, len(idx), CHUNK_PAGES))

    def delivery_count(c0: int) -> int:
        return _count_delivery(codes, idx[c0 : c0 + CHUNK_PAGES], counts[c0 : c0 + CHUNK_PAGES], lane)

    workers = default_workers() if workers is None else max(1, workers)
    pool = ThreadPoolExecutor(workers) if workers > 1 and len(chunk_starts) > 1 else None
    try:
        n_del = list(pool.map(delivery_count, chunk_starts) if pool else map(delivery_count, chunk_starts))
        q_first = np.cumsum([0, *n_del])
        nd = int(q_first[-1])
        cols = {k: np.empty(nd, dtype=delivery_column_dtype(k)) for k in DELIVERY_FIELDS}
        raw_enum = {k: np.empty(nd, dtype=t) for k, t in ENUM_DELIVERY_FIELDS.items()}
        dclock = np.empty(nd, dtype=np.uint32)
        daux = np.empty(nd, dtype=np.uint16)
        doffset = np.empty(nd, dtype=np.int64)
        dseq = np.empty(nd, dtype=np.uint32)

        def decode_chunk(ci: int) -> tuple[_EventPart | None, tuple[np.ndarray, np.ndarray]]:
            c0 = chunk_starts[ci]
            ic, cc = idx[c0 : c0 + CHUNK_PAGES], counts[c0 : c0 + CHUNK_PAGES]
            p, q = int(page_first[c0]), int(q_first[ci])
            raw = _gather(words, ic).reshape(-1, 4)
            recs = raw.view(RECORD_DTYPE).reshape(-1)
            valid = None if np.all(cc == rpp) else (lane[None, :] < cc[:, None]).reshape(-1)
            n = int(cc.sum())
            clock[p : p + n] = recs["clock"] if valid is None else recs["clock"][valid]
            is_del = recs["code"] == DELIVERY_CODE
            is_ev = ~is_del
            if valid is not None:
                is_del &= valid
                is_ev &= valid
            sel = np.flatnonzero(is_del)
            k = len(sel)
            if k != n_del[ci]:  # the file changed under the map between the two passes
                raise LogFormatError(None, int(scan.offset[ic[0]]), "the log changed while it was being read")
            full = np.take(raw, sel, axis=0).view(DELIVERY_RECORD_DTYPE).reshape(-1)  # one copy
            for name, col in cols.items():
                convert_delivery(name, full[name], col[q : q + k])
            for name, col in raw_enum.items():
                col[q : q + k] = full[name]
            dclock[q : q + k] = full["clock"]
            daux[q : q + k] = full["aux"]
            offsets = ((scan.offset[ic] + fmt.PAGE_HEADER_SIZE)[:, None] + lane_bytes).reshape(-1)
            seqs = np.repeat(scan.seq[ic], rpp)
            np.take(offsets, sel, out=doffset[q : q + k])
            np.take(seqs, sel, out=dseq[q : q + k])
            # section-12 row checks on the columns just written, while they are in cache
            rows = slice(q, q + k)
            flagged = _row_candidates(dclock[rows], cols["stalled_s"][rows], cols["interval_s"][rows], q)
            if k == n:
                return None, flagged
            f = np.flatnonzero(is_ev)
            r, j = np.divmod(f, rpp)
            ev = np.take(raw, f, axis=0).view(RECORD_DTYPE).reshape(-1)
            return (page_first[c0 + r] + j, ev, offsets[f], seqs[f]), flagged

        chunks = range(len(chunk_starts))
        results = list(pool.map(decode_chunk, chunks) if pool else map(decode_chunk, chunks))
    finally:
        if pool:
            pool.shutdown()
    parts = [part for part, _ in results]
    # each chunk's first row against the row before it, in an earlier chunk
    firsts = np.array([q_first[ci] for ci in chunks if n_del[ci] and q_first[ci] > 0], dtype=np.int64)
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


def _count_delivery(codes: np.ndarray, pages: np.ndarray, counts: np.ndarray, lane: np.ndarray) -> int:
    """How many delivery records ``pages`` hold (``codes``: every stored record's type code)."""
    return sum(
        int(np.count_nonzero((codes[a:b] == DELIVERY_CODE) & (lane[None, :] < counts[i : i + b - a, None])))
        for i, a, b in _runs(pages)
    )


def _runs(pages: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of consecutive page numbers: (position in ``pages``, first page, end page)."""
    breaks = [0, *(np.flatnonzero(np.diff(pages) != 1) + 1).tolist(), len(pages)]
    return [(i, int(pages[i]), int(pages[j - 1]) + 1) for i, j in itertools.pairwise(breaks)]


def _gather(words: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """The records of ``pages`` as one contiguous array, copied a run of consecutive pages
    at a time (a plain copy; numpy's fancy indexing over the strided file is far slower)."""
    runs = _runs(pages)
    if len(runs) == 1:
        return np.ascontiguousarray(words[runs[0][1] : runs[0][2]])
    out = np.empty((len(pages), *words.shape[1:]), dtype=words.dtype)
    for i, a, b in runs:
        out[i : i + b - a] = words[a:b]
    return out


def _event_fields(ev: np.ndarray) -> tuple[dict[str, np.ndarray], dict[int, bytes]]:
    """Each event field's raw integers (0 where the type has no such field), one pass per
    record type; unknown types keep their payload bytes."""
    n = len(ev)
    events = {k: np.zeros(n, dtype=np.int64) for k in EVENT_FIELDS}
    unknown: dict[int, bytes] = {}
    code = ev["code"]
    payloads = ev["payload"]
    for c in np.unique(code).tolist():
        rows = np.flatnonzero(code == c)
        dt = PAYLOAD_DTYPES.get(c)
        if dt is None:
            for r in rows.tolist():
                unknown[r] = payloads[r].tobytes()
            continue
        vals = payloads[rows].view(dt)
        for name, _, _ in _struct_fields(dt):
            events[name][rows] = vals[name]
    return events, unknown
