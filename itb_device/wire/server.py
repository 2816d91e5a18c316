"""The pump's end of the link: a simulated pump (or a saved log) served over a
pseudo-terminal or a TCP socket on loopback, as ``itb pump-sim`` runs it.

The loop (:func:`serve`) never blocks on one client: TCP serves several clients at once, each
with its own frame decoder, response cache and outgoing buffer; a client that sends nothing for
``idle_timeout_s`` is disconnected, one that does not take its replies (``WRITE_TIMEOUT_S``,
``MAX_PENDING``) is dropped, and a request that fails inside the pump is answered with an
ERROR frame (``FAULT``) instead of ending the server."""

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

from parsers import format as fmt
from parsers.crc import crc32c
from parsers.writer import encode_log

from ..errors import PumpRefused
from ..sim.pump import U32_MAX, SimulatedPump
from .frames import MAX_PAYLOAD, Frame, FrameDecoder, encode_frame
from .messages import (
    BOLUS_KEYED_REQ,
    BOLUS_KIND_NAMES,
    BOLUS_QUERY_RESP,
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
    PageMap,
    decode_prescription,
    encode_page_map,
    ml,
    nl,
)

log = logging.getLogger("itb_device.server")
CACHE_SIZE = 64
IDLE_TIMEOUT_S = 120.0  # a TCP client that sends nothing for this long is disconnected
WRITE_TIMEOUT_S = 2.0  # a client that takes none of its pending replies for this long is dropped
MAX_PENDING = 256 * 1024  # ... or that lets more reply bytes than this pile up
MAX_CLIENTS = 8  # TCP clients served at once; a new one displaces the longest idle


