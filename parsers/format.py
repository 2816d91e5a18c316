"""The ``.itblog`` layout declared with construct: header, status snapshot, pages, records.

This declaration is the reference for the format (docs/log-format.md describes it byte by
byte): the construct-only reader parses with it and the writer builds with it.  The fast
reader uses numpy dtypes derived from the same record table and is tested against it.
"""

from __future__ import annotations

import construct as cs

from .crc import crc32c
from .records import PAYLOAD_SIZE, RECORD_SIZE, RECORD_TYPES

MAGIC = b"\x89ITB\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 1  # 1.1: the ring position in the status (docs/log-format.md 5.4)
HEADER_SIZE = 128
STATUS_SIZE = 256
PAGE_HEADER_SIZE = 16
PAGE_TRAILER_SIZE = 4  # the page CRC
PAGE_SYNC = 0x4750  # b"PG" little-endian
ERASED_SYNC = 0xFFFF  # a never-written slot of flash
MAX_FLEX_STEPS = 13
ITB_EPOCH_ISO = "2000-01-01T00:00:00Z"  # all clocks count seconds from here
ALLOWED_PAGE_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def records_per_page(page_size: int) -> int:
    """How many 32-byte records fit between the page header and its CRC."""
    return (page_size - PAGE_HEADER_SIZE - PAGE_TRAILER_SIZE) // RECORD_SIZE


def _ascii(n: int) -> cs.Construct:
    return cs.PaddedString(n, "ascii")


_CTYPES = {"u8": cs.Int8ul, "u16": cs.Int16ul, "u32": cs.Int32ul}

Header = cs.Struct(
    "magic" / cs.Const(MAGIC),
    "version_major" / cs.Int8ul,
    "version_minor" / cs.Int8ul,
    "header_size" / cs.Int16ul,
    "status_size" / cs.Int16ul,
    "page_size" / cs.Int16ul,
    "record_size" / cs.Int16ul,
    "model_ml" / cs.Int8ul,
    "flags" / cs.Int8ul,
    "ring_slots" / cs.Int32ul,
    "page_count" / cs.Int32ul,
    "serial" / _ascii(16),
    "firmware" / _ascii(12),
    "implant_days" / cs.Int32sl,
    "pump_clock" / cs.Int32ul,
    "programmer_clock" / cs.Int32ul,
    "programmer_id" / _ascii(16),
    "reserved" / cs.Bytes(40),
    "crc" / cs.Int32ul,
)
assert Header.sizeof() == HEADER_SIZE

FlexStep = cs.Struct(
    "start_min" / cs.Int16ul,
    "reserved" / cs.Int16ul,
    "daily_dose_ng" / cs.Int32ul,
    "rate_nl_day" / cs.Int32ul,
)

Status = cs.Struct(
    "reservoir_nl" / cs.Int32ul,
    "low_reservoir_alarm_nl" / cs.Int32ul,
    "drug_name" / _ascii(16),
    "concentration_milli" / cs.Int32ul,
    "mode" / cs.Int8ul,
    "flex_step_count" / cs.Int8ul,
    "motor_state" / cs.Int8ul,
    "battery_state" / cs.Int8ul,
    "daily_dose_ng" / cs.Int32ul,
    "rate_nl_day" / cs.Int32ul,
    "ptm_enabled" / cs.Int8ul,
    "ptm_max_per_day" / cs.Int8ul,
    "ptm_lockout_min" / cs.Int16ul,
    "ptm_dose_ng" / cs.Int32ul,
    "active_alarms" / cs.Int32ul,
    "last_refill_clock" / cs.Int32ul,
    "eri_clock" / cs.Int32ul,
    "flex_steps" / cs.Array(MAX_FLEX_STEPS, FlexStep),
    # 1.1: where the pump's ring stands (docs/log-format.md 5.4); zero in a 1.0 file
    "ring_last_seq" / cs.Int32ul,
    "ring_pages" / cs.Int32ul,
    "ring_last_count" / cs.Int16ul,
    "ring_flags" / cs.Int8ul,
    "reserved" / cs.Bytes(25),
    "crc" / cs.Int32ul,
)
assert Status.sizeof() == STATUS_SIZE
STATUS_RING_OFFSET = 216  # ring_last_seq, from the start of the status block
RING_RECORDED = 0x01  # ring_flags bit 0: ring_last_seq, ring_pages and ring_last_count are set


def payload_struct(fields: tuple) -> cs.Construct:
    """A 24-byte payload: the type's fields, then zero padding."""
    return cs.Padded(PAYLOAD_SIZE, cs.Struct(*[f.name / _CTYPES[f.ctype] for f in fields]))


PAYLOADS: dict[int, cs.Construct] = {int(t.code): payload_struct(t.fields) for t in RECORD_TYPES}

Record = cs.Struct(
    "clock" / cs.Int32ul,
    "code" / cs.Int16ul,
    "aux" / cs.Int16ul,
    "payload" / cs.Switch(cs.this.code, PAYLOADS, default=cs.Bytes(PAYLOAD_SIZE)),
)
assert all(8 + p.sizeof() == RECORD_SIZE for p in PAYLOADS.values())

PageHeader = cs.Struct(
    "sync" / cs.Int16ul,
    "count" / cs.Int16ul,
    "slot" / cs.Int32ul,
    "seq" / cs.Int32ul,
    "reserved" / cs.Int32ul,
)
assert PageHeader.sizeof() == PAGE_HEADER_SIZE


def page_struct(page_size: int) -> cs.Construct:
    """A whole page: header, ``count`` records, 0xFF fill, and a CRC-32C of all before it."""
    body = page_size - PAGE_TRAILER_SIZE
    return cs.Struct(
        "header" / PageHeader,
        "records" / cs.Array(cs.this.header.count, Record),
        "fill" / cs.Bytes(lambda ctx: body - PAGE_HEADER_SIZE - RECORD_SIZE * ctx.header.count),
        "crc" / cs.Checksum(cs.Int32ul, lambda data: crc32c(data), lambda ctx: ctx._io.getvalue()[:body]),
    )


def page_envelope(page_size: int) -> cs.Construct:
    """A page as header, opaque body and CRC: checks the CRC without trusting the count."""
    body = page_size - PAGE_TRAILER_SIZE
    return cs.Struct(
        "header" / PageHeader,
        "body" / cs.Bytes(body - PAGE_HEADER_SIZE),
        "crc" / cs.Checksum(cs.Int32ul, lambda data: crc32c(data), lambda ctx: ctx._io.getvalue()[:body]),
    )
