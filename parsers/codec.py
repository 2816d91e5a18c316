"""Record payload encoding and decoding with ``struct``, built from the record table.

Used by the writer (and by anything that needs one record at a time).  The construct
declaration in :mod:`parsers.format` is the reference; tests prove both give the same bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from .model import Record
from .records import BY_CODE, PAYLOAD_SIZE, RecordType, enum_name, enum_value

_FMT = {"u8": "B", "u16": "H", "u32": "I"}
_RECORD_HEADER = struct.Struct("<IHH")


def _payload_struct(t: RecordType) -> struct.Struct:
    return struct.Struct("<" + "".join(_FMT[f.ctype] for f in t.fields) + f"{PAYLOAD_SIZE - t.payload_used}x")


_STRUCTS = {code: _payload_struct(t) for code, t in BY_CODE.items()}


def raw_field_value(f: Any, value: Any) -> int:
    """A clinical-unit value (or enum name) to the integer stored on disk."""
    if f.enum is not None:
        return enum_value(f.enum, value) if isinstance(value, str) else int(value)
    if f.per_unit == 1:
        return int(value)
    return round(float(value) * f.per_unit)


def field_value(f: Any, raw: int) -> Any:
    """The integer stored on disk to its clinical-unit value (or enum name)."""
    if f.enum is not None:
        return enum_name(f.enum, raw)
    if f.per_unit == 1:
        return int(raw)
    return raw / f.per_unit


def encode_record(rec: Record) -> bytes:
    """The 32 bytes of one record.  Unknown codes need ``raw_payload`` (24 bytes)."""
    t = BY_CODE.get(rec.code)
    if t is None or rec.raw_payload is not None:
        payload = rec.raw_payload if rec.raw_payload is not None else b""
        if len(payload) != PAYLOAD_SIZE:
            raise ValueError(f"record code {rec.code:#06x} needs a {PAYLOAD_SIZE}-byte raw_payload")
        return _RECORD_HEADER.pack(rec.clock, rec.code, rec.aux) + payload
    try:
        raws = [raw_field_value(f, rec.values.get(f.name, 0)) for f in t.fields]
        return _RECORD_HEADER.pack(rec.clock, rec.code, rec.aux) + _STRUCTS[rec.code].pack(*raws)
    except (struct.error, KeyError, ValueError) as exc:
        raise ValueError(f"cannot encode {t.name} record {rec.values!r}: {exc}") from exc


def decode_record(data: bytes | memoryview) -> Record:
    """One record from its 32 bytes (unknown codes keep their payload bytes)."""
    clock, code, aux = _RECORD_HEADER.unpack_from(data, 0)
    t = BY_CODE.get(code)
    if t is None:
        return Record(clock, code, {}, aux, bytes(data[8:32]))
    raws = _STRUCTS[code].unpack_from(data, 8)
    return Record(clock, code, {f.name: field_value(f, r) for f, r in zip(t.fields, raws, strict=True)}, aux)
