"""PumpService (the pump's request handler): idempotency by sequence number through its response
cache, refusals as ERROR frames, and robustness against malformed requests."""

from __future__ import annotations

import pytest
from test_wire_serve import fresh_pump, open_port, serving

from itb_device import Prescription
from itb_device.wire.frames import Frame, FrameDecoder, encode_frame
from itb_device.wire.link import Link
from itb_device.wire.messages import (
    BOLUS_KINDS,
    BOLUS_REQ,
    BOLUS_RESP,
    READ_BLOCK,
    REFILL_REQ,
    RESPONSE,
    SNAPSHOT,
    U32,
    ErrorCode,
    Op,
)
from itb_device.wire.server import CACHE_SIZE, PumpService
from parsers import RecordCode
from parsers.writer import encode_log


def request(seq: int, op: int, payload: bytes = b"") -> Frame:
    """A request frame exactly as the pump's decoder hands it over (through the wire encoding)."""
    (frame,) = FrameDecoder().feed(encode_frame(seq, op, payload))
    return frame


def reply(wire: bytes) -> Frame:
    (frame,) = FrameDecoder().feed(wire)
    return frame


def bolus_frame(seq: int, dose_ng: int = 1000, duration_s: int = 1) -> Frame:
    return request(seq, Op.BOLUS, BOLUS_REQ.pack(BOLUS_KINDS["clinician"], dose_ng, duration_s))


def running_service(tick: float = 5.0) -> PumpService:
    """A pump running 100 mcg/day, in a session, whose boluses end before the next command."""
    pump = fresh_pump()
    service = PumpService(pump, tick=tick)
    service.handle(request(1, Op.SESSION_START, U32.pack(0)))
    pump.program(Prescription("simple_continuous", 100.0, 2000.0))
    return service


def bolus_starts(service: PumpService) -> list[int]:
    pages = sorted(service.pump.memory.pages(), key=lambda p: p.seq)
    return [r.values["bolus_id"] for p in pages for r in p.records if r.code == RecordCode.BOLUS_START]


def test_the_same_request_twice_gives_the_same_reply_and_one_execution():
    service = running_service()
    frame = bolus_frame(7)
    executed = service.executed
    first = service.handle(frame)
    second = service.handle(request(7, Op.BOLUS, frame.payload))  # a retry: the same bytes again
    assert first == second
    ans = reply(first)
    assert (ans.seq, ans.opcode) == (7, Op.BOLUS | RESPONSE)
    assert service.executed == executed + 1
    assert bolus_starts(service) == [BOLUS_RESP.unpack(ans.payload)[0]] == [1]


def test_a_new_sequence_number_is_a_new_command():
    service = running_service()
    ids = [BOLUS_RESP.unpack(reply(service.handle(bolus_frame(seq))).payload)[0] for seq in (10, 11, 12)]
    assert ids == [1, 2, 3]
    assert bolus_starts(service) == [1, 2, 3]


def test_refusals_are_cached_like_any_response():
    pump = fresh_pump()
    service = PumpService(pump, tick=5)
    service.handle(request(1, Op.SESSION_START, U32.pack(0)))
    refused = service.handle(bolus_frame(2))  # the pump is stopped
    ans = reply(refused)
    assert ans.opcode == Op.ERROR | RESPONSE
    assert ans.payload == bytes([ErrorCode.REFUSED]) + b"the pump is stopped"
    pump.program(Prescription("simple_continuous", 100.0, 2000.0))
    assert service.handle(bolus_frame(2)) == refused  # a retry is not a new command
    assert bolus_starts(service) == []
    assert reply(service.handle(bolus_frame(3))).opcode == Op.BOLUS | RESPONSE


def test_session_start_clears_the_cache():
    service = running_service()
    first = reply(service.handle(bolus_frame(5)))
    service.handle(request(6, Op.SESSION_START, U32.pack(1)))
    again = reply(service.handle(bolus_frame(5)))  # seq 5 of an earlier session means nothing now
    assert BOLUS_RESP.unpack(first.payload) == (1,)
    assert BOLUS_RESP.unpack(again.payload) == (2,)
    assert bolus_starts(service) == [1, 2]


def test_a_repeated_session_start_is_answered_from_the_cache():
    service = running_service()
    pump = service.pump
    sessions = pump.session_id
    start = request(40, Op.SESSION_START, U32.pack(9))
    assert service.handle(start) == service.handle(start)
    assert pump.session_id == sessions  # the pump was already in telemetry: no new session
    assert service.handle(request(41, Op.SESSION_END)) == encode_frame(41, Op.SESSION_END | RESPONSE)
    assert not pump.in_telemetry
    ans = reply(service.handle(start))  # still cached: the retry is not a new session
    assert ans.opcode == Op.SESSION_START | RESPONSE
    assert not pump.in_telemetry


@pytest.mark.parametrize(("others", "executed_again"), [(CACHE_SIZE - 1, False), (CACHE_SIZE, True)])
def test_the_cache_holds_the_last_64_responses(others, executed_again):
    assert CACHE_SIZE == 64
    service = running_service()
    original = service.handle(bolus_frame(100))
    for i in range(others):
        service.handle(request(200 + i, Op.SNAPSHOT))
    again = service.handle(bolus_frame(100))
    assert (again != original) is executed_again
    assert bolus_starts(service) == ([1, 2] if executed_again else [1])


