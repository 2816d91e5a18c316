"""The pump's log memory: a ring of fixed-size pages of 32-byte records."""

from __future__ import annotations

from collections import deque

from parsers import format as fmt
from parsers.model import Page, Record


class LogMemory:
    """Records are appended to the head page; a full page closes and the next sequence
    number opens in slot ``seq % ring_slots``, overwriting the oldest page once the ring is
    full.  Reading it (``pages()``) gives what an interrogation would dump."""

    def __init__(self, page_size: int = 1024, ring_slots: int = 512) -> None:
        self.page_size = page_size
        self.ring_slots = ring_slots
        self.per_page = fmt.records_per_page(page_size)
        self._closed: deque[tuple[int, tuple[Record, ...]]] = deque(maxlen=ring_slots - 1)
        self._head: list[Record] = []
        self._seq = 0

    def append(self, rec: Record) -> None:
        """Write one record (the pump never refuses to log; old pages are overwritten)."""
        self._head.append(rec)
        if len(self._head) == self.per_page:
            self._closed.append((self._seq, tuple(self._head)))
            self._head = []
            self._seq += 1

    def pages(self) -> tuple[Page, ...]:
        """The stored pages in slot order, the partly filled head page included."""
        out = [Page(seq, seq % self.ring_slots, recs) for seq, recs in self._closed]
        if self._head:
            out.append(Page(self._seq, self._seq % self.ring_slots, tuple(self._head)))
        return tuple(sorted(out, key=lambda p: p.slot))

    def __len__(self) -> int:
        return len(self._closed) * self.per_page + len(self._head)
