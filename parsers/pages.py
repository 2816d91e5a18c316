"""Which pages of the ring to trust, and in what order: the policy both decoders share.

A decoder reports what it found in each stored page (marker, count, slot, sequence number,
CRC result); this module drops damaged pages, orders the rest by sequence number across the
ring's wrap, ignores duplicate copies and reports every gap in the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import format as fmt
from .model import Problem


@dataclass
class PageScan:
    """What a decoder saw in each stored page, one array element per page in file order."""

    offset: np.ndarray  # int64 byte offset of the page in the file
    sync: np.ndarray  # uint16 page marker
    count: np.ndarray  # uint16 records in the page
    slot: np.ndarray  # uint32 ring slot written in the page
    seq: np.ndarray  # uint32 sequence number written in the page
    crc_stored: np.ndarray  # uint32
    crc_ok: np.ndarray  # bool


@dataclass
class PageOrder:
    """Accepted pages (indices into the scan) in sequence order, and the gaps between them."""

    accepted: np.ndarray  # int64 indices into the scan, in sequence order
    gaps: list[
        tuple[int, int, int]
    ]  # (position in accepted after which the gap falls, first missing seq, last missing seq)
    problems: list[Problem]


def order_pages(scan: PageScan, ring_slots: int, page_size: int) -> PageOrder:
    """Apply the page policy; see the module docstring."""
    problems: list[Problem] = []
    rpp = fmt.records_per_page(page_size)
    n = len(scan.offset)
    good = np.ones(n, dtype=bool)
    erased = scan.sync == fmt.ERASED_SYNC
    good &= ~erased
    bad_sync = ~erased & (scan.sync != fmt.PAGE_SYNC)
    for i in np.flatnonzero(bad_sync):
        problems.append(
            Problem(
                "bad_page_marker",
                f"page {i} has marker {int(scan.sync[i]):#06x}, not {fmt.PAGE_SYNC:#06x}: "
                "page damaged, its records are skipped",
                int(scan.offset[i]),
            )
        )
    good &= ~bad_sync
    bad_crc = good & ~scan.crc_ok
    for i in np.flatnonzero(bad_crc):
        problems.append(
            Problem(
                "bad_page_crc",
                f"page {i} (says seq {int(scan.seq[i])}, slot {int(scan.slot[i])}) fails its CRC-32C "
                f"(stored {int(scan.crc_stored[i]):#010x}): page damaged, its records are skipped",
                int(scan.offset[i]),
                None,
            )
        )
    good &= scan.crc_ok
    bad_count = good & (scan.count > rpp)
    for i in np.flatnonzero(bad_count):
        problems.append(
            Problem(
                "bad_record_count",
                f"page seq {int(scan.seq[i])} claims {int(scan.count[i])} records; at most {rpp} fit: "
                "page skipped",
                int(scan.offset[i]),
                int(scan.seq[i]),
            )
        )
    good &= ~bad_count
    bad_slot = good & (scan.slot >= ring_slots)
    for i in np.flatnonzero(bad_slot):
        problems.append(
            Problem(
                "bad_slot",
                f"page seq {int(scan.seq[i])} says slot {int(scan.slot[i])}, but the ring has "
                f"{ring_slots} slots: page skipped",
                int(scan.offset[i]),
                int(scan.seq[i]),
            )
        )
    good &= ~bad_slot
    misplaced = good & (scan.seq.astype(np.int64) % max(ring_slots, 1) != scan.slot)
    for i in np.flatnonzero(misplaced):
        problems.append(
            Problem(
                "page_out_of_place",
                f"page seq {int(scan.seq[i])} sits in slot {int(scan.slot[i])}, expected slot "
                f"{int(scan.seq[i]) % ring_slots}: kept, ordered by its sequence number",
                int(scan.offset[i]),
                int(scan.seq[i]),
                "warning",
            )
        )

    idx = np.flatnonzero(good)
    order = idx[np.argsort(scan.seq[idx], kind="stable")]
    seqs = scan.seq[order].astype(np.int64)
    dup = np.flatnonzero(np.diff(seqs) == 0) + 1 if len(seqs) else np.array([], dtype=np.int64)
    keep = np.ones(len(order), dtype=bool)
    for j in dup:
        a, b = int(order[j - 1]), int(order[j])
        first = a if keep[j - 1] else int(order[np.flatnonzero(keep[:j])[-1]])
        same = scan.crc_stored[first] == scan.crc_stored[b] and scan.count[first] == scan.count[b]
        detail = "an identical copy" if same else "a different page with the same number"
        problems.append(
            Problem(
                "duplicate_page",
                f"page seq {int(seqs[j])} appears twice (bytes {int(scan.offset[first])} and "
                f"{int(scan.offset[b])}): {detail}; the first is kept",
                int(scan.offset[b]),
                int(seqs[j]),
                "warning" if same else "error",
            )
        )
        keep[j] = False
    order = order[keep]
    seqs = seqs[keep]
    gaps: list[tuple[int, int, int]] = []
    for j in np.flatnonzero(np.diff(seqs) > 1):
        gaps.append((int(j), int(seqs[j]) + 1, int(seqs[j + 1]) - 1))
    if len(seqs) and seqs[-1] - seqs[0] + 1 > ring_slots:
        problems.append(
            Problem(
                "ring_span",
                f"pages span seq {int(seqs[0])}..{int(seqs[-1])}, more than the ring's {ring_slots} "
                "slots can hold: some pages are stale or mis-numbered",
                None,
                None,
                "warning",
            )
        )
    return PageOrder(order.astype(np.int64), gaps, problems)