class Refusal(Exception):
    """A request answered with an ERROR frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ClientState:
    """What the pump keeps per programmer connection: its response cache (sequence numbers are
    the client's own) and whether it opened a session."""

    def __init__(self) -> None:
        self.cache: OrderedDict[tuple[int, int, bytes], bytes] = OrderedDict()
        self.in_session = False


class PumpService:
    """Answers requests for one pump: a live :class:`SimulatedPump`, or a saved log's bytes
    (read-only).  Repeated sequence numbers are answered from a cache (one per client), so a
    retried command is never carried out twice.  :meth:`handle` never raises: a request that
    fails inside the pump is answered with error ``FAULT``.

    Simulated time: with ``speed`` it runs that many times faster than ``clock`` (wall
    time); with ``tick`` it advances that many seconds after each command carried out.

    ``page_map=False`` serves as a pump from before PAGE_MAP (docs/wire-protocol.md section 4):
    it answers that request as an unknown opcode, so a programmer reads its log whole.
    """

    def __init__(
        self,
        pump: SimulatedPump | None = None,
        replay: bytes | None = None,
        *,
        speed: float | None = None,
        tick: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        page_map: bool = True,
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
        self._default = ClientState()
        self._in_session: set[int] = set()  # id() of the clients in a session
        self.page_map = page_map
        self._snapshots: OrderedDict[int, bytes] = OrderedDict()
        self._maps: dict[int, bytes] = {}  # PAGE_MAP answers of held snapshots, made when first asked
        self._snap_id = 0
        self.executed = 0
        self.faults = 0

    def new_client(self) -> ClientState:
        """The state of a new connection."""
        return ClientState()

    def disconnect(self, client: ClientState) -> None:
        """A connection went away (its session, if any, is forgotten; the pump's telemetry
        state is left as it is, as when a telemetry head is lifted off)."""
        self._in_session.discard(id(client))

    def handle(self, frame: Frame, client: ClientState | None = None) -> bytes:
        """The encoded response frame for one request frame from ``client`` (default: the one
        client of a single-channel transport)."""
        client = client if client is not None else self._default
        key = (frame.seq, frame.opcode, frame.payload)
        cached = client.cache.get(key)
        if cached is not None:
            return cached
        if frame.opcode == Op.SESSION_START:
            client.cache.clear()  # a new session: earlier sequence numbers mean nothing now
        try:
            self._advance_clock()
            payload = self._dispatch(frame, client)
            reply = encode_frame(frame.seq, frame.opcode | RESPONSE, payload)
            self.executed += 1
        except Refusal as exc:
            reply = _error_frame(frame.seq, exc.code, str(exc))
        except Exception as exc:  # one request must never end the server
            self.faults += 1
            log.exception("request %#04x seq %d failed inside the pump", frame.opcode, frame.seq)
            reply = _error_frame(frame.seq, ErrorCode.FAULT,
                                 f"the pump failed handling the request: {type(exc).__name__}: {exc}")
        client.cache[key] = reply
        while len(client.cache) > CACHE_SIZE:
            client.cache.popitem(last=False)
        if self.pump is not None and self.tick:
            try:
                self.pump.advance_to(self.pump.now + int(self.tick))
            except Exception:
                self.faults += 1
                log.exception("the simulated pump failed advancing its time")
        return reply

    def _advance_clock(self) -> None:
        if self.pump is not None and self.speed:
            target = self._sim0 + int((self.clock() - self._wall0) * self.speed)
            if target > self.pump.now:
                self.pump.advance_to(target)

    def _image_bytes(self) -> bytes:
        if self.replay is not None:
            return self.replay
        assert self.pump is not None  # __init__: a pump or a replayed log, never neither
        return encode_log(self.pump.log_image())

    def _dispatch(self, f: Frame, client: ClientState) -> bytes:
        op, p = f.opcode, f.payload
        try:
            if op == Op.SESSION_START:
                client.in_session = True
                self._in_session.add(id(client))
                if self.pump is not None and not self.pump.in_telemetry:
                    self.pump.telemetry_start()
                return self._session()
            if op == Op.SNAPSHOT:
                data = self._image_bytes()
                self._snap_id = (self._snap_id + 1) & 0xFFFFFFFF
                self._snapshots[self._snap_id] = data
                while len(self._snapshots) > 4:
                    gone, _ = self._snapshots.popitem(last=False)
                    self._maps.pop(gone, None)
                return SNAPSHOT.pack(self._snap_id, len(data), int.from_bytes(data[14:16], "little"))
            if op == Op.READ_BLOCK:
                snap, offset, length = READ_BLOCK.unpack(p)
                if length > MAX_PAYLOAD:
                    raise Refusal(
                        ErrorCode.BAD_REQUEST, f"a block is at most {MAX_PAYLOAD} bytes, not {length}"
                    )
                held = self._snapshots.get(snap)
                if held is None:
                    raise Refusal(ErrorCode.STALE_SNAPSHOT, f"log snapshot {snap} is no longer held")
                return held[offset : offset + length]
            if op == Op.PAGE_MAP and self.page_map:
                (snap,) = U32.unpack(p)
                held = self._snapshots.get(snap)
                if held is None:
                    raise Refusal(ErrorCode.STALE_SNAPSHOT, f"log snapshot {snap} is no longer held")
                if snap not in self._maps:
                    try:
                        self._maps[snap] = encode_page_map(page_map_of(held))
                    except ValueError as exc:  # more runs than one answer holds
                        raise Refusal(ErrorCode.REFUSED, str(exc)) from None
                return self._maps[snap]
            if op == Op.SESSION_END:
                client.in_session = False
                self._in_session.discard(id(client))
                if self.pump is not None and self.pump.in_telemetry and not self._in_session:
                    self.pump.telemetry_end()
                return b""
            if op in (Op.PROGRAM, Op.REFILL, Op.BOLUS, Op.SET_CLOCK, Op.BOLUS_QUERY):
                return self._command(op, p)
        except PumpRefused as exc:
            raise Refusal(ErrorCode.REFUSED, str(exc)) from exc
        except (ValueError, IndexError, struct.error) as exc:  # struct.error is not a ValueError
            raise Refusal(ErrorCode.BAD_REQUEST, f"malformed {Op(op).name} request: {exc}") from exc
        raise Refusal(ErrorCode.BAD_REQUEST, f"unknown opcode {op:#04x}")

    def _session(self) -> bytes:
        if self.replay is not None:
            return SESSION.pack(int.from_bytes(self.replay[60:64], "little"), self.replay[18])
        assert self.pump is not None  # __init__: a pump or a replayed log, never neither
        return SESSION.pack(min(max(self.pump.pump_clock(), 0), U32_MAX), self.pump.cfg.model_ml)

    def _command(self, op: int, p: bytes) -> bytes:
        pump = self.pump
        if pump is None:
            raise Refusal(
                ErrorCode.READ_ONLY, "this pump replays a saved interrogation and cannot be changed"
            )
        if op == Op.PROGRAM:
            rx, override, intended, note = decode_prescription(p)
            pump.program(rx, override=override, intended_daily_dose_mcg=intended,
                         override_reason=note[0] if note else None, operator_id=note[1] if note else None)
            return b""
        if op == Op.REFILL:
            volume, conc, _flags = REFILL_REQ.unpack(p)
            expected, measured = pump.refill(ml(volume), conc / 1000)
            return REFILL_RESP.pack(nl(expected), nl(measured))
        if op == Op.BOLUS:
            if len(p) == BOLUS_KEYED_REQ.size:
                kind, dose_ng, duration, key = BOLUS_KEYED_REQ.unpack(p)
                if key == 0:
                    raise Refusal(ErrorCode.BAD_REQUEST, "a bolus idempotency key is never 0")
            else:
                (kind, dose_ng, duration), key = BOLUS_REQ.unpack(p), None
            if kind not in BOLUS_KIND_NAMES:
                raise Refusal(ErrorCode.BAD_REQUEST, f"unknown bolus kind {kind}")
            return BOLUS_RESP.pack(
                pump.start_bolus(BOLUS_KIND_NAMES[kind], dose_ng / 1000, duration, key=key))
        if op == Op.BOLUS_QUERY:
            (key,) = U32.unpack(p)
            return BOLUS_QUERY_RESP.pack(*pump.bolus_by_key(key))
        (clock,) = U32.unpack(p)
        pump.set_clock(clock)
        return b""


def page_map_of(image: bytes) -> PageMap:
    """Where each page of a log image is, by sequence number (the PAGE_MAP answer).

    A place holds a page one can ask for by number when it carries the page marker and its CRC
    is good and no place before it holds the same sequence number (as the reader keeps the first
    copy, docs/log-format.md 5.3); anything else (an erased slot, a damaged page, a second copy)
    is a place without a page.  The page size is the header's (bytes 14-15)."""
    page_size = int.from_bytes(image[14:16], "little") if len(image) >= 16 else 0
    start = fmt.HEADER_SIZE + fmt.STATUS_SIZE
    if page_size <= fmt.PAGE_HEADER_SIZE + fmt.PAGE_TRAILER_SIZE or len(image) < start:
        return PageMap(crc32c(image), 0, ())
    view = memoryview(image)
    seqs: list[int | None] = []
    seen: set[int] = set()
    for off in range(start, len(image) - page_size + 1, page_size):
        page = view[off : off + page_size]
        seq = int.from_bytes(page[8:12], "little")
        good = (
            int.from_bytes(page[0:2], "little") == fmt.PAGE_SYNC
            and crc32c(page[:-4]) == int.from_bytes(page[-4:], "little")
            and seq not in seen
        )
        if good:
            seen.add(seq)
        seqs.append(seq if good else None)
    return PageMap.of_places(crc32c(image), seqs)


def _error_frame(seq: int, code: int, message: str) -> bytes:
    return encode_frame(seq, Op.ERROR | RESPONSE, bytes([code]) + message.encode()[:512])


# ----- transports ------------------------------------------------------------------------------
# A transport's poll(timeout) returns [(client, data)]: data is the bytes that client sent, b""
# for a client that just connected, None for one that went away; send(client, data) queues a
# reply without ever blocking; close_client(client) hangs up (a pty only forgets its backlog).


class _Outbox:
    """Reply bytes a client has not taken yet, and since when it has taken none."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.stuck_since: float | None = None

    def wrote(self, n: int) -> None:
        del self.data[:n]
        self.stuck_since = None if not self.data else time.monotonic()

    def stuck(self) -> bool:
        if not self.data:
            return False
        if self.stuck_since is None:
            self.stuck_since = time.monotonic()
        return len(self.data) > MAX_PENDING or time.monotonic() - self.stuck_since > WRITE_TIMEOUT_S


class PtyTransport:
    """A pseudo-terminal: the server holds the master; clients open ``name`` (the slave).  One
    channel, so one client: replies nobody reads are dropped after ``WRITE_TIMEOUT_S`` (a
    pump's telemetry does not wait for a programmer that went away)."""

    single_channel = True
    CLIENT = "pty"

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self._slave)
        self._out = _Outbox()

    def poll(self, timeout: float) -> list[tuple[Any, bytes | None]]:
        wlist = [self.master] if self._out.data else []
        ready, writable, _ = select.select([self.master], wlist, [], timeout)
        if writable:
            self._flush()
        self._check_stuck()
        if not ready:
            return []
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return []
        return [(self.CLIENT, data)] if data else []

    def send(self, client: Any, data: bytes) -> None:
        self._out.data += data
        self._flush()
        self._check_stuck()

    def _flush(self) -> None:
        while self._out.data:
            try:
                n = os.write(self.master, self._out.data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._out = _Outbox()
                return
            self._out.wrote(n)

    def _check_stuck(self) -> None:
        if self._out.stuck():
            log.warning("pty: nobody is reading; %d bytes dropped", len(self._out.data))
            self._out = _Outbox()

    def close_client(self, client: Any) -> None:
        self._out = _Outbox()

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpTransport:
    """A TCP listener on loopback serving several clients at once (non-blocking sockets)."""

    single_channel = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the pump simulator listens on loopback only (127.0.0.1)")
        self.listener = socket.create_server((host, port))
        self.listener.setblocking(False)
        self.host, self.port = self.listener.getsockname()[:2]
        self.name = f"socket://{self.host}:{self.port}"
        self.clients: dict[socket.socket, _Outbox] = {}
        self._gone: list[socket.socket] = []  # dropped while sending: reported by the next poll

    def poll(self, timeout: float) -> list[tuple[Any, bytes | None]]:
        events: list[tuple[Any, bytes | None]] = [(c, None) for c in self._gone]
        self._gone.clear()
        wlist = [c for c, box in self.clients.items() if box.data]
        wait = 0 if events else timeout
        ready, writable, _ = select.select([self.listener, *self.clients], wlist, [], wait)
        for c in writable:
            self._flush(c)
        for c in ready:
            if c is self.listener:
                events += self._accept()
                continue
            if c not in self.clients:
                continue
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                events.append((c, data))
            else:  # the client left
                self._drop(c)
                events.append((c, None))
        for c, box in list(self.clients.items()):
            if box.stuck():
                log.warning("%s: a client took none of %d reply bytes for %g s; disconnected", self.name,
                            len(box.data), WRITE_TIMEOUT_S)
                self._drop(c)
                events.append((c, None))
        events += [(c, None) for c in self._gone]
        self._gone.clear()
        return events

    def _accept(self) -> list[tuple[Any, bytes | None]]:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return []
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients[conn] = _Outbox()
        return [(conn, b"")]

    def send(self, client: Any, data: bytes) -> None:
        box = self.clients.get(client)
        if box is None:
            return
        box.data += data
        self._flush(client)
        if client in self.clients and len(box.data) > MAX_PENDING:
            log.warning("%s: a client let %d reply bytes pile up; disconnected", self.name, len(box.data))
            self._drop(client)
            self._gone.append(client)

    def _flush(self, client: socket.socket) -> None:
        box = self.clients.get(client)
        while box is not None and box.data:
            try:
                n = client.send(box.data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(client)
                self._gone.append(client)
                return
            box.wrote(n)

    def _drop(self, client: socket.socket) -> None:
        self.clients.pop(client, None)
        with contextlib.suppress(OSError):
            client.close()

    def close_client(self, client: Any) -> None:
        self._drop(client)

    def close(self) -> None:
        for c in list(self.clients):
            self._drop(c)
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


class _Client:
    """A connection as the loop sees it: its state in the service, its decoder, last activity."""

    def __init__(self, state: ClientState, now: float) -> None:
        self.state = state
        self.decoder = FrameDecoder()
        self.last = now


def serve(
    service: PumpService,
    transport: Any,
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.05,
    *,
    idle_timeout_s: float | None = IDLE_TIMEOUT_S,
    max_clients: int = MAX_CLIENTS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Answer requests until ``should_stop()`` (or KeyboardInterrupt in the caller).

    Each client has its own decoder and response cache; none can hold up another.  A client
    that sends nothing for ``idle_timeout_s`` seconds is disconnected (a pty's half-received
    frame is forgotten); beyond ``max_clients`` the longest idle one is."""
    clients: dict[Any, _Client] = {}
    single = getattr(transport, "single_channel", False)

    def drop(conn: Any, why: str) -> None:
        c = clients.pop(conn, None)
        if c is not None:
            service.disconnect(c.state)
            transport.close_client(conn)
            log.info("client disconnected: %s", why)

    while not should_stop():
        events = transport.poll(poll_s)
        now = clock()
        for conn, data in events:
            c = clients.get(conn)
            if data is None:
                if c is not None:
                    clients.pop(conn)
                    service.disconnect(c.state)
                continue
            if c is None:
                c = clients[conn] = _Client(service.new_client() if not single else service._default, now)
                if len(clients) > max_clients:
                    oldest = min((k for k in clients if k is not conn), key=lambda k: clients[k].last)
                    drop(oldest, f"more than {max_clients} clients: the longest idle one makes room")
            if not data:
                continue
            c.last = now
            for frame in c.decoder.feed(data):
                transport.send(conn, service.handle(frame, c.state))
        if idle_timeout_s:
            for conn, c in list(clients.items()):
                if now - c.last > idle_timeout_s:
                    if single:
                        c.decoder = FrameDecoder()  # forget a half-received frame; keep the cache
                        c.last = now
                    else:
                        drop(conn, f"idle for {idle_timeout_s:g} s")
