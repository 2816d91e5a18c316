"""Write ``.itblog`` files: pages laid out as the pump's ring, written atomically."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from . import format as fmt
from .atomic import atomic_write_bytes
from .codec import encode_record
from .crc import crc32c
from .header import encode_header, encode_status
from .model import LogImage, Page, Record

_PAGE_HEADER = struct.Struct("<HHIII")


def encode_page(page: Page, page_size: int) -> bytes:
    """One page: header, records, 0xFF fill (erased flash), CRC-32C of everything before it."""
    rpp = fmt.records_per_page(page_size)
    if len(page.records) > rpp:
        raise ValueError(f"page {page.seq} has {len(page.records)} records; at most {rpp} fit")
    body = bytearray(_PAGE_HEADER.pack(fmt.PAGE_SYNC, len(page.records), page.slot, page.seq, 0))
    for rec in page.records:
        body += encode_record(rec)
    body += b"\xff" * (page_size - fmt.PAGE_TRAILER_SIZE - len(body))
    return bytes(body) + crc32c(body).to_bytes(4, "little")


def pack_ring(
    records: Sequence[Record], page_size: int, ring_slots: int, first_seq: int = 0
) -> tuple[Page, ...]:
    """Lay records out as the pump writes them: page by page, page ``seq`` in slot
    ``seq % ring_slots``, the oldest pages overwritten once the ring is full."""
    rpp = fmt.records_per_page(page_size)
    pages = [
        Page(seq, seq % ring_slots, tuple(records[i : i + rpp]))
        for seq, i in enumerate(range(0, len(records), rpp), start=first_seq)
    ]
    kept = pages[-ring_slots:]
    return tuple(sorted(kept, key=lambda p: p.slot))


def ring_position(pages: Sequence[Page]) -> tuple[int, int, int]:
    """Where the ring stands after writing ``pages`` (docs/log-format.md 5.4): the newest
    page's sequence number, how many sequence numbers the ring holds (oldest to newest) and
    the records in the newest page; ``(0, 0, 0)`` before any page is written."""
    if not pages:
        return 0, 0, 0
    newest = max(pages, key=lambda p: p.seq)
    return newest.seq, newest.seq - min(p.seq for p in pages) + 1, len(newest.records)


def encode_log(image: LogImage) -> bytes:
    """The bytes of a whole file.  From format 1.1 on (``header.version_minor`` >= 1) the
    status records the ring position of the pages written, unless the status gives its own."""
    h = image.header
    if h.page_size not in fmt.ALLOWED_PAGE_SIZES:
        raise ValueError(f"page size {h.page_size} is not one of {fmt.ALLOWED_PAGE_SIZES}")
    ring = ring_position(image.pages) if h.version_major == 1 and h.version_minor >= 1 else None
    out = [encode_header(h, len(image.pages)), encode_status(image.status, ring)]
    out += [encode_page(p, h.page_size) for p in image.pages]
    return b"".join(out)


def write_log(path: str | Path, image: LogImage) -> Path:
    """Write ``image`` to ``path`` atomically; returns the path."""
    atomic_write_bytes(path, [encode_log(image)])
    return Path(path)
