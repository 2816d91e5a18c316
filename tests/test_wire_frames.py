"""Wire framing (itb_device/wire/frames.py): flags, byte stuffing, header and CRC-16/CCITT-FALSE."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itb_device.wire.frames import (
    ESC,
    FLAG,
    HEAD_SIZE,
    MAX_PAYLOAD,
    VERSION,
    Frame,
    FrameDecoder,
    crc16,
    encode_frame,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seqs = st.integers(0, 0xFFFF)
opcodes = st.integers(0, 0xFF)
# payloads rich in the two special bytes, so stuffing is exercised on most examples
special_bytes = st.sampled_from([FLAG, ESC, FLAG ^ 0x20, ESC ^ 0x20, 0x00, 0xFF])
payloads = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(special_bytes, st.integers(0, 255)), max_size=300).map(bytes),
)


def raw_frame(body_without_crc: bytes, crc: int | None = None) -> bytes:
    """A frame from a hand-made body (stuffed the way the protocol says), with its CRC or ``crc``."""
    crc = crc16(body_without_crc) if crc is None else crc
    body = body_without_crc + crc.to_bytes(2, "little")
    stuffed = bytearray()
    for b in body:
        stuffed += bytes([ESC, b ^ 0x20]) if b in (FLAG, ESC) else bytes([b])
    return bytes([FLAG]) + bytes(stuffed) + bytes([FLAG])


# ----- CRC ----------------------------------------------------------------------------------


def test_crc16_ccitt_false_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF  # init 0xFFFF, no xor-out


def test_crc16_matches_a_bitwise_reference():
    def reference(data: bytes) -> int:  # poly 0x1021, init 0xFFFF, no reflection, no xor-out
        crc = 0xFFFF
        for b in data:
            crc ^= b << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
                crc &= 0xFFFF
        return crc

    for data in (b"\x00", b"\xff" * 7, bytes(range(256)), b"ITB"):
        assert crc16(data) == reference(data)


# ----- encoding -----------------------------------------------------------------------------


def test_encoded_frame_layout_byte_by_byte():
    wire = encode_frame(0x1234, 0x04, b"\x01\x02")
    body = struct.pack("<BHBH", VERSION, 0x1234, 0x04, 2) + b"\x01\x02"
    assert wire == bytes([FLAG]) + body + crc16(body).to_bytes(2, "little") + bytes([FLAG])
    assert wire[1 : HEAD_SIZE + 1] == bytes([0x01, 0x34, 0x12, 0x04, 0x02, 0x00])


def test_flag_and_escape_are_stuffed_everywhere():
    wire = encode_frame(0x7E7D, 0x7E, bytes([FLAG, ESC, FLAG]))
    inner = wire[1:-1]
    assert wire[0] == wire[-1] == FLAG
    assert FLAG not in inner
    # header: version, seq 7D 7E (little-endian) stuffed, opcode 7E stuffed, length 3
    assert inner.startswith(bytes([0x01, ESC, 0x5D, ESC, 0x5E, ESC, 0x5E, 0x03, 0x00]))
    assert bytes([ESC, 0x5E, ESC, 0x5D, ESC, 0x5E]) in inner  # the payload
    assert FrameDecoder().feed(wire) == [Frame(0x7E7D, 0x7E, bytes([FLAG, ESC, FLAG]))]


def test_payload_size_limit():
    biggest = b"\x7e" * MAX_PAYLOAD  # stuffed to twice its size
    assert FrameDecoder().feed(encode_frame(1, 4, biggest)) == [Frame(1, 4, biggest)]
    with pytest.raises(ValueError, match="exceeds 4096"):
        encode_frame(1, 4, bytes(MAX_PAYLOAD + 1))


def test_sequence_number_wraps_to_16_bits():
    assert FrameDecoder().feed(encode_frame(0x1_0005, 1)) == [Frame(5, 1, b"")]


# ----- round trips --------------------------------------------------------------------------


@SETTINGS
@given(seq=seqs, opcode=opcodes, payload=payloads)
def test_round_trip(seq, opcode, payload):
    wire = encode_frame(seq, opcode, payload)
    assert FLAG not in wire[1:-1]
    dec = FrameDecoder()
    assert dec.feed(wire) == [Frame(seq, opcode, payload)]
    assert dec.bad_frames == 0
    assert dec.noise_bytes == 0


@SETTINGS
@given(frames=st.lists(st.tuples(seqs, opcodes, payloads), min_size=1, max_size=5))
def test_split_feeds_byte_by_byte(frames):
    wire = b"".join(encode_frame(*f) for f in frames)
    dec = FrameDecoder()
    got = []
    for i in range(len(wire)):
        got += dec.feed(wire[i : i + 1])
    assert got == [Frame(*f) for f in frames]
    assert dec.bad_frames == 0


@SETTINGS
@given(
    frames=st.lists(st.tuples(seqs, opcodes, payloads), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_split_feeds_at_arbitrary_points(frames, cuts):
    wire = b"".join(encode_frame(*f) for f in frames)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    dec = FrameDecoder()
    got = []
    for a, b in itertools.pairwise(points):
        got += dec.feed(wire[a:b])
    assert got == [Frame(*f) for f in frames]


def test_back_to_back_frames_may_share_a_flag():
    a, b = encode_frame(1, 2, b"a"), encode_frame(2, 3, b"b")
    shared = a + b[1:]  # the closing flag of one opens the next
    assert FrameDecoder().feed(shared) == [Frame(1, 2, b"a"), Frame(2, 3, b"b")]


# ----- noise and damage ---------------------------------------------------------------------


@SETTINGS
@given(noise=st.binary(max_size=200), seq=seqs, opcode=opcodes, payload=payloads)
def test_decoder_resyncs_after_noise(noise, seq, opcode, payload):
    frame = encode_frame(seq, opcode, payload)
    dec = FrameDecoder()
    got = dec.feed(noise + frame)
    assert got, "the frame after the noise was lost"
    assert got[-1] == Frame(seq, opcode, payload)


def test_noise_outside_frames_is_counted_as_noise():
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x01garbage" + encode_frame(9, 1, b"x")) == [Frame(9, 1, b"x")]
    assert dec.noise_bytes == 9
    assert dec.bad_frames == 0


def test_noise_between_frames_is_one_bad_frame_and_both_frames_survive():
    dec = FrameDecoder()
    wire = encode_frame(1, 1, b"a") + b"junk" + encode_frame(2, 1, b"b")
    assert dec.feed(wire) == [Frame(1, 1, b"a"), Frame(2, 1, b"b")]
    assert dec.bad_frames == 1


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("bad crc", raw_frame(struct.pack("<BHBH", 1, 7, 4, 1) + b"z", crc=0x0000)),
        ("bad escape", bytes([FLAG, 0x01, 0x07, 0x00, 0x04, 0x00, 0x00, ESC, 0x01, 0x00, 0x00, FLAG])),
        ("escape at the end", bytes([FLAG, 0x01, 0x07, 0x00, 0x04, 0x00, 0x00, 0x12, ESC, FLAG])),
        ("length too long", raw_frame(struct.pack("<BHBH", 1, 7, 4, 5) + b"abc")),
        ("length too short", raw_frame(struct.pack("<BHBH", 1, 7, 4, 1) + b"abc")),
        ("unknown version", raw_frame(struct.pack("<BHBH", 2, 7, 4, 1) + b"z")),
        ("too short for a header", bytes([FLAG, 0x01, 0x02, 0x03, FLAG])),
    ],
)
def test_damaged_frames_are_counted_and_dropped(name, wire):
    good = encode_frame(8, 4, b"ok")
    dec = FrameDecoder()
    assert dec.feed(wire + good) == [Frame(8, 4, b"ok")], name
    assert dec.bad_frames == 1, name


def test_every_single_byte_corruption_is_detected():
    wire = encode_frame(0x0102, 0x84, bytes(range(40)))
    for i in range(1, len(wire) - 1):
        for flip in (0x01, 0x80, 0xFF):
            damaged = bytearray(wire)
            damaged[i] ^= flip
            dec = FrameDecoder()
            got = dec.feed(bytes(damaged) + encode_frame(5, 1))
            assert got == [Frame(5, 1, b"")], (i, flip)
            assert dec.bad_frames >= 1


def test_an_endless_frame_is_abandoned_and_the_next_frame_decodes():
    dec = FrameDecoder()
    dec.feed(bytes([FLAG]))
    for _ in range(10):
        dec.feed(b"\x00" * 1000)  # never closed: more than any legal frame
    assert dec.bad_frames == 1
    assert dec.feed(encode_frame(3, 1, b"after")) == [Frame(3, 1, b"after")]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8))
def test_never_raises_on_random_input(data, cuts):
    dec = FrameDecoder()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        for f in dec.feed(data[a:b]):
            assert isinstance(f, Frame)
            assert len(f.payload) <= MAX_PAYLOAD
    # and the decoder still works afterwards (a flag first ends whatever was pending)
    assert dec.feed(bytes([FLAG]) + encode_frame(1, 2, b"ok"))[-1] == Frame(1, 2, b"ok")


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.sampled_from([FLAG, ESC, 0x5E, 0x5D, 0x01, 0x00]), max_size=200).map(bytes))
def test_never_raises_on_flag_and_escape_soup(data):
    dec = FrameDecoder()
    dec.feed(data)
    assert dec.feed(bytes([FLAG]) + encode_frame(1, 2, b"ok"))[-1] == Frame(1, 2, b"ok")
