"""The construct-only decoder: every page parsed by the declaration in :mod:`parsers.format`.

Slow (construct builds a Python object per field) but it is the reference the fast
decoder is tested against, field by field.
"""

from __future__ import annotations

import construct as cs
import numpy as np

from . import format as fmt
from .decoded import (
    DELIVERY_FIELDS,
    ENUM_DELIVERY_FIELDS,
    EVENT_FIELDS,
    DecodedRecords,
    convert_delivery,
    delivery_column_dtype,
)
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
    clock: list[int] = []
    ev_meta: dict[str, list[int]] = {k: [] for k in ("idx", "code", "clock", "aux", "offset", "seq")}
    d_meta: dict[str, list[int]] = {k: [] for k in ("clock", "aux", "offset", "seq")}
    delivery: dict[str, list[int]] = {k: [] for k in DELIVERY_FIELDS}
    events: dict[str, list[int]] = {k: [] for k in EVENT_FIELDS}
    unknown: dict[int, bytes] = {}
    for p in order.accepted.tolist():
        page = parsed[p]
        base = int(scan.offset[p]) + fmt.PAGE_HEADER_SIZE
        for j, rec in enumerate(page.records):
            offset = base + j * RECORD_SIZE
            meta = {"clock": rec.clock, "aux": rec.aux, "offset": offset, "seq": page.header.seq}
            if rec.code == DELIVERY_CODE:
                for k, v in meta.items():
                    d_meta[k].append(v)
                for k in DELIVERY_FIELDS:
                    delivery[k].append(rec.payload[k])
            else:
                row = len(ev_meta["idx"])
                ev_meta["idx"].append(len(clock))
                ev_meta["code"].append(rec.code)
                for k, v in meta.items():
                    ev_meta[k].append(v)
                t = BY_CODE.get(rec.code)
                names = {f.name for f in t.fields} if t else set()
                for k in EVENT_FIELDS:
                    events[k].append(int(rec.payload[k]) if k in names else 0)
                if t is None:
                    unknown[row] = bytes(rec.payload)
            clock.append(rec.clock)
    columns = {}
    for k in DELIVERY_FIELDS:
        columns[k] = np.empty(len(delivery[k]), dtype=delivery_column_dtype(k))
        convert_delivery(k, np.array(delivery[k], dtype=np.int64), columns[k])
    return DecodedRecords(
        clock=np.array(clock, dtype=np.uint32),
        event_idx=np.array(ev_meta["idx"], dtype=np.int64),
        event_code=np.array(ev_meta["code"], dtype=np.uint16),
        event_clock=np.array(ev_meta["clock"], dtype=np.uint32),
        event_aux=np.array(ev_meta["aux"], dtype=np.uint16),
        event_offset=np.array(ev_meta["offset"], dtype=np.int64),
        event_page_seq=np.array(ev_meta["seq"], dtype=np.uint32),
        events={k: np.array(v, dtype=np.int64) for k, v in events.items()},
        unknown_payload=unknown,
        delivery_clock=np.array(d_meta["clock"], dtype=np.uint32),
        delivery_aux=np.array(d_meta["aux"], dtype=np.uint16),
        delivery_offset=np.array(d_meta["offset"], dtype=np.int64),
        delivery_page_seq=np.array(d_meta["seq"], dtype=np.uint32),
        delivery=columns,
        delivery_raw={k: np.array(delivery[k], dtype=t) for k, t in ENUM_DELIVERY_FIELDS.items()},
    )
