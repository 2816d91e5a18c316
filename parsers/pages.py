"""Which pages of the ring to trust, and in what order: the policy both decoders share.

A decoder reports what it found in each stored page (marker, count, slot, sequence number,
CRC result); this module drops damaged pages, orders the rest by sequence number across the
ring's wrap, ignores duplicate copies and reports every gap in the sequence: between the
pages it holds and, when the status records where the ring stands (format 1.1,
docs/log-format.md 5.4), before the oldest and after the newest.  For each missing page it
looks for where the page was: a damaged page, a copy of another page, an erased slot, a
page after the header's page count or past the end of a cut file.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from . import format as fmt
from .checks import first_warning
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


@dataclass(frozen=True)
class RingRange:
    """Where the status says the ring stands: pages ``first``..``last`` (``last`` the
    newest, holding ``last_count`` records); ``first > last`` when no page is written yet."""

    first: int
    last: int
    last_count: int


@dataclass(frozen=True)
class Lost:
    """Where a missing page was found: its sequence number, the byte offset of the place and
    what is there now."""

    seq: int
    offset: int
    what: str  # e.g. "a damaged page", "an erased slot", "a copy of page seq 4"


@dataclass
class Gap:
    """A run of missing sequence numbers ``first``..``last``, after accepted page ``after``
    (-1: before the first).  ``offset`` is the page after the gap; for missing newest pages,
    where the first of them was found, else the end of the stored pages."""

    after: int
    first: int
    last: int
    offset: int
    where: list[Lost] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return self.last - self.first + 1


@dataclass
class PageOrder:
    """Accepted pages (indices into the scan) in sequence order, and the gaps between them."""

    accepted: np.ndarray  # int64 indices into the scan, in sequence order
    gaps: list[Gap]
    problems: list[Problem]
    tail_missing: bool = False  # the newest history may be missing (cut, lost, damaged)


@dataclass
class Around:
    """What lies around the examined pages, for finding where missing pages went: whole pages
    after the header's page count (``beyond``, scanned like the others), how many promised
    pages the file lacks (``cut``), and where the examined pages end (``end``)."""

    end: int
    beyond: PageScan | None = None
    cut: int = 0


_MAX_LOCATE = 1 << 16  # missing pages looked for one by one; beyond it only counted


def order_pages(
    scan: PageScan,
    ring_slots: int,
    page_size: int,
    *,
    blank: np.ndarray | None = None,
    ring: RingRange | None = None,
    around: Around | None = None,
) -> PageOrder:
    """Apply the page policy; see the module docstring.  ``blank`` marks erased slots whose
    every byte is 0xFF (default: every erased slot); ``ring`` is the status's ring position."""
    problems: list[Problem] = []
    rpp = fmt.records_per_page(page_size)
    n = len(scan.offset)
    if around is None:
        around = Around(int(scan.offset[-1]) + page_size if n else 0)
    erased = scan.sync == fmt.ERASED_SYNC
    if blank is None:
        blank = erased
    rejected: dict[int, str] = {}  # scan index -> what the page is now
    good = ~erased
    for i in np.flatnonzero(erased & ~blank).tolist():
        problems.append(
            Problem(
                "bad_page_marker",
                f"page {i} is marked erased ({fmt.ERASED_SYNC:#06x}) but is not blank: page damaged, "
                "its records are skipped",
                int(scan.offset[i]),
                length=page_size,
            )
        )
        rejected[i] = "a damaged page marked erased"
    bad_sync = ~erased & (scan.sync != fmt.PAGE_SYNC)
    for i in np.flatnonzero(bad_sync).tolist():
        problems.append(
            Problem(
                "bad_page_marker",
                f"page {i} has marker {int(scan.sync[i]):#06x}, not {fmt.PAGE_SYNC:#06x}: "
                "page damaged, its records are skipped",
                int(scan.offset[i]),
                length=page_size,
            )
        )
        rejected[i] = "a page with a damaged marker"
    good &= ~bad_sync
    bad_crc = good & ~scan.crc_ok
    for i in np.flatnonzero(bad_crc).tolist():
        problems.append(
            Problem(
                "bad_page_crc",
                f"page {i} (says seq {int(scan.seq[i])}, slot {int(scan.slot[i])}) fails its CRC-32C "
                f"(stored {int(scan.crc_stored[i]):#010x}): page damaged, its records are skipped",
                int(scan.offset[i]),
                None,
                length=page_size,
            )
        )
        rejected[i] = "a page that fails its CRC"
    good &= scan.crc_ok
    bad_count = good & (scan.count > rpp)
    for i in np.flatnonzero(bad_count).tolist():
        problems.append(
            Problem(
                "bad_record_count",
                f"page seq {int(scan.seq[i])} claims {int(scan.count[i])} records; at most {rpp} fit: "
                "page skipped",
                int(scan.offset[i]),
                int(scan.seq[i]),
                length=page_size,
            )
        )
        rejected[i] = "a page claiming too many records"
    good &= ~bad_count
    bad_slot = good & (scan.slot >= ring_slots)
    for i in np.flatnonzero(bad_slot).tolist():
        problems.append(
            Problem(
                "bad_slot",
                f"page seq {int(scan.seq[i])} says slot {int(scan.slot[i])}, but the ring has "
                f"{ring_slots} slots: page skipped",
                int(scan.offset[i]),
                int(scan.seq[i]),
                length=page_size,
            )
        )
        rejected[i] = "a page with a slot outside the ring"
    good &= ~bad_slot
    misplaced = good & (scan.seq.astype(np.int64) % max(ring_slots, 1) != scan.slot)
    for i in np.flatnonzero(misplaced).tolist():
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
    copies: list[tuple[int, int, int, bool]] = []  # (seq, kept index, dropped index, identical)
    for j in dup.tolist():
        a, b = int(order[j - 1]), int(order[j])
        first = a if keep[j - 1] else int(order[np.flatnonzero(keep[:j])[-1]])
        same = bool(scan.crc_stored[first] == scan.crc_stored[b] and scan.count[first] == scan.count[b])
        copies.append((int(seqs[j]), first, b, same))
        keep[j] = False
    order = order[keep]
    seqs = seqs[keep]

    gaps = [
        Gap(j, int(seqs[j]) + 1, int(seqs[j + 1]) - 1, int(scan.offset[order[j + 1]]))
        for j in np.flatnonzero(np.diff(seqs) > 1).tolist()
    ]
    middle_missing = sum(g.pages for g in gaps)
    head_short = False
    ring_notes: list[Problem] = []
    if ring is not None and ring.first <= ring.last:
        if not len(seqs):
            gaps.append(Gap(-1, ring.first, ring.last, around.end))
        else:
            if seqs[0] > ring.first:
                oldest = min(int(seqs[0]) - 1, ring.last)
                gaps.insert(0, Gap(-1, ring.first, oldest, int(scan.offset[order[0]])))
            if seqs[-1] < ring.last:
                gaps.append(Gap(len(seqs) - 1, max(int(seqs[-1]) + 1, ring.first), ring.last, around.end))
        outside = np.flatnonzero((seqs < ring.first) | (seqs > ring.last))
        ring_notes += first_warning(
            "ring_position",
            outside,
            lambda k: (
                f"{len(outside)} page(s), the first seq {int(seqs[k])} at this offset, lie outside the "
                f"pages seq {ring.first}..{ring.last} that the status says the ring holds: kept"
            ),
            scan.offset[order],
            seqs,
        )
        at = np.flatnonzero(seqs == ring.last)
        if len(at):
            i = int(order[at[0]])
            got = int(scan.count[i])
            if got != ring.last_count:
                head_short = got < ring.last_count
                ring_notes.append(
                    Problem(
                        "ring_position",
                        f"the newest page (seq {ring.last}) holds {got} records but the status says "
                        f"{ring.last_count}"
                        + (
                            f": {ring.last_count - got} newest records are lost"
                            if head_short
                            else ": the log is newer than the status"
                        ),
                        int(scan.offset[i]),
                        ring.last,
                        "error" if head_short else "warning",
                        length=page_size,
                    )
                )
    elif ring is not None and len(seqs):
        ring_notes.append(
            Problem(
                "ring_position",
                f"the status says no page was written yet, but {len(seqs)} pages are stored: kept",
                int(scan.offset[order[0]]),
                int(seqs[0]),
                "warning",
            )
        )

    found = _locate(scan, order, copies, rejected, blank & erased, ring_slots, page_size, gaps, around)
    for g in gaps:
        g.where = [found[s] for s in range(g.first, g.last + 1) if s in found] if found else []
        if g.after == len(seqs) - 1 and g.where:  # missing newest pages: name where they were
            g.offset = g.where[0].offset

    for s, kept, dropped, same in copies:
        detail = "an identical copy" if same else "a different page with the same number"
        places = (int(scan.offset[kept]), int(scan.offset[dropped]))
        lost = next((w for w in found.values() if w.offset in places), None)
        where = int(scan.offset[dropped]) if lost is None else lost.offset
        msg = (
            f"page seq {s} appears twice (bytes {int(scan.offset[kept])} and {int(scan.offset[dropped])}): "
            f"{detail}; the first is kept"
        )
        if lost is not None:
            msg += f"; the copy at byte {where} stands where page seq {lost.seq} belonged: that page is lost"
        problems.append(
            Problem(
                "duplicate_page",
                msg,
                where,
                s if lost is None else lost.seq,
                "warning" if same and lost is None else "error",
                last_seq=None if lost is None else lost.seq,
                length=None if lost is None else page_size,
            )
        )
    if len(seqs) and seqs[-1] - seqs[0] + 1 > ring_slots:
        problems.append(
            Problem(
                "ring_span",
                f"pages span seq {int(seqs[0])} (the page at this offset) to {int(seqs[-1])} (byte "
                f"{int(scan.offset[order[-1]])}), more than the ring's {ring_slots} slots can hold: "
                "some pages are stale or mis-numbered",
                int(scan.offset[order[0]]),
                int(seqs[0]),
                "warning",
            )
        )
    problems += ring_notes
    if ring is not None:
        tail_missing = head_short or any(g.after == len(seqs) - 1 for g in gaps)
    else:
        tail_missing = around.cut > 0 or len(rejected) > middle_missing
    return PageOrder(order.astype(np.int64), gaps, problems, tail_missing)


