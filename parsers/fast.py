"""The fast decoder: numpy views over a read-only memory map, one pass per record type.

Pages are checked with one CRC call each.  Records are read through numpy structured dtypes
generated from the record table, over strided views of the pages, a chunk of pages at a
time; delivery records (nearly all of a log) go straight into their table columns, and the
few event records are decoded per record type.  Nothing is decoded one record at a time.
"""

from __future__ import annotations

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

RECORD_DTYPE = np.dtype([("clock", "<u4"), ("code", "<u2"), ("aux", "<u2"), ("payload", f"V{PAYLOAD_SIZE}")])


def payload_dtype(t: RecordType) -> np.dtype:
    """A 24-byte structured dtype for one record type's payload."""
    names, formats, offsets, pos = [], [], [], 0
    for f in t.fields:
        names.append(f.name)
        formats.append(f.dtype)
        offsets.append(pos)
        pos += f.size
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": PAYLOAD_SIZE})


PAYLOAD_DTYPES = {code: payload_dtype(t) for code, t in BY_CODE.items()}
_DP = PAYLOAD_DTYPES[DELIVERY_CODE]
DELIVERY_RECORD_DTYPE = np.dtype(
    {
        "names": ["clock", "code", "aux", *_DP.names],
        "formats": ["<u4", "<u2", "<u2", *[_DP.fields[n][0] for n in _DP.names]],
        "offsets": [0, 4, 6, *[8 + _DP.fields[n][1] for n in _DP.names]],
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


def decode_records(
    buf: memoryview, start: int, n_pages: int, page_size: int, scan: PageScan, order: PageOrder
) -> DecodedRecords:
    """Decode the records of the accepted pages, in sequence order.

    Works through the pages a chunk at a time over strided views of the file, writing each
    delivery column straight into its preallocated table column while the chunk is in cache;
    the few event records are gathered and decoded per record type at the end."""
    rpp = fmt.records_per_page(page_size)
    # each record as four 8-byte words: gathers and takes of plain integers are much faster
    # in numpy than boolean indexing or copies of structured records
    words = np.ndarray(
        (n_pages, rpp, 4), np.uint64, buf, start + fmt.PAGE_HEADER_SIZE, (page_size, RECORD_SIZE, 8)
    )
    idx = order.accepted
    counts = scan.count[idx].astype(np.int64)
    page_first = np.cumsum(counts) - counts  # storage position of each page's first record
    total = int(counts.sum())
    clock = np.empty(total, dtype=np.uint32)
    # delivery rows are at most all records; pages of the unused tail are never touched
    cols = {k: np.empty(total, dtype=delivery_column_dtype(k)) for k in DELIVERY_FIELDS}
    raw_enum = {k: np.empty(total, dtype=t) for k, t in ENUM_DELIVERY_FIELDS.items()}
    dclock = np.empty(total, dtype=np.uint32)
    daux = np.empty(total, dtype=np.uint16)
    doffset = np.empty(total, dtype=np.int64)
    dseq = np.empty(total, dtype=np.uint32)
    ev_parts: list[tuple[np.ndarray, ...]] = []
    lane = np.arange(rpp, dtype=np.int64)
    lane_bytes = lane * RECORD_SIZE
    p = q = 0
    for c0 in range(0, len(idx), CHUNK_PAGES):
        ic = idx[c0 : c0 + CHUNK_PAGES]
        cc = counts[c0 : c0 + CHUNK_PAGES]
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
        if k < n:
            f = np.flatnonzero(is_ev)
            r, j = np.divmod(f, rpp)
            ev = np.take(raw, f, axis=0).view(RECORD_DTYPE).reshape(-1)
            ev_parts.append((page_first[c0 + r] + j, ev, offsets[f], seqs[f]))
        p += n
        q += k

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
        delivery_clock=dclock[:q],
        delivery_aux=daux[:q],
        delivery_offset=doffset[:q],
        delivery_page_seq=dseq[:q],
        delivery={name: col[:q] for name, col in cols.items()},
        delivery_raw={name: col[:q] for name, col in raw_enum.items()},
    )


def _gather(words: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """The records of ``pages`` as one contiguous array, copied a run of consecutive pages
    at a time (a plain copy; numpy's fancy indexing over the strided file is far slower)."""
    breaks = np.flatnonzero(np.diff(pages) != 1) + 1
    runs = np.split(pages, breaks) if len(breaks) else [pages]
    if len(runs) == 1:
        return np.ascontiguousarray(words[pages[0] : pages[-1] + 1])
    out = np.empty((len(pages), *words.shape[1:]), dtype=words.dtype)
    i = 0
    for run in runs:
        out[i : i + len(run)] = words[run[0] : run[-1] + 1]
        i += len(run)
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
        for name in dt.names:
            events[name][rows] = vals[name]
    return events, unknown
