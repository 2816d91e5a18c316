"""The construct-only decoder: every page parsed by the declaration in :mod:`parsers.format`.

Slow (construct builds a Python object per field) but it is the reference the fast
decoder is tested against, field by field.
"""

from __future__ import annotations

import construct as cs
import numpy as np

from . import format as fmt
from .decoded import DELIVERY_FIELDS, EVENT_FIELDS, DecodedRecords
from .pages import PageOrder, PageScan
from .records import BY_CODE, DELIVERY_CODE, RECORD_SIZE


def scan_pages(buf: memoryview, start: int, n_pages: int, page_size: int) -> tuple[PageScan, list]:
    """Parse every stored page with construct; returns the scan and the parsed pages."""
    page = fmt.page_struct(page_size)
    envelope = fmt.page_envelope(page_size)
    rpp = fmt.records_per_page(page_size)
    parsed: list = []
    cols: dict[str, list[int]] = {k: [] for k in ("sync", "count", "slot", "seq", "crc")}
    ok: list[bool] = []
    for i in range(n_pages):
        raw = bytes(buf[start + i * page_size : start + (i + 1) * page_size])
        head = fmt.PageHeader.parse(raw)
        crc = cs.Int32ul.parse(raw[-fmt.PAGE_TRAILER_SIZE :])
        for k in ("sync", "count", "slot", "seq"):
            cols[k].append(head[k])
        cols["crc"].append(crc)
        try:
            envelope.parse(raw)  # the CRC, checked by construct, whatever the record count says
            ok.append(True)
        except (cs.ChecksumError, cs.ConstructError):
            parsed.append(None)
            ok.append(False)
            continue
        try:  # a count beyond the page's capacity is the page policy's to report
            parsed.append(page.parse(raw) if head.count <= rpp else None)
        except cs.ConstructError:
            parsed.append(None)
    scan = PageScan(
        offset=start + np.arange(n_pages, dtype=np.int64) * page_size,
        sync=np.array(cols["sync"], dtype=np.uint16),
        count=np.array(cols["count"], dtype=np.uint16),
        slot=np.array(cols["slot"], dtype=np.uint32),
        seq=np.array(cols["seq"], dtype=np.uint32),
        crc_stored=np.array(cols["crc"], dtype=np.uint32),
        crc_ok=np.array(ok, dtype=bool),
    )
    return scan, parsed


def decode_records(parsed: list, scan: PageScan, order: PageOrder) -> DecodedRecords:
    """Columns from the construct containers of the accepted pages, in sequence order."""
    clock, code, aux, offset, page_seq = [], [], [], [], []
    d_idx, e_idx = [], []
    delivery: dict[str, list[int]] = {k: [] for k in DELIVERY_FIELDS}
    events: dict[str, list[float]] = {k: [] for k in EVENT_FIELDS}
    unknown: dict[int, bytes] = {}
    for p in order.accepted.tolist():
        page = parsed[p]
        base = int(scan.offset[p]) + fmt.PAGE_HEADER_SIZE
        for j, rec in enumerate(page.records):
            n = len(clock)
            clock.append(rec.clock)
            code.append(rec.code)
            aux.append(rec.aux)
            offset.append(base + j * RECORD_SIZE)
            page_seq.append(page.header.seq)
            if rec.code == DELIVERY_CODE:
                d_idx.append(n)
                for k in DELIVERY_FIELDS:
                    delivery[k].append(rec.payload[k])
                continue
            row = len(e_idx)
            e_idx.append(n)
            t = BY_CODE.get(rec.code)
            names = {f.name for f in t.fields} if t else set()
            for k in EVENT_FIELDS:
                events[k].append(float(rec.payload[k]) if k in names else np.nan)
            if t is None:
                unknown[row] = bytes(rec.payload)
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    return DecodedRecords(
        clock=np.array(clock, dtype=np.uint32),
        code=np.array(code, dtype=np.uint16),
        aux=np.array(aux, dtype=np.uint16),
        offset=i64(offset),
        page_seq=np.array(page_seq, dtype=np.uint32),
        delivery_idx=i64(d_idx),
        delivery={k: i64(v) for k, v in delivery.items()},
        event_idx=i64(e_idx),
        events={k: np.array(v, dtype=np.float64) for k, v in events.items()},
        unknown_payload=unknown,
    )
