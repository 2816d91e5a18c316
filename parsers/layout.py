"""Where the pages are when the header cannot say: found by their own markers and CRCs.

A header that fails its CRC may carry a wrong page size or page count; trusting them loses
every intact page (a page size of 512 read as 1024) or the last ones (a page count too
small).  The pages themselves say where they are: a page starts with its ``PG`` marker and
ends with the CRC-32C of everything before it, so at the right page size the intact pages
check out one after the other.  Both decoders read the layout found here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import format as fmt
from .crc import crc32c


@dataclass(frozen=True)
class Layout:
    """The page size and the number of pages to examine, and how many intact pages (marker
    and CRC good) were found at that size."""

    page_size: int
    pages: int
    intact: int
    last_intact: int  # index of the last intact page, -1 if none


def intact_pages(buf: memoryview, start: int, size: int, page_size: int) -> np.ndarray:
    """Indices of the whole pages after ``start`` whose marker is ``PG`` and whose CRC-32C
    matches, at page size ``page_size``."""
    n = max(size - start, 0) // page_size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    sync = np.ndarray((n,), "<u2", buf, start, (page_size,))
    body = page_size - fmt.PAGE_TRAILER_SIZE
    stored = np.ndarray((n,), "<u4", buf, start + body, (page_size,))
    cand = np.flatnonzero(sync == fmt.PAGE_SYNC)
    ok = []
    for k in cand.tolist():
        o = start + k * page_size
        if crc32c(buf[o : o + body]) == stored[k]:
            ok.append(k)
    return np.array(ok, dtype=np.int64)


def find_layout(buf: memoryview, start: int, size: int, claimed_size: int, claimed_count: int) -> Layout:
    """The layout the pages show: the allowed page size at which most pages are intact (the
    claimed size wins a tie, then the smaller), and as many pages as the claimed count
    (within the file) or up to the last intact page, whichever is more."""
    best: Layout | None = None
    for ps in sorted(fmt.ALLOWED_PAGE_SIZES, key=lambda p: (p != claimed_size, p)):
        complete = max(size - start, 0) // ps
        if complete == 0:
            continue
        ok = intact_pages(buf, start, size, ps)
        last = int(ok[-1]) if len(ok) else -1
        count = min(claimed_count, complete) if ps == claimed_size else 0
        found = Layout(ps, max(count, last + 1), len(ok), last)
        if best is None or found.intact > best.intact:
            best = found
    if best is None or best.intact == 0:
        ps = claimed_size if claimed_size in fmt.ALLOWED_PAGE_SIZES else fmt.ALLOWED_PAGE_SIZES[0]
        complete = max(size - start, 0) // ps
        return Layout(ps, min(claimed_count, complete), 0, -1)
    return best


def blank_erased(buf: memoryview, offsets: np.ndarray, sync: np.ndarray, page_size: int) -> np.ndarray:
    """For each page, True when it is an erased slot whose every byte is 0xFF (a page whose
    marker reads erased but which holds anything else is damage)."""
    blank = sync == fmt.ERASED_SYNC
    for i in np.flatnonzero(blank).tolist():
        o = int(offsets[i])
        blank[i] = bytes(buf[o : o + page_size]).count(0xFF) == page_size
    return blank
