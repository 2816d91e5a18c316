"""The fast decoder: numpy views over a read-only memory map, one pass per record type.

Pages are checked with one CRC call each; their records are gathered in sequence order
with a single fancy-indexing copy, and each record type's payload is read through a numpy
structured dtype generated from the record table.  Nothing is decoded one record at a time.
"""

from __future__ import annotations

import numpy as np

from . import format as fmt
from .crc import crc32c
from .decoded import DELIVERY_FIELDS, EVENT_FIELDS, DecodedRecords
from .pages import PageOrder, PageScan
from .records import BY_CODE, DELIVERY_CODE, PAYLOAD_SIZE, RECORD_SIZE, RecordType

_NP = {"u8": "<u1", "u16": "<u2", "u32": "<u4"}

RECORD_DTYPE = np.dtype([("clock", "<u4"), ("code", "<u2"), ("aux", "<u2"), ("payload", f"V{PAYLOAD_SIZE}")])


def payload_dtype(t: RecordType) -> np.dtype:
    """A 24-byte structured dtype for one record type's payload."""
    names, formats, offsets, pos = [], [], [], 0
    for f in t.fields:
        names.append(f.name)
        formats.append(_NP[f.ctype])
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


def decode_records(
    buf: memoryview, start: int, n_pages: int, page_size: int, scan: PageScan, order: PageOrder
) -> DecodedRecords:
    """Decode the records of the accepted pages, in sequence order."""
    rpp = fmt.records_per_page(page_size)
    area = rpp * RECORD_SIZE
    pages = np.frombuffer(buf, dtype=np.uint8, count=n_pages * page_size, offset=start)
    pages = pages.reshape(n_pages, page_size)
    idx = order.accepted
    counts = scan.count[idx].astype(np.int64)
    total = int(counts.sum())
    # gather the record areas as plain bytes (much faster than a structured-record gather)
    raw = pages[idx, fmt.PAGE_HEADER_SIZE : fmt.PAGE_HEADER_SIZE + area]
    grid = raw.view(RECORD_DTYPE)  # (pages, records per page)
    base = (scan.offset[idx] + fmt.PAGE_HEADER_SIZE)[:, None] + np.arange(rpp, dtype=np.int64) * RECORD_SIZE
    seq = np.broadcast_to(scan.seq[idx][:, None], (len(idx), rpp))  # uint32
    if total == 0 or np.all(counts[:-1] == rpp):  # the usual case: only the newest page is partial
        recs = grid.reshape(-1)[:total]
        offset = base.reshape(-1)[:total]
        page_seq = seq.reshape(-1)[:total]
    else:
        keep = np.arange(rpp)[None, :] < counts[:, None]
        recs, offset, page_seq = grid[keep], base[keep], seq[keep]

    code = recs["code"]
    is_del = code == DELIVERY_CODE
    delivery_idx = np.flatnonzero(is_del)
    event_idx = np.flatnonzero(~is_del)
    # delivery rows: one row gather of raw bytes, then every field (clock and aux included) is a view
    rows = recs.view(np.uint8).reshape(-1, RECORD_SIZE) if recs.flags.c_contiguous else None
    if rows is None:
        rows = np.ascontiguousarray(recs).view(np.uint8).reshape(-1, RECORD_SIZE)
    full = np.take(rows, delivery_idx, axis=0).view(DELIVERY_RECORD_DTYPE).reshape(-1)
    delivery = {k: full[k] for k in DELIVERY_FIELDS}

    ev_code = code[event_idx]
    events = {k: np.full(len(event_idx), np.nan) for k in EVENT_FIELDS}
    unknown: dict[int, bytes] = {}
    payloads = recs["payload"][event_idx]
    for c in np.unique(ev_code).tolist():
        rows = np.flatnonzero(ev_code == c)
        dt = PAYLOAD_DTYPES.get(c)
        if dt is None:
            for r in rows.tolist():
                unknown[r] = payloads[r].tobytes()
            continue
        vals = payloads[rows].view(dt)
        for name in dt.names:
            events[name][rows] = vals[name]
    return DecodedRecords(
        clock=recs["clock"],
        code=code,
        aux=recs["aux"],
        offset=offset,
        page_seq=page_seq,
        delivery_idx=delivery_idx,
        delivery=delivery,
        event_idx=event_idx,
        events=events,
        unknown_payload=unknown,
        delivery_clock=full["clock"],
        delivery_aux=full["aux"],
    )
