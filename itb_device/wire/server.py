"""The pump's end of the link: a simulated pump (or a saved log) served over a
pseudo-terminal or a TCP socket on loopback, as ``itb pump-sim`` runs it."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import time
import tty
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from parsers.writer import encode_log

from ..errors import PumpRefused
from ..sim.pump import SimulatedPump
from .frames import MAX_PAYLOAD, Frame, FrameDecoder, encode_frame
from .messages import (
    BOLUS_REQ,
    BOLUS_RESP,
    READ_BLOCK,
    REFILL_REQ,
    REFILL_RESP,
    RESPONSE,
    SESSION,
    SNAPSHOT,
    U32,
    ErrorCode,
    Op,
    decode_prescription,
    ml,
    nl,
)

log = logging.getLogger("itb_device.server")
KIND_NAMES = {1: "clinician", 2: "priming", 3: "bridge"}
CACHE_SIZE = 64


class Refusal(Exception):
    """A request answered with an ERROR frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class PumpService:
    """Answers requests for one pump: a live :class:`SimulatedPump`, or a saved log's bytes
    (read-only).  Repeated sequence numbers are answered from a cache, so a retried command
    is never carried out twice.

    Simulated time: with ``speed`` it runs that many times faster than ``clock`` (wall
    time); with ``tick`` it advances that many seconds after each command carried out.
    """

    def __init__(
        self,
        pump: SimulatedPump | None = None,
        replay: bytes | None = None,
        *,
        speed: float | None = None,
        tick: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (pump is None) == (replay is None):
            raise ValueError("serve either a pump or a replayed log")
        self.pump = pump
        self.replay = replay
        self.speed = speed
        self.tick = tick
        self.clock = clock
        self._wall0 = clock()
        self._sim0 = pump.now if pump else 0
        self._cache: OrderedDict[tuple[int, int, bytes], bytes] = OrderedDict()
        self._snapshots: OrderedDict[int, bytes] = OrderedDict()
        self._snap_id = 0
        self.executed = 0

    def handle(self, frame: Frame) -> bytes:
        """The encoded response frame for one request frame."""
        key = (frame.seq, frame.opcode, frame.payload)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if frame.opcode == Op.SESSION_START:
            self._cache.clear()  # a new session: earlier sequence numbers mean nothing now
        self._advance_clock()
        try:
            payload = self._dispatch(frame)
            reply = encode_frame(frame.seq, frame.opcode | RESPONSE, payload)
            self.executed += 1
        except Refusal as exc:
            reply = encode_frame(frame.seq, Op.ERROR | RESPONSE, bytes([exc.code]) + str(exc).encode()[:512])
        self._cache[key] = reply
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        if self.pump is not None and self.tick:
            self.pump.advance_to(self.pump.now + int(self.tick))
        return reply

    def _advance_clock(self) -> None:
        if self.pump is not None and self.speed:
            target = self._sim0 + int((self.clock() - self._wall0) * self.speed)
            if target > self.pump.now:
                self.pump.advance_to(target)

    def _image_bytes(self) -> bytes:
        return self.replay if self.replay is not None else encode_log(self.pump.log_image())

    def _dispatch(self, f: Frame) -> bytes:
        op, p = f.opcode, f.payload
        try:
            if op == Op.SESSION_START:
                if self.pump is not None and not self.pump.in_telemetry:
                    self.pump.telemetry_start()
                return self._session()
            if op == Op.SNAPSHOT:
                data = self._image_bytes()
                self._snap_id = (self._snap_id + 1) & 0xFFFFFFFF
                self._snapshots[self._snap_id] = data
                while len(self._snapshots) > 4:
                    self._snapshots.popitem(last=False)
                return SNAPSHOT.pack(self._snap_id, len(data), int.from_bytes(data[14:16], "little"))
            if op == Op.READ_BLOCK:
                snap, offset, length = READ_BLOCK.unpack(p)
                if length > MAX_PAYLOAD:
                    raise Refusal(
                        ErrorCode.BAD_REQUEST, f"a block is at most {MAX_PAYLOAD} bytes, not {length}"
                    )
                data = self._snapshots.get(snap)
                if data is None:
                    raise Refusal(ErrorCode.STALE_SNAPSHOT, f"log snapshot {snap} is no longer held")
                return data[offset : offset + length]
            if op == Op.SESSION_END:
                if self.pump is not None and self.pump.in_telemetry:
                    self.pump.telemetry_end()
                return b""
            if op in (Op.PROGRAM, Op.REFILL, Op.BOLUS, Op.SET_CLOCK):
                return self._command(op, p)
        except PumpRefused as exc:
            raise Refusal(ErrorCode.REFUSED, str(exc)) from exc
        except (ValueError, IndexError, struct.error) as exc:  # struct.error is not a ValueError
            raise Refusal(ErrorCode.BAD_REQUEST, f"malformed {Op(op).name} request: {exc}") from exc
        raise Refusal(ErrorCode.BAD_REQUEST, f"unknown opcode {op:#04x}")

    def _session(self) -> bytes:
        if self.replay is not None:
            return SESSION.pack(int.from_bytes(self.replay[60:64], "little"), self.replay[18])
        return SESSION.pack(max(self.pump.pump_clock(), 0), self.pump.cfg.model_ml)

    def _command(self, op: int, p: bytes) -> bytes:
        pump = self.pump
        if pump is None:
            raise Refusal(
                ErrorCode.READ_ONLY, "this pump replays a saved interrogation and cannot be changed"
            )
        if op == Op.PROGRAM:
            rx, override, intended = decode_prescription(p)
            pump.program(rx, override=override, intended_daily_dose_mcg=intended)
            return b""
        if op == Op.REFILL:
            volume, conc, _flags = REFILL_REQ.unpack(p)
            expected, measured = pump.refill(ml(volume), conc / 1000)
            return REFILL_RESP.pack(nl(expected), nl(measured))
        if op == Op.BOLUS:
            kind, dose_ng, duration = BOLUS_REQ.unpack(p)
            if kind not in KIND_NAMES:
                raise Refusal(ErrorCode.BAD_REQUEST, f"unknown bolus kind {kind}")
            return BOLUS_RESP.pack(pump.start_bolus(KIND_NAMES[kind], dose_ng / 1000, duration))
        (clock,) = U32.unpack(p)
        pump.set_clock(clock)
        return b""


# ----- transports ------------------------------------------------------------------------------
class PtyTransport:
    """A pseudo-terminal: the server holds the master; clients open ``name`` (the slave)."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self._slave)

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 65536)
        except OSError:
            return b""

    def write(self, data: bytes, timeout: float = 1.0) -> None:
        """Write all of ``data``; if no client reads for ``timeout`` seconds the rest is
        dropped (a pump's telemetry does not wait for a programmer that went away)."""
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self.master], [], timeout)
            if not ready:
                log.warning("pty: nobody is reading; %d bytes dropped", len(view))
                return
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpTransport:
    """A TCP listener on loopback; one client at a time, the next accepted when it leaves."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the pump simulator listens on loopback only (127.0.0.1)")
        self.listener = socket.create_server((host, port))
        self.host, self.port = self.listener.getsockname()[:2]
        self.name = f"socket://{self.host}:{self.port}"
        self.conn: socket.socket | None = None

    def read(self, timeout: float) -> bytes:
        if self.conn is None:
            ready, _, _ = select.select([self.listener], [], [], timeout)
            if not ready:
                return b""
            self.conn, _ = self.listener.accept()
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        ready, _, _ = select.select([self.conn], [], [], timeout)
        if not ready:
            return b""
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        if not data:  # the client left
            self.conn.close()
            self.conn = None
        return data

    def write(self, data: bytes) -> None:
        if self.conn is not None:
            try:
                self.conn.sendall(data)
            except OSError:
                self.conn.close()
                self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def open_transport(listen: str) -> Any:
    """``pty`` or ``socket://127.0.0.1:PORT`` (the URL a client opens; ``tcp://`` is the same;
    port 0: any free)."""
    if listen == "pty":
        return PtyTransport()
    for prefix in ("socket://", "tcp://"):
        if listen.startswith(prefix):
            host, _, port = listen[len(prefix) :].rpartition(":")
            port = port or "0"
            if not port.isdigit() or int(port) > 65535:
                raise ValueError(f"--listen {listen!r}: the port must be a number from 0 to 65535")
            try:
                return TcpTransport(host or "127.0.0.1", int(port))
            except OSError as exc:
                raise ValueError(f"--listen {listen!r}: cannot listen there: {exc.strerror or exc}") from exc
    raise ValueError(
        f"--listen {listen!r}: use 'pty' or tcp://127.0.0.1:PORT (or socket://127.0.0.1:PORT, "
        "the same URL itb interrogate takes)"
    )


def serve(
    service: PumpService,
    transport: Any,
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.05,
) -> None:
    """Answer requests until ``should_stop()`` (or KeyboardInterrupt in the caller)."""
    decoder = FrameDecoder()
    while not should_stop():
        data = transport.read(poll_s)
        if not data:
            continue
        for frame in decoder.feed(data):
            transport.write(service.handle(frame))
