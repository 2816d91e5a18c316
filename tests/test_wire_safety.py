"""Programming safety and the pump server over a real link (issue 14 items 6, 8-12): pyserial on the
programmer's side, the served pump over a pseudo-terminal or socket://127.0.0.1.

* the pump checks bolus limits, prescriptions and overrides itself, whatever frame it is sent;
* bad values are DeviceErrors before anything is encoded;
* a bolus whose answer was lost is found out, never given twice (a faulty link, many boluses);
* a clock near the top of its range, then ticking, never ends the server;
* a half frame, an idle client or one that never reads its replies holds up nobody.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_wire_pump_sim import pump_sim, stop
from test_wire_serve import Server, fresh_pump, open_port, serving

from itb_device import DeviceError, LinkError, Prescription, ProgrammerRefused, PumpRefused
from itb_device.errors import BolusOutcomeUnknown
from itb_device.safety import MAX_PUMP_CLOCK
from itb_device.serial_backend import SerialProgrammer
from itb_device.sim.pump import U32_MAX
from itb_device.wire.faults import FaultSpec
from itb_device.wire.frames import encode_frame
from itb_device.wire.link import Link
from itb_device.wire.messages import (
    BOLUS_KEYED_REQ,
    BOLUS_QUERY_RESP,
    BOLUS_REQ,
    READ_BLOCK,
    SNAPSHOT,
    U32,
    Op,
    encode_prescription,
)
from itb_device.wire.server import PtyTransport, PumpService, TcpTransport, serve
from parsers import RecordCode, read_log_bytes
from parsers.writer import encode_log

KINDS = ["pty", "tcp"]
BOLUS_RUN = int(os.environ.get("ITB_BOLUS_RUN", "300"))  # boluses in the faulty-link run


def records(pump: Any, code: int) -> list[dict[str, Any]]:
    pages = sorted(pump.memory.pages(), key=lambda p: p.seq)
    return [r.values for p in pages for r in p.records if r.code == code]


def running_pump(dose: float = 200.0) -> Any:
    """A fresh 20 mL pump of 2000 mcg/mL running ``dose`` mcg/day, out of session."""
    pump = fresh_pump()
    pump.telemetry_start()
    pump.program(Prescription("simple_continuous", dose, 2000.0))
    pump.telemetry_end()
    return pump


def raw_link(srv: Server) -> tuple[Link, Any]:
    port = open_port(srv.url)
    link = Link(port, timeout=0.3, retries=4)
    link.request(Op.SESSION_START, U32.pack(0))
    return link, port


# ----- items 6 and 8: the pump checks on its own side ------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_the_pump_refuses_raw_frames_the_programmer_would_have_refused(kind):
    pump = running_pump()
    with serving(PumpService(pump), kind) as srv:
        link, port = raw_link(srv)
        try:
            # item 8: 9,000 mcg/day at a concentration other than the drug in the reservoir, override 0
            rx = Prescription("simple_continuous", 9000.0, 10_000.0)
            with pytest.raises(PumpRefused, match="does not match the drug in the reservoir"):
                link.request(Op.PROGRAM, encode_prescription(rx, False, None))
            # the override flag without its note (reason and operator) is refused too
            with pytest.raises(PumpRefused, match="an override needs a reason"):
                link.request(Op.PROGRAM, encode_prescription(rx, True, None))
            with pytest.raises(PumpRefused, match="override reason 'none' is not one of"):
                link.request(Op.PROGRAM, encode_prescription(rx, True, None, ("none", 5)))
            with pytest.raises(PumpRefused, match="malformed PROGRAM request"):  # a note without override
                link.request(Op.PROGRAM, encode_prescription(rx, False, None, ("other", 5)))
            # item 6: boluses above the limit for their kind, 40,000 mcg (the whole reservoir) included
            for code, dose_ng in ((1, 1_000_000), (2, 10_000_000), (3, 40_000_000)):
                with pytest.raises(PumpRefused, match=r"is above the .* limit for a"):
                    link.request(Op.BOLUS, BOLUS_REQ.pack(code, dose_ng, 60))
            assert pump.rx.daily_dose_mcg == 200
            assert records(pump, RecordCode.BOLUS_START) == []
            assert records(pump, RecordCode.OVERRIDE_NOTE) == []
            # with its note the override is carried out, and the pump's log keeps why and who
            link.request(Op.PROGRAM, encode_prescription(rx, True, None, ("physician_order", 31337)))
        finally:
            port.close()
    assert pump.rx.daily_dose_mcg == 9000
    (note,) = records(pump, RecordCode.OVERRIDE_NOTE)
    assert (note["override_reason"], note["operator_id"]) == ("physician_order", 31337)
    assert records(pump, RecordCode.PRESCRIPTION)[-1]["override"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_an_override_through_the_programmer_reaches_the_pumps_log(kind):
    pump = running_pump()
    with serving(PumpService(pump), kind) as srv, \
            SerialProgrammer(open_port(srv.url), link_timeout=0.2) as prog:
        pump.refill(20, 2000)  # the drug in the reservoir, entered at refill
        with pytest.raises(ProgrammerRefused, match="an override needs a reason"):
            prog.program(Prescription(daily_dose_mcg=300), override=True)
        with pytest.raises(ProgrammerRefused, match="a clinician bolus of 1000 mcg is above"):
            prog.bolus(1000)
        prog.program(Prescription(daily_dose_mcg=300), override=True, reason="monitored_inpatient",
                     operator=1234)
        log = read_log_bytes(prog.read_log_bytes(), "<wire>")
    ev = log.events[log.events["event"] == "override_note"]
    assert ev[["override_reason", "operator_id"]].values.tolist() == [["monitored_inpatient", 1234]]


# ----- item 9: values are checked before anything is encoded ----------------------------------------

BAD = [math.nan, math.inf, -math.inf, -1.0, 1e9, 1e300]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_values_over_the_wire_are_device_errors(kind):
    pump = running_pump()
    calls = {
        "bolus dose": lambda p, x: p.bolus(x),
        "bolus duration": lambda p, x: p.bolus(10, duration_min=x),
        "daily dose": lambda p, x: p.program(Prescription(daily_dose_mcg=x)),
        "concentration": lambda p, x: p.program(Prescription(daily_dose_mcg=200, concentration_mcg_ml=x)),
        "intended": lambda p, x: p.program(Prescription(daily_dose_mcg=200), intended_daily_dose_mcg=x),
        "refill volume": lambda p, x: p.refill(x, 2000),
        "refill concentration": lambda p, x: p.refill(10, x),
    }
    with serving(PumpService(pump), kind) as srv, \
            SerialProgrammer(open_port(srv.url), link_timeout=0.2) as prog:
        sent = prog.link.attempts
        for name, call in calls.items():
            for x in BAD:
                try:
                    call(prog, x)
                except DeviceError:
                    continue
                except Exception as exc:  # struct.error, OverflowError, a bare ValueError ...
                    pytest.fail(f"{name} {x!r}: {type(exc).__name__}: {exc}")
                pytest.fail(f"{name} {x!r} was accepted")
        assert prog.link.attempts == sent  # nothing bad reached the wire
        assert prog.interrogate() == pump.status()
        assert read_log_bytes(prog.read_log_bytes(), "<wire>").damaged is False


# ----- item 10: a bolus whose answer was lost is found out, never given twice ----------------------------

def _blackout(srv: Server) -> dict[str, bool]:
    """Switches that make the pump's side lose its replies, or everything, while set."""
    state = {"replies": False, "all": False}
    send, poll = srv.transport.send, srv.transport.poll
    srv.transport.send = lambda c, d: None if (state["replies"] or state["all"]) else send(c, d)
    srv.transport.poll = lambda t: [(c, (b"" if d else d) if state["all"] else d) for c, d in poll(t)]
    return state


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), [("pty", 5), ("tcp", 6)])
def test_boluses_over_a_faulty_link_are_never_given_twice(kind, seed, caplog):
    """Many boluses through a link that drops and corrupts 2% of bytes and splits 30% of writes,
    with only 3 attempts per request, and every 25th bolus sent into a blackout (the replies
    lost, or everything lost): the naive caller simply asks again after any error.  Every bolus
    is given exactly once, and every error says whether it was given, or that it is unknown."""
    caplog.set_level(logging.WARNING, logger="itb_device")
    pump = running_pump(100.0)
    service = PumpService(pump, tick=5)  # each 1-second bolus has ended before the next
    spec = FaultSpec(drop=0.01, corrupt=0.01, split=0.3, seed=seed)
    outcomes: collections.Counter[str] = collections.Counter()
    ids = []
    with serving(service, kind, spec) as srv:
        blackout = _blackout(srv)
        prog = SerialProgrammer(open_port(srv.url), link_timeout=0.01)
        prog.link.bad_frame_wait = 0.01
        prog.link.retries = 2
        try:
            for i in range(BOLUS_RUN):
                lose = ("replies", "all")[(i // 25) % 2] if i % 25 == 24 else None
                for attempt in range(100):
                    if lose and attempt == 0:
                        blackout[lose] = True
                    try:
                        ids.append(prog.bolus(1.0, duration_min=1 / 60))
                        outcomes["given first time" if attempt == 0 else "given when asked again"] += 1
                        break
                    except BolusOutcomeUnknown as exc:
                        assert "OUTCOME IS UNKNOWN" in str(exc) and exc.key
                        outcomes["unknown"] += 1
                    except LinkError as exc:
                        assert "did NOT start the bolus" in str(exc), str(exc)
                        outcomes["confirmed not given"] += 1
                    finally:
                        blackout["replies"] = blackout["all"] = False
                else:
                    pytest.fail(f"bolus {i} never went through")
            link = prog.link
        finally:
            prog.close()
    starts = records(pump, RecordCode.BOLUS_START)
    assert len(starts) == BOLUS_RUN  # exactly one bolus for each one asked for
    assert [s["bolus_id"] for s in starts] == ids  # ... and each answer was its own
    assert len(set(ids)) == BOLUS_RUN
    found = sum("the answer was lost, but the pump confirms it started" in r.getMessage()
                for r in caplog.records)
    # the faults were real, and every path was taken
    assert srv.transport.dropped > 0 and srv.transport.corrupted > 0 and link.failures > 0
    assert outcomes["unknown"] >= BOLUS_RUN // 25  # every blackout ended in "unknown"
    assert found > 0 and outcomes["confirmed not given"] > 0
    print(f"\nRESULT kind={kind} boluses={BOLUS_RUN} dropped_bytes={srv.transport.dropped} "
          f"corrupted_bytes={srv.transport.corrupted} requests={link.attempts} retried={link.failures} "
          f"answer_lost_found_given={found} "
          + " ".join(f"{k.replace(' ', '_')}={v}" for k, v in outcomes.items()))


def test_a_reissued_bolus_with_the_same_key_is_not_given_again_in_a_new_session():
    pump = running_pump()
    with serving(PumpService(pump), "tcp") as srv:
        link, port = raw_link(srv)
        try:
            first = link.request(Op.BOLUS, BOLUS_KEYED_REQ.pack(1, 50_000, 60, 0xC0FFEE))
            assert BOLUS_QUERY_RESP.unpack(link.request(Op.BOLUS_QUERY, U32.pack(0xC0FFEE))) == (1, 1)
            assert BOLUS_QUERY_RESP.unpack(link.request(Op.BOLUS_QUERY, U32.pack(0xBAD))) == (0, 0)
            link.request(Op.SESSION_END)
            link.request(Op.SESSION_START, U32.pack(0))  # a new session clears the response cache ...
            again = link.request(Op.BOLUS, BOLUS_KEYED_REQ.pack(1, 50_000, 60, 0xC0FFEE))
            assert again == first  # ... but the pump still knows the key: the same bolus, not a new one
            with pytest.raises(PumpRefused, match="was used for another bolus"):
                link.request(Op.BOLUS, BOLUS_KEYED_REQ.pack(1, 60_000, 60, 0xC0FFEE))
            with pytest.raises(PumpRefused, match="never 0"):
                link.request(Op.BOLUS, BOLUS_KEYED_REQ.pack(1, 60_000, 60, 0))
        finally:
            port.close()
    assert len(records(pump, RecordCode.BOLUS_START)) == 1


# ----- item 11: the clock's range, and no request ends the server -----------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_clock_near_the_top_then_ticking_never_ends_the_server(kind):
    pump = running_pump()
    service = PumpService(pump, tick=3600)
    with serving(service, kind) as srv:
        link, port = raw_link(srv)
        try:
            for clock in (U32_MAX - 100, MAX_PUMP_CLOCK + 1):
                with pytest.raises(PumpRefused, match="outside the pump's range"):
                    link.request(Op.SET_CLOCK, U32.pack(clock))
            link.request(Op.SET_CLOCK, U32.pack(MAX_PUMP_CLOCK))  # the last second accepted
            pump._clock_pump0 = U32_MAX - 7200  # a clock that ran on past it (no command can do this)
            for _ in range(5):  # five hours pass: the clock runs past the top of its 32 bits
                link.request(Op.SNAPSHOT)
            _snap, total, _ = SNAPSHOT.unpack(link.request(Op.SNAPSHOT))
            assert total == len(encode_log(pump.log_image()))
            # a failure inside the pump is an ERROR frame (FAULT), and the server goes on
            real = pump.log_image
            pump.log_image = lambda: 1 / 0
            with pytest.raises(PumpRefused, match="the pump failed handling the request: ZeroDivisionError"):
                link.request(Op.SNAPSHOT)
            pump.log_image = real
            link.request(Op.SNAPSHOT)
        finally:
            port.close()
    assert service.faults == 1 and not srv.crashed
    log = read_log_bytes(encode_log(pump.log_image()), "<top>")
    assert log.delivery["pump_clock"].max() == U32_MAX  # held at the top, still encodable


def test_itb_pump_sim_survives_a_clock_at_the_top_and_ticks():
    with pump_sim("--listen", "tcp://127.0.0.1:0", "--tick", "86400") as (proc, url):
        port = open_port(url)
        try:
            link = Link(port, timeout=0.5, retries=4)
            link.request(Op.SESSION_START, U32.pack(0))
            with pytest.raises(PumpRefused, match="outside the pump's range"):
                link.request(Op.SET_CLOCK, U32.pack(0xFFFF_FFF0))
            link.request(Op.SET_CLOCK, U32.pack(MAX_PUMP_CLOCK - 86_400))
            for _ in range(5):
                link.request(Op.SNAPSHOT)
        finally:
            port.close()
        with SerialProgrammer.from_url(url, link_timeout=0.5) as prog:
            log = read_log_bytes(prog.read_log_bytes(), "<pump-sim>")
            assert not log.damaged
        assert proc.poll() is None  # still serving
        rc, err = stop(proc)
    assert rc == 0 and "Traceback" not in err


# ----- item 12: no client holds up another -------------------------------------------------------

@contextlib.contextmanager
def serving_tcp(service: PumpService, **kwargs: Any) -> Iterator[tuple[str, TcpTransport]]:
    transport = TcpTransport("127.0.0.1", 0)
    stop_event = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            serve(service, transport, stop_event.is_set, 0.01, **kwargs)
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield transport.name, transport
    finally:
        stop_event.set()
        thread.join(5)
        transport.close()
    assert not thread.is_alive() and not crashed, crashed


def raw_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def timed_interrogation(url: str) -> float:
    t0 = time.monotonic()
    with SerialProgrammer(open_port(url), link_timeout=0.5) as prog:
        prog.read_log_bytes()
        assert prog.link.failures == 0
    return time.monotonic() - t0


def test_a_half_frame_does_not_block_another_client_and_idle_clients_are_closed():
    service = PumpService(fresh_pump(days=2))
    with serving_tcp(service, idle_timeout_s=1.0) as (url, _transport):
        stuck = raw_socket(url)
        stuck.sendall(encode_frame(1, Op.SESSION_START, U32.pack(0))[:5])  # half a frame, then nothing
        time.sleep(0.1)
        assert timed_interrogation(url) < 3.0  # served at once, beside the stuck client
        stuck.settimeout(5)
        t0 = time.monotonic()
        assert stuck.recv(100) == b""  # the idle client is hung up on ...
        assert 0.3 < time.monotonic() - t0 < 4.0  # ... after the idle timeout
        stuck.close()


def test_a_client_that_never_reads_cannot_starve_the_others():
    image = bytes(range(256)) * 256  # a 64 KiB "log" to read in 4 KiB blocks
    service = PumpService(replay=image)
    with serving_tcp(service) as (url, transport):
        greedy = raw_socket(url)
        greedy.sendall(encode_frame(1, Op.SESSION_START, U32.pack(0)) + encode_frame(2, Op.SNAPSHOT))
        flood = b"".join(encode_frame(3 + i, Op.READ_BLOCK, READ_BLOCK.pack(1, (i * 4096) % 65536, 4096))
                         for i in range(4000))  # 16 MB of replies it will never read
        sender = threading.Thread(target=_send_all, args=(greedy, flood), daemon=True)
        sender.start()
        times = [timed_interrogation(url) for _ in range(3)]
        assert max(times) < 5.0, times  # the others are served throughout
        deadline = time.monotonic() + 10
        while len(transport.clients) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not transport.clients  # the greedy client was dropped
        greedy.close()
        sender.join(5)


def _send_all(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def test_beyond_the_client_limit_the_longest_idle_one_makes_room():
    service = PumpService(fresh_pump())
    with serving_tcp(service, max_clients=3) as (url, _transport):
        idle = [raw_socket(url) for _ in range(3)]
        time.sleep(0.2)
        assert timed_interrogation(url) < 3.0
        idle[0].settimeout(5)
        assert idle[0].recv(10) == b""  # the first (longest idle) was closed to make room
        for s in idle:
            s.close()


def test_a_pty_client_that_never_reads_does_not_stall_the_server():
    service = PumpService(replay=bytes(range(256)) * 256)
    transport = PtyTransport()
    stop_event = threading.Event()
    thread = threading.Thread(target=serve, args=(service, transport, stop_event.is_set, 0.01), daemon=True)
    thread.start()
    try:
        fd = os.open(transport.name, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"".join(encode_frame(10 + i, Op.SNAPSHOT) for i in range(2000)))  # never read
            time.sleep(3.0)  # longer than the write timeout: the backlog is dropped
            assert thread.is_alive()
            os.read(fd, 1 << 20)  # forget what arrived meanwhile
            with SerialProgrammer(open_port(transport.name), link_timeout=0.5) as prog:
                assert len(prog.read_log_bytes()) == 65536
        finally:
            os.close(fd)
    finally:
        stop_event.set()
        thread.join(5)
        transport.close()
    assert not thread.is_alive()
