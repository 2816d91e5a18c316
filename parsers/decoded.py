"""The decoders' common output: raw record columns in storage (sequence) order.

Both the fast (numpy) and the construct decoders produce a :class:`DecodedRecords`; the
frame builder turns it into DataFrames.  Comparing two of these is how the tests prove the
decoders agree, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import BY_CODE, DELIVERY_CODE, event_field_names

EVENT_FIELDS: list[str] = event_field_names()
DELIVERY_FIELDS: list[str] = [f.name for f in BY_CODE[DELIVERY_CODE].fields]


@dataclass
class DecodedRecords:
    """Raw on-disk integers for every record of the accepted pages, in sequence order.

    ``clock``, ``code``, ``aux``, ``offset`` and ``page_seq`` cover all records.  Delivery
    records' payload fields are in ``delivery`` as raw integers (dense, one entry per delivery
    record, rows ``delivery_idx``), or already converted to table columns in
    ``delivery_columns`` (the fast decoder, which keeps only the enum raw).  Every other
    record's fields are in ``events`` (float64, NaN where a type has no such field, rows
    ``event_idx``), and unknown types keep their payload bytes in ``unknown_payload``.
    """

    clock: np.ndarray
    code: np.ndarray
    aux: np.ndarray
    offset: np.ndarray
    page_seq: np.ndarray
    delivery_idx: np.ndarray
    delivery: dict[str, np.ndarray]
    event_idx: np.ndarray
    events: dict[str, np.ndarray]
    unknown_payload: dict[int, bytes]  # event row position -> 24 payload bytes
    delivery_clock: np.ndarray | None = None  # clock[delivery_idx], if the decoder has it at hand
    delivery_aux: np.ndarray | None = None  # aux[delivery_idx], likewise
    delivery_offset: np.ndarray | None = None  # offset[delivery_idx], likewise
    delivery_page_seq: np.ndarray | None = None  # page_seq[delivery_idx], likewise
    # the delivery table's columns, converted by the decoder (frames.convert_delivery); an enum
    # field's raw values stay in ``delivery`` for naming values the enum does not know
    delivery_columns: dict[str, np.ndarray] | None = None

    def delivery_values(self) -> dict[str, np.ndarray]:
        """Every delivery field as its table column, however the decoder left it."""
        from .frames import convert_delivery, delivery_column_dtype

        out = dict(self.delivery_columns or {})
        for k in DELIVERY_FIELDS:
            if k not in out:
                col = np.empty(len(self.delivery[k]), dtype=delivery_column_dtype(k))
                convert_delivery(k, np.asarray(self.delivery[k]), col)
                out[k] = col
        return out

    def __len__(self) -> int:
        return len(self.clock)

    def equals(self, other: DecodedRecords) -> bool:
        """Field-by-field equality (NaN equals NaN)."""
        same = all(
            np.array_equal(getattr(self, k), getattr(other, k))
            for k in ("clock", "code", "aux", "offset", "page_seq", "delivery_idx", "event_idx")
        )
        mine, theirs = self.delivery_values(), other.delivery_values()
        same &= mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
        same &= self.events.keys() == other.events.keys() and all(
            np.array_equal(self.events[k], other.events[k], equal_nan=True) for k in self.events
        )
        return bool(same and self.unknown_payload == other.unknown_payload)


def empty_records() -> DecodedRecords:
    """A DecodedRecords with no rows (a log with no intact pages)."""
    e64 = np.array([], dtype=np.int64)
    return DecodedRecords(
        clock=np.array([], dtype=np.uint32),
        code=np.array([], dtype=np.uint16),
        aux=np.array([], dtype=np.uint16),
        offset=e64,
        page_seq=e64,
        delivery_idx=e64,
        delivery={k: np.array([], dtype=np.int64) for k in DELIVERY_FIELDS},
        event_idx=e64,
        events={k: np.array([], dtype=np.float64) for k in EVENT_FIELDS},
        unknown_payload={},
    )