def _locate(
    scan: PageScan,
    order: np.ndarray,
    copies: list[tuple[int, int, int, bool]],
    rejected: dict[int, str],
    blank: np.ndarray,
    ring_slots: int,
    page_size: int,
    gaps: list[Gap],
    around: Around,
) -> dict[int, Lost]:
    """Where each missing page was: a place in the file that holds no accepted page (damaged,
    erased, a copy, after the page count, past the end of the file), matched to a missing
    sequence number by the page's own header when it still names one, else by the slots of
    the nearest accepted pages (a dump stores the ring's slots one after the other)."""
    total = sum(g.pages for g in gaps)
    if not total or total > _MAX_LOCATE:
        return {}
    ring = max(ring_slots, 1)
    missing: set[int] = set()
    by_slot: dict[int, int | None] = {}
    for g in gaps:
        for s in range(g.first, g.last + 1):
            missing.add(s)
            by_slot[s % ring] = None if s % ring in by_slot else s  # None: two share the slot
    n = len(scan.offset)
    copy_of = {i: s for s, a, b, _ in copies for i in (a, b)}
    anchors = sorted(int(i) for i in order.tolist() if int(i) not in copy_of)
    anchor_slot = [int(scan.slot[i]) for i in anchors]
    # places: (position, offset, claimed seq, claimed slot, what is there)
    places: list[tuple[int, int, int | None, int | None, str]] = []
    for i, what in rejected.items():
        places.append((i, int(scan.offset[i]), int(scan.seq[i]), int(scan.slot[i]), what))
    for i in np.flatnonzero(blank).tolist():
        places.append((i, int(scan.offset[i]), None, None, "an erased slot"))
    for i, s in copy_of.items():
        places.append((i, int(scan.offset[i]), None, None, f"a copy of page seq {s}"))
    if around.beyond is not None:
        b = around.beyond
        for k in range(len(b.offset)):
            ok = b.sync[k] == fmt.PAGE_SYNC and b.crc_ok[k]
            places.append(
                (
                    n + k,
                    int(b.offset[k]),
                    int(b.seq[k]) if ok else None,
                    int(b.slot[k]) if ok else None,
                    "an intact page after the header's page count (not read)"
                    if ok
                    else "bytes after the header's page count",
                )
            )
    for k in range(around.cut):
        places.append((n + k, around.end + k * page_size, None, None, "a page past the end of the file"))
    places.sort()
    found: dict[int, Lost] = {}
    used: set[int] = set()
    for strong in (True, False):
        for pos, off, seq, slot, what in places:
            if pos in used:
                continue
            pick = None
            if strong:
                if seq is not None and seq in missing and seq not in found and slot == seq % ring:
                    pick = seq
            else:
                for s in _slots_near(pos, anchors, anchor_slot, ring):
                    q = by_slot.get(s)
                    if q is not None and q not in found:
                        pick = q
                        break
            if pick is not None:
                found[pick] = Lost(pick, off, what)
                used.add(pos)
    return found


def _slots_near(pos: int, anchors: list[int], anchor_slot: list[int], ring: int) -> list[int]:
    """The slot that file position ``pos`` holds if the stored slots run on one by one from
    the nearest accepted page before it, and from the nearest after it."""
    k = bisect.bisect_left(anchors, pos)
    out = []
    if k > 0:
        out.append((anchor_slot[k - 1] + pos - anchors[k - 1]) % ring)
    if k < len(anchors):
        s = (anchor_slot[k] - (anchors[k] - pos)) % ring
        if s not in out:
            out.append(s)
    return out
