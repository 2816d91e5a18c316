"""The decoders' common output: record columns split into event rows and delivery rows.

Both the fast (numpy) and the construct decoders produce a :class:`DecodedRecords`; the
frame builder turns it into DataFrames.  Comparing two of these is how the tests prove the
decoders agree, field by field.

Records are split by table as they are decoded, so a log of millions of delivery records
never holds a second, all-records copy of its offsets, sequence numbers or codes.  Only the
pump clock is kept for every record in storage order: the clock correction needs each
record's neighbours to find backward jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import BY_CODE, DELIVERY_CODE, Field, event_field_names

EVENT_FIELDS: list[str] = event_field_names()
DELIVERY_FIELDS: list[str] = [f.name for f in BY_CODE[DELIVERY_CODE].fields]
ENUM_DELIVERY_FIELDS: dict[str, np.dtype] = {
    f.name: f.dtype for f in BY_CODE[DELIVERY_CODE].fields if f.enum is not None
}

_DELIVERY_SPECS = {f.name: f for f in BY_CODE[DELIVERY_CODE].fields}
_WIDE = ("interval_s", "stalled_s")  # counts of seconds: int64 in the table, like other durations


def delivery_column_dtype(name: str) -> np.dtype:
    """The dtype of a delivery column in the table (enum columns: their int8 category codes)."""
    f = _DELIVERY_SPECS[name]
    if f.enum is not None:
        return np.dtype(np.int8)
    if f.per_unit != 1:
        return np.dtype(np.float64)
    if name in _WIDE:
        return np.dtype(np.int64)
    return f.dtype


def _enum_lut(f: Field) -> tuple[np.ndarray, bool]:
    """A lookup table from an enum field's raw values to category codes (-1: unknown), and
    whether it is the identity (the enum's values are 0..n-1 in order)."""
    assert f.enum is not None and f.ctype == "u8", f"{f.name}: delivery enums are one byte"
    values = [int(m) for m in f.enum]
    lut = np.full(256, -1, dtype=np.int8)
    lut[values] = np.arange(len(values))
    return lut, values == list(range(len(values)))


_ENUM_LUT = {f.name: _enum_lut(f) for f in _DELIVERY_SPECS.values() if f.enum is not None}


def convert_delivery(name: str, raw: np.ndarray, out: np.ndarray) -> None:
    """Raw on-disk integers of one delivery field into its table column (``out``); enum
    fields become category codes of the enum's own names, -1 for a value it does not know.
    The fast decoder calls this chunk by chunk while the records are still in cache."""
    f = _DELIVERY_SPECS[name]
    if f.enum is not None:
        lut, identity = _ENUM_LUT[name]
        if identity and len(raw) and int(raw.max()) < len(f.enum):
            out[:] = raw  # known values only: the codes are the values
        else:
            np.take(lut, raw, out=out)
    elif f.per_unit != 1:
        np.divide(raw, f.per_unit, out=out)
    else:
        out[:] = raw


_ARRAYS = (
    "clock",
    "event_idx",
    "event_code",
    "event_clock",
    "event_aux",
    "event_offset",
    "event_page_seq",
    "delivery_clock",
    "delivery_aux",
    "delivery_offset",
    "delivery_page_seq",
)


@dataclass
class DecodedRecords:
    """The records of the accepted pages, in storage (sequence) order.

    ``clock`` is every record's pump clock.  Event rows (every type but delivery history)
    sit at positions ``event_idx`` of that order; the remaining positions are the delivery
    rows, in the same order.  Each table has its rows' code (events only), clock, aux word,
    byte offset and page sequence number.

    ``events`` holds each event field's raw on-disk integer (int64; 0 where a record type
    has no such field; the record type says which fields it has), and unknown types
    keep their payload bytes in ``unknown_payload`` (keyed by event row).  ``delivery``
    holds the delivery table's columns already converted (:func:`convert_delivery`);
    ``delivery_raw`` the raw values of its enum fields, to name values the enum lacks.
    """

    clock: np.ndarray  # uint32, every record
    event_idx: np.ndarray  # int64 storage positions of the event rows
    event_code: np.ndarray  # uint16
    event_clock: np.ndarray  # uint32
    event_aux: np.ndarray  # uint16
    event_offset: np.ndarray  # int64 byte offset of the record in the file
    event_page_seq: np.ndarray  # uint32
    events: dict[str, np.ndarray]  # int64 raw values, 0 where absent
    unknown_payload: dict[int, bytes]  # event row -> 24 payload bytes
    delivery_clock: np.ndarray  # uint32
    delivery_aux: np.ndarray  # uint16
    delivery_offset: np.ndarray  # int64
    delivery_page_seq: np.ndarray  # uint32
    delivery: dict[str, np.ndarray]  # table columns (enum fields as int8 category codes)
    delivery_raw: dict[str, np.ndarray]  # raw on-disk values of the enum fields
    # delivery rows a section-12 check may flag, found by the fast decoder while the rows
    # were in cache: (stalled_s > interval_s, stamped over 2 s early); None: not looked for
    row_flags: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.clock)

    def delivery_starts(self, positions: np.ndarray) -> np.ndarray:
        """For storage positions, how many delivery rows come before each."""
        return positions - np.searchsorted(self.event_idx, positions)

    def storage_position(self, row: int, *, events: bool) -> int:
        """The storage position of an event row or a delivery row."""
        if events:
            return int(self.event_idx[row])
        # delivery rows before event k: event_idx[k] - k; count the events at or before the row
        return row + int(np.searchsorted(self.event_idx - np.arange(len(self.event_idx)), row, side="right"))

    def equals(self, other: DecodedRecords) -> bool:
        """Field-by-field equality, dtypes included."""

        def same(a: np.ndarray, b: np.ndarray) -> bool:
            return a.dtype == b.dtype and np.array_equal(a, b)

        ok = all(same(getattr(self, k), getattr(other, k)) for k in _ARRAYS)
        for mine, theirs in (
            (self.events, other.events),
            (self.delivery, other.delivery),
            (self.delivery_raw, other.delivery_raw),
        ):
            ok &= mine.keys() == theirs.keys() and all(same(mine[k], theirs[k]) for k in mine)
        return bool(ok and self.unknown_payload == other.unknown_payload)


def empty_records() -> DecodedRecords:
    """A DecodedRecords with no rows (a log with no intact pages)."""
    e64 = np.array([], dtype=np.int64)
    u32 = np.array([], dtype=np.uint32)
    u16 = np.array([], dtype=np.uint16)
    return DecodedRecords(
        clock=u32,
        event_idx=e64,
        event_code=u16,
        event_clock=u32,
        event_aux=u16,
        event_offset=e64,
        event_page_seq=u32,
        events={k: e64 for k in EVENT_FIELDS},
        unknown_payload={},
        delivery_clock=u32,
        delivery_aux=u16,
        delivery_offset=e64,
        delivery_page_seq=u32,
        delivery={k: np.array([], dtype=delivery_column_dtype(k)) for k in DELIVERY_FIELDS},
        delivery_raw={k: np.array([], dtype=t) for k, t in ENUM_DELIVERY_FIELDS.items()},
    )
