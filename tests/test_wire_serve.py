"""The pump's end of the link: serve(), PtyTransport and TcpTransport over real pseudo-terminals
and loopback sockets.  Also home of :func:`serving`, the helper the other wire tests use to run a
:class:`PumpService` in a background thread."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import serial

from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.wire.faults import FaultSpec, FaultyTransport
from itb_device.wire.link import Link
from itb_device.wire.messages import READ_BLOCK, SESSION, SNAPSHOT, U32, Op
from itb_device.wire.server import PtyTransport, PumpService, TcpTransport, open_transport, serve
from parsers.writer import encode_log

JOIN_S = 3.0
START = 836_000_000  # 2026-06-28T22:13:20Z (ITB-epoch seconds), as `itb pump-sim` starts a fresh pump


@dataclass
class Server:
    """A running server: its client URL, transport, service and thread."""

    url: str
    transport: Any
    service: PumpService
    thread: threading.Thread
    crashed: list[BaseException] = field(default_factory=list)


def fresh_pump(days: float = 0.0, seed: int = 1) -> SimulatedPump:
    """A 20 mL pump, full, nothing programmed, advanced ``days`` (about 1 KB of log a day)."""
    pump = SimulatedPump(PumpConfig(), start=START, seed=seed, reservoir_ml=20.0)
    if days:
        pump.advance_to(pump.now + int(days * 86_400))
    return pump


def session_log(days: float = 0.0, seed: int = 1) -> bytes:
    """The log a programmer reads from ``fresh_pump(days, seed)``: at SESSION_START the pump
    logs TELEMETRY_START, and time stands still while it is served (no ``speed`` or ``tick``)."""
    twin = fresh_pump(days, seed)
    twin.telemetry_start()
    return encode_log(twin.log_image())


def _drain_pty(path: str, thread: threading.Thread) -> None:
    """Read a pty slave until ``thread`` ends (unblocks a server stuck writing to a full pty)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        deadline = time.monotonic() + JOIN_S
        while thread.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                os.read(fd, 65536)
            thread.join(0.01)
    finally:
        os.close(fd)


@contextlib.contextmanager
def serving(
    service: PumpService, kind: str = "pty", faults: FaultSpec | None = None, *, raise_crash: bool = True
) -> Iterator[Server]:
    """Run ``serve(service, transport)`` in a daemon thread for the duration of the block.

    ``kind`` is ``"pty"`` or ``"tcp"`` (127.0.0.1, any free port); ``faults`` wraps the
    transport in a :class:`FaultyTransport`.  On exit the loop is stopped via ``should_stop``
    and joined with a timeout; an exception that ended the loop is re-raised (``raise_crash``).
    """
    inner = PtyTransport() if kind == "pty" else TcpTransport("127.0.0.1", 0)
    transport = inner if faults is None else FaultyTransport(inner, faults)
    stop = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            serve(service, transport, stop.is_set, poll_s=0.01)
        except BaseException as exc:  # reported to the test, not to threading.excepthook
            crashed.append(exc)

    thread = threading.Thread(target=run, name=f"pump-server-{kind}", daemon=True)
    thread.start()
    server = Server(transport.name, transport, service, thread, crashed)
    try:
        yield server
    finally:
        stop.set()
        thread.join(JOIN_S)
        if thread.is_alive() and kind == "pty":
            _drain_pty(inner.name, thread)
        stuck = thread.is_alive()
        if not stuck:
            transport.close()
    assert not stuck, "the server loop did not stop when asked"
    if crashed and raise_crash:
        raise AssertionError(f"the server loop died: {crashed[0]!r}") from crashed[0]


def open_port(url: str, timeout: float = 0.25) -> serial.SerialBase:
    """Open ``url`` the way the programmer does: pyserial, 115200 8N1."""
    return serial.serial_for_url(url, baudrate=115200, timeout=timeout)


# ----- the loop and its transports --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_serve_stops_promptly_when_asked(kind):
    service = PumpService(fresh_pump())
    t0 = time.monotonic()
    with serving(service, kind) as srv:
        assert srv.thread.is_alive()
        port = open_port(srv.url)
        try:
            link = Link(port, timeout=0.5)
            clock, model = SESSION.unpack(link.request(Op.SESSION_START, U32.pack(0)))
            assert (clock, model) == (service.pump.pump_clock(), 20)
        finally:
            port.close()
        t_stop = time.monotonic()
    assert not srv.thread.is_alive()
    assert time.monotonic() - t_stop < 10.0  # stops promptly (bounded, not a speed test)
    assert time.monotonic() - t0 < 30.0


def test_pty_passes_every_byte_value_unchanged():
    """The pty is raw both ways: no echo, no CR/LF translation, no XON/XOFF or ^C handling."""
    image = bytes(range(256)) * 8 + bytes(range(255, -1, -1)) * 8  # 4 KiB with every value
    service = PumpService(replay=image)
    with serving(service, "pty") as srv:
        port = open_port(srv.url)
        try:
            link = Link(port, timeout=0.5, retries=2)
            link.request(Op.SESSION_START, U32.pack(0))
            snap, total, page = SNAPSHOT.unpack(link.request(Op.SNAPSHOT))
            assert (total, page) == (len(image), int.from_bytes(image[14:16], "little"))
            got = b"".join(
                link.request(Op.READ_BLOCK, READ_BLOCK.pack(snap, off, 1024)) for off in range(0, total, 1024)
            )
            assert got == image
            assert link.failures == 0
        finally:
            port.close()


def test_tcp_serves_one_client_after_another():
    service = PumpService(fresh_pump())
    with serving(service, "tcp") as srv:
        assert srv.url.startswith("socket://127.0.0.1:")
        for _ in range(3):
            port = open_port(srv.url)
            try:
                link = Link(port, timeout=0.5, retries=4)
                link.request(Op.SESSION_START, U32.pack(0))
                link.request(Op.SESSION_END)
            finally:
                port.close()
    assert service.pump.session_id == 3
    assert not service.pump.in_telemetry


def test_open_transport_urls_and_loopback_only():
    for url in ("pty", "tcp://127.0.0.1:0", "socket://127.0.0.1:0", "tcp://:0"):
        tr = open_transport(url)
        try:
            if url == "pty":
                assert isinstance(tr, PtyTransport)
                assert os.path.exists(tr.name)
            else:
                assert isinstance(tr, TcpTransport)
                assert tr.host == "127.0.0.1"
                assert tr.port > 0
                assert tr.name == f"socket://127.0.0.1:{tr.port}"
        finally:
            tr.close()
    with pytest.raises(ValueError, match="loopback"):
        open_transport("tcp://0.0.0.0:0")
    with pytest.raises(ValueError, match="use 'pty'"):
        open_transport("udp://127.0.0.1:0")


def test_fault_spec_parse():
    spec = FaultSpec.parse("drop=0.01,corrupt=0.02,split=0.3,delay=0.002,seed=7")
    assert spec == FaultSpec(drop=0.01, corrupt=0.02, split=0.3, delay_s=0.002, seed=7)
    with pytest.raises(ValueError, match="key=value"):
        FaultSpec.parse("loss=0.1")