def test_read_block_serves_a_frozen_snapshot():
    pump = fresh_pump(days=1)
    service = PumpService(pump)
    service.handle(request(1, Op.SESSION_START, U32.pack(0)))
    image = encode_log(pump.log_image())
    snap, total, page = SNAPSHOT.unpack(reply(service.handle(request(2, Op.SNAPSHOT))).payload)
    assert (snap, total, page) == (1, len(image), 1024)
    pump.advance_to(pump.now + 86_400)  # the pump logs on; the snapshot does not change
    got = reply(service.handle(request(3, Op.READ_BLOCK, READ_BLOCK.pack(snap, 100, 500)))).payload
    assert got == image[100:600]
    tail = reply(service.handle(request(4, Op.READ_BLOCK, READ_BLOCK.pack(snap, total - 10, 100)))).payload
    assert tail == image[-10:]  # a block past the end is cut short


def test_only_the_last_four_snapshots_are_held():
    service = PumpService(replay=bytes(range(256)) * 4)
    for seq in range(1, 6):
        service.handle(request(seq, Op.SNAPSHOT))
    ok = reply(service.handle(request(10, Op.READ_BLOCK, READ_BLOCK.pack(2, 0, 4))))
    assert ok.payload == bytes(range(4))
    stale = reply(service.handle(request(11, Op.READ_BLOCK, READ_BLOCK.pack(1, 0, 4))))
    assert stale.opcode == Op.ERROR | RESPONSE
    assert stale.payload[0] == ErrorCode.STALE_SNAPSHOT
    assert b"snapshot 1 is no longer held" in stale.payload


def test_a_replayed_log_refuses_every_command_as_read_only():
    service = PumpService(replay=bytes(range(256)) * 4)
    payloads = {
        Op.PROGRAM: bytes(16),
        Op.REFILL: REFILL_REQ.pack(10_000_000, 2_000_000, 0),
        Op.BOLUS: BOLUS_REQ.pack(1, 1000, 60),
        Op.SET_CLOCK: U32.pack(1),
    }
    for seq, (op, payload) in enumerate(payloads.items()):
        ans = reply(service.handle(request(seq, op, payload)))
        assert ans.opcode == Op.ERROR | RESPONSE, op.name
        assert ans.payload[0] == ErrorCode.READ_ONLY, op.name
    assert service.executed == 0


def test_a_malformed_program_is_a_bad_request():
    service = running_service()
    ans = reply(service.handle(request(3, Op.PROGRAM, b"\x01\x00")))
    assert ans.opcode == Op.ERROR | RESPONSE
    assert ans.payload[0] == ErrorCode.BAD_REQUEST
    assert ans.payload[1:].startswith(b"malformed PROGRAM request")


def test_an_unknown_opcode_is_a_bad_request():
    service = running_service()
    ans = reply(service.handle(request(3, 0x42, b"xyz")))
    assert (ans.seq, ans.opcode) == (3, Op.ERROR | RESPONSE)
    assert ans.payload == bytes([ErrorCode.BAD_REQUEST]) + b"unknown opcode 0x42"


@pytest.mark.parametrize(
    ("op", "payload"),
    [
        pytest.param(Op.READ_BLOCK, b"\x01\x00\x00", id="READ_BLOCK-3-bytes"),
        pytest.param(Op.REFILL, b"\x01", id="REFILL-1-byte"),
        pytest.param(Op.BOLUS, b"\x01\x02", id="BOLUS-2-bytes"),
        pytest.param(Op.SET_CLOCK, b"\x01\x02\x03", id="SET_CLOCK-3-bytes"),
        pytest.param(Op.SET_CLOCK, bytes(5), id="SET_CLOCK-5-bytes"),
        pytest.param(Op.PROGRAM, b"\x01\x02\x03", id="PROGRAM-3-bytes"),
    ],
)
def test_a_payload_of_the_wrong_length_is_a_bad_request(op, payload):
    service = running_service()
    ans = reply(service.handle(request(3, op, payload)))
    assert (ans.seq, ans.opcode) == (3, Op.ERROR | RESPONSE)
    assert ans.payload[0] == ErrorCode.BAD_REQUEST
    assert ans.payload[1:].startswith(f"malformed {op.name} request".encode())


def test_a_read_block_longer_than_a_frame_is_a_bad_request():
    pump = fresh_pump(days=10)  # an 8 KiB log
    service = PumpService(pump)
    snap, total, _ = SNAPSHOT.unpack(reply(service.handle(request(1, Op.SNAPSHOT))).payload)
    assert total > 5000
    ans = reply(service.handle(request(2, Op.READ_BLOCK, READ_BLOCK.pack(snap, 0, 5000))))
    assert ans.opcode == Op.ERROR | RESPONSE
    assert ans.payload[0] == ErrorCode.BAD_REQUEST


def test_the_server_survives_a_malformed_request_on_the_wire():
    pump = fresh_pump()
    with serving(PumpService(pump), "pty", raise_crash=False) as srv:
        port = open_port(srv.url)
        try:
            link = Link(port, timeout=0.1, retries=2)
            link.request(Op.SESSION_START, U32.pack(0))
            port.write(encode_frame(0x4242, Op.SET_CLOCK, b"\x01\x02\x03"))
            link.request(Op.SESSION_END)  # still answered?
        finally:
            port.close()
        assert not srv.crashed
