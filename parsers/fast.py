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
from .frames import convert_delivery, delivery_column_dtype
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


CHUNK_PAGES = 1024  # pages gathered at a time: bounds the temporary copies to a few MiB


def decode_records(
    buf: memoryview, start: int, n_pages: int, page_size: int, scan: PageScan, order: PageOrder
) -> DecodedRecords:
    """Decode the records of the accepted pages, in sequence order.

    Works through the pages a chunk at a time, writing straight into preallocated output
    arrays, so the only full-size arrays are the outputs themselves."""
    rpp = fmt.records_per_page(page_size)
    area = rpp * RECORD_SIZE
    pages = np.frombuffer(buf, dtype=np.uint8, count=n_pages * page_size, offset=start)
    pages = pages.reshape(n_pages, page_size)
    idx = order.accepted
    counts = scan.count[idx].astype(np.int64)
    total = int(counts.sum())
    clock = np.empty(total, dtype=np.uint32)
    code = np.empty(total, dtype=np.uint16)
    aux = np.empty(total, dtype=np.uint16)
    offset = np.empty(total, dtype=np.int64)
    page_seq = np.empty(total, dtype=np.uint32)
    # delivery columns are converted chunk by chunk while the records are in cache
    dcols = {k: np.empty(total, dtype=delivery_column_dtype(k)) for k in DELIVERY_FIELDS}
    dmode = np.empty(total, dtype=np.uint8)  # raw mode values, to name unknown modes
    dclock = np.empty(total, dtype=np.uint32)
    daux = np.empty(total, dtype=np.uint16)
    doffset = np.empty(total, dtype=np.int64)
    dseq = np.empty(total, dtype=np.uint32)
    ev_rows: list[np.ndarray] = []
    lane = np.arange(rpp, dtype=np.int64)
    p = q = 0
    for c0 in range(0, len(idx), CHUNK_PAGES):
        ic = idx[c0 : c0 + CHUNK_PAGES]
        cc = counts[c0 : c0 + CHUNK_PAGES]
        # gather the record areas as plain bytes (much faster than a structured gather)
        raw = pages[ic, fmt.PAGE_HEADER_SIZE : fmt.PAGE_HEADER_SIZE + area].reshape(-1, RECORD_SIZE)
        base = (scan.offset[ic] + fmt.PAGE_HEADER_SIZE)[:, None] + lane * RECORD_SIZE
        seq = np.broadcast_to(scan.seq[ic][:, None], (len(ic), rpp))
        if np.all(cc[:-1] == rpp):  # the usual case: only the newest page is partial
            n = int(cc.sum())
            rows = raw[:n]
            offset[p : p + n] = base.reshape(-1)[:n]
            page_seq[p : p + n] = seq.reshape(-1)[:n]
        else:
            keep = (lane[None, :] < cc[:, None]).reshape(-1)
            rows = raw[keep]
            n = len(rows)
            offset[p : p + n] = base.reshape(-1)[keep]
            page_seq[p : p + n] = seq.reshape(-1)[keep]
        recs = rows.view(RECORD_DTYPE).reshape(-1)
        clock[p : p + n] = recs["clock"]
        code[p : p + n] = recs["code"]
        aux[p : p + n] = recs["aux"]
        is_del = recs["code"] == DELIVERY_CODE
        sel = np.flatnonzero(is_del)
        k = len(sel)
        full = np.take(rows, sel, axis=0).view(DELIVERY_RECORD_DTYPE).reshape(-1)
        for name, col in dcols.items():
            convert_delivery(name, full[name], col[q : q + k])
        dmode[q : q + k] = full["mode"]
        dclock[q : q + k] = full["clock"]
        daux[q : q + k] = full["aux"]
        np.take(offset[p : p + n], sel, out=doffset[q : q + k])
        np.take(page_seq[p : p + n], sel, out=dseq[q : q + k])
        if k < n:
            ev_rows.append(np.take(rows, np.flatnonzero(~is_del), axis=0))
        p += n
        q += k
    columns = {name: col[:q] for name, col in dcols.items()}
    delivery = {"mode": dmode[:q]}  # raw values of the enum, to name modes it does not know
    is_del = code == DELIVERY_CODE
    delivery_idx = np.flatnonzero(is_del)
    event_idx = np.flatnonzero(~is_del)

    ev_code = code[event_idx]
    block = np.full((len(EVENT_FIELDS), len(event_idx)), np.nan)  # one allocation for all columns
    events = {k: block[i] for i, k in enumerate(EVENT_FIELDS)}
    unknown: dict[int, bytes] = {}
    ev = (np.concatenate(ev_rows) if ev_rows else np.empty((0, RECORD_SIZE), np.uint8)).view(RECORD_DTYPE)
    payloads = ev.reshape(-1)["payload"]
    for c in np.unique(ev_code).tolist():
        rows_c = np.flatnonzero(ev_code == c)
        dt = PAYLOAD_DTYPES.get(c)
        if dt is None:
            for r in rows_c.tolist():
                unknown[r] = payloads[r].tobytes()
            continue
        vals = payloads[rows_c].view(dt)
        for name in dt.names:
            events[name][rows_c] = vals[name]
    return DecodedRecords(
        clock=clock,
        code=code,
        aux=aux,
        offset=offset,
        page_seq=page_seq,
        delivery_idx=delivery_idx,
        delivery=delivery,
        event_idx=event_idx,
        events=events,
        unknown_payload=unknown,
        delivery_clock=dclock[:q],
        delivery_aux=daux[:q],
        delivery_offset=doffset[:q],
        delivery_page_seq=dseq[:q],
        delivery_columns=columns,
    )
