"""The writer's ``struct`` codec, the construct declaration and the numpy dtypes agree byte for
byte; CRC-32C is the catalogue CRC."""

from __future__ import annotations

import dataclasses

import logfactory as lf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import format as fmt
from parsers.codec import decode_record, encode_record, raw_field_value
from parsers.crc import CHECK_VALUE, crc32c
from parsers.fast import PAYLOAD_DTYPES, RECORD_DTYPE
from parsers.header import decode_header, decode_status, encode_header, encode_status
from parsers.model import Record
from parsers.records import BY_CODE, PAYLOAD_SIZE, RECORD_SIZE, RECORD_TYPES
from parsers.writer import encode_page


def _crc32c_reference(data: bytes) -> int:
    """Bitwise CRC-32C (reflected polynomial 0x82F63B78), independent of the crc32c package."""
    crc = 0xFFFF_FFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F6_3B78 if crc & 1 else 0)
    return crc ^ 0xFFFF_FFFF


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE306_9283 == CHECK_VALUE
    assert crc32c(b"") == 0
    assert _crc32c_reference(b"123456789") == 0xE306_9283


@given(st.binary(max_size=300))
def test_crc32c_matches_bitwise_reference(data):
    assert crc32c(data) == _crc32c_reference(data)
    assert crc32c(memoryview(data)) == crc32c(bytearray(data)) == _crc32c_reference(data)


def _raw_payload(rec: Record) -> dict[str, int]:
    return {f.name: raw_field_value(f, rec.values[f.name]) for f in BY_CODE[rec.code].fields}


def test_record_table_is_consistent():
    codes = [int(t.code) for t in RECORD_TYPES]
    assert len(codes) == len(set(codes)) == len(lf.KNOWN_CODES)
    assert RECORD_SIZE == 8 + PAYLOAD_SIZE == 32
    for t in RECORD_TYPES:
        assert fmt.PAYLOADS[int(t.code)].sizeof() == PAYLOAD_SIZE
        assert PAYLOAD_DTYPES[int(t.code)].itemsize == PAYLOAD_SIZE
        assert list(PAYLOAD_DTYPES[int(t.code)].names or ()) == [f.name for f in t.fields]


@pytest.mark.parametrize("code", lf.KNOWN_CODES, ids=[t.name for t in RECORD_TYPES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_record_matches_construct_build(code, data):
    """For every known type: struct codec bytes == construct build bytes, and both the
    construct parser, the numpy dtype and the codec decoder give the values back."""
    rec = data.draw(lf.known_records([code], sane_clocks=False, clock=lf.clocks(sane=False)))
    raw = _raw_payload(rec)
    encoded = encode_record(rec)
    built = fmt.Record.build(dict(clock=rec.clock, code=rec.code, aux=rec.aux, payload=raw))
    assert encoded == built
    assert len(encoded) == RECORD_SIZE
    parsed = fmt.Record.parse(encoded)
    assert (parsed.clock, parsed.code, parsed.aux) == (rec.clock, rec.code, rec.aux)
    assert {k: parsed.payload[k] for k in raw} == raw
    arr = np.frombuffer(encoded, dtype=RECORD_DTYPE)
    pay = arr["payload"].view(PAYLOAD_DTYPES[code])
    assert {k: int(pay[k][0]) for k in raw} == raw
    assert (int(arr["clock"][0]), int(arr["code"][0]), int(arr["aux"][0])) == (rec.clock, rec.code, rec.aux)
    assert decode_record(encoded) == rec
    used = BY_CODE[code].payload_used
    assert encoded[8 + used :] == bytes(PAYLOAD_SIZE - used)  # padding is zero


@settings(max_examples=50, deadline=None)
@given(rec=lf.unknown_records(sane_clocks=False))
def test_unknown_record_keeps_its_payload(rec):
    encoded = encode_record(rec)
    built = fmt.Record.build(dict(clock=rec.clock, code=rec.code, aux=rec.aux, payload=rec.raw_payload))
    assert encoded == built
    assert encoded[8:] == rec.raw_payload
    assert decode_record(encoded) == rec


def test_encode_record_refuses_what_it_cannot_store():
    with pytest.raises(ValueError, match="raw_payload"):
        encode_record(Record(0, 0x7E, {}))
    with pytest.raises(ValueError, match="raw_payload"):
        encode_record(Record(0, 0x7E, {}, 0, b"short"))
    with pytest.raises(ValueError, match="delivery"):
        encode_record(lf.rec(0x10, 0, interval_s=2**32))
    with pytest.raises(ValueError, match="prescription"):
        encode_record(lf.rec(0x01, 0, mode="no_such_mode"))


@settings(max_examples=25, deadline=None)
@given(image=lf.log_images(max_records=40))
def test_encode_page_matches_construct_page(image):
    ps = image.header.page_size
    page_struct = fmt.page_struct(ps)
    for page in image.pages:
        n = len(page.records)
        built = page_struct.build(
            dict(
                header=dict(sync=fmt.PAGE_SYNC, count=n, slot=page.slot, seq=page.seq, reserved=0),
                records=[fmt.Record.parse(encode_record(r)) for r in page.records],
                fill=b"\xff" * (ps - fmt.PAGE_HEADER_SIZE - fmt.PAGE_TRAILER_SIZE - RECORD_SIZE * n),
                crc=None,
            )
        )
        encoded = encode_page(page, ps)
        assert encoded == built
        assert int.from_bytes(encoded[-4:], "little") == crc32c(encoded[:-4])
        assert page_struct.parse(encoded).header.seq == page.seq


def test_encode_page_refuses_too_many_records():
    page = lf.make_image([lf.delivery(i) for i in range(7)]).pages[0]
    too_many = dataclasses.replace(page, records=page.records + page.records[:1])
    with pytest.raises(ValueError, match="at most 7 fit"):
        encode_page(too_many, 256)


@settings(max_examples=60, deadline=None)
@given(h=lf.headers(), n=st.integers(0, 2**32 - 1), s=lf.statuses())
def test_header_and_status_round_trip(h, n, s):
    raw = encode_header(h, n)
    assert len(raw) == fmt.HEADER_SIZE and raw.startswith(fmt.MAGIC)
    got, ok = decode_header(raw)
    assert ok and got == dataclasses.replace(h, page_count=n)
    c = fmt.Header.parse(raw)
    assert (c.header_size, c.status_size, c.record_size) == (128, 256, 32)
    assert c.crc == crc32c(raw[:-4])
    raw_s = encode_status(s)
    assert len(raw_s) == fmt.STATUS_SIZE
    assert decode_status(raw_s) == (s, True)


def test_status_with_too_many_flex_steps_is_refused():
    step = lf.FlexStep(0, 1.0, 0.001)
    with pytest.raises(ValueError, match="at most 13"):
        encode_status(lf.make_status(flex_steps=(step,) * 14))
