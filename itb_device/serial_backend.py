"""A programmer session over a serial link: anything ``serial.serial_for_url`` opens (a
device path, a pseudo-terminal, ``socket://host:port``, ``spy://...`` for a hex trace,
``loop://``), speaking the wire protocol of docs/wire-protocol.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import serial

from parsers import LogImage, Status, read_log_bytes
from parsers.format import HEADER_SIZE, STATUS_SIZE
from parsers.header import decode_status
from parsers.model import datetime_to_clock

from .errors import BolusOutcomeUnknown, LinkError, PumpRefused, TransientLinkError
from .prescription import Prescription
from .programmer import PumpProgrammer, RefillResult, log
from .retry import RetryPolicy
from .wire.capture import CapturePort
from .wire.link import Link, StaleSnapshot
from .wire.messages import (
    BOLUS_KEYED_REQ,
    BOLUS_KINDS,
    BOLUS_QUERY_RESP,
    BOLUS_RESP,
    READ_BLOCK,
    REFILL_REQ,
    REFILL_RESP,
    SESSION,
    SNAPSHOT,
    U32,
    Op,
    encode_prescription,
    ml,
    nl,
)

BLOCK_MIN, BLOCK_START, BLOCK_MAX = 32, 1024, 4096
MAX_BLOCK_FAILURES = 64  # consecutive failed block reads before the interrogation gives up
#: A READ_BLOCK request is sent once: a lost block is asked for again, smaller, with a new
#: sequence number (BLOCK_RETRY) rather than re-sent by the link.
READ_BLOCK_RETRY = RetryPolicy(1)
#: Blocks asked for in a row without an answer before the read ends (MAX_BLOCK_FAILURES + 1).
BLOCK_RETRY = RetryPolicy(MAX_BLOCK_FAILURES + 1)
#: The log snapshot: taken again when the pump dropped the one being read, 3 times at most.
SNAPSHOT_RETRY = RetryPolicy(3)
#: SESSION_END: 3 attempts; a session that cannot be ended cleanly is closed anyway.
SESSION_END_RETRY = RetryPolicy(3)


@dataclass(frozen=True)
class ReadProgress:
    """How far reading the log has got (passed to the ``progress`` callback after each block)."""

    done_bytes: int
    total_bytes: int
    page_size: int
    retries: int  # requests sent again so far in this session (lost or damaged frames)

    @property
    def pages_total(self) -> int:
        """History pages in the log (the header and status snapshot come first)."""
        return max(0, self.total_bytes - HEADER_SIZE - STATUS_SIZE) // max(1, self.page_size)

    @property
    def pages_done(self) -> int:
        """History pages read so far."""
        return max(0, self.done_bytes - HEADER_SIZE - STATUS_SIZE) // max(1, self.page_size)


class SerialProgrammer(PumpProgrammer):
    """Talks to a pump through a telemetry head on a serial port (real or simulated).

    ``link_timeout`` (seconds) is the programmer's ``timeout``: the wait for each answer
    (``Link.timeout``); ``link_retries`` the times the link re-sends a request's identical
    frame (``Link.retries``).  The retries of each layer: :mod:`itb_device.retry`."""

    def __init__(
        self,
        port: Any,
        *,
        link_timeout: float = 0.25,
        link_retries: int = 30,
        progress: Callable[[ReadProgress], None] | None = None,
        **kwargs: Any,
    ) -> None:
        if "timeout" in kwargs:
            raise TypeError("SerialProgrammer takes the wait for each answer as link_timeout=, not timeout=")
        super().__init__(timeout=link_timeout, **kwargs)
        self.progress = progress  # called after each block of the log read (itb interrogate shows it)
        self.link = Link(port, timeout=self.timeout, retries=link_retries)
        self.pump_clock, self.model_ml = SESSION.unpack(
            self.link.request(Op.SESSION_START, U32.pack(_utc_now()))
        )

    @classmethod
    def from_url(
        cls, url: str, *, baudrate: int = 115200, capture: str | Path | None = None, **kwargs: Any
    ) -> SerialProgrammer:
        """Open ``url`` with pyserial (8N1 at ``baudrate``); optionally capture the traffic."""
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.25)
        except (serial.SerialException, ValueError) as exc:
            raise LinkError(f"cannot open {url}: {exc}") from exc
        if capture is not None:
            port = CapturePort(port, capture)
        try:
            return cls(port, **kwargs)
        except BaseException:
            port.close()
            raise

    def read_log_bytes(self) -> bytes:
        """The pump's log exactly as it holds it (header, status, pages)."""
        return self._call("read log", self._read_log_bytes)

    def _read_log_bytes(self) -> bytes:
        """A new snapshot, read whole; taken again (:data:`SNAPSHOT_RETRY`) when the pump dropped
        it before it was read (another reader took several).  Only reads: safe to repeat."""

        def read() -> bytes:
            snap, total, page = SNAPSHOT.unpack(self.link.request(Op.SNAPSHOT))
            return self._read_snapshot(snap, 0, total, page)

        try:
            return SNAPSHOT_RETRY.call(read, retry_on=StaleSnapshot)
        except StaleSnapshot:
            pass
        raise LinkError("the pump kept dropping the log snapshot before it could be read")

    def _read_snapshot(self, snap: int, start: int, end: int, page_size: int | None = None) -> bytes:
        """Bytes [start, end) of a frozen log image, in blocks that shrink on errors and
        grow again on success (so a noisy link still gets through, slowly).  With
        ``page_size`` (a whole log), ``self.progress`` hears after each block.

        The link sends each READ_BLOCK once (:data:`READ_BLOCK_RETRY`): a failed block is asked
        for again, half the size, with a new sequence number, until :data:`BLOCK_RETRY` blocks in
        a row failed.  A :class:`StaleSnapshot` is not retried here: the caller takes a new one."""
        out = bytearray()
        total = end - start
        block, good, failures = BLOCK_START, 0, 0
        report = self.progress if page_size else None
        page = page_size or 0
        if report is not None:
            report(ReadProgress(0, total, page, self.link.failures))
        while len(out) < total:
            want = min(block, total - len(out))
            try:
                chunk = self.link.request(
                    Op.READ_BLOCK, READ_BLOCK.pack(snap, start + len(out), want), retry=READ_BLOCK_RETRY
                )
            except StaleSnapshot:
                raise
            except TransientLinkError:
                failures += 1
                if report is not None:
                    report(ReadProgress(len(out), total, page, self.link.failures))
                if BLOCK_RETRY.exhausted(failures):
                    raise LinkError(
                        f"timeout: reading the log stopped at byte {start + len(out)} of {end} after "
                        f"{failures} failed blocks; check the telemetry head and the link"
                    ) from None
                block, good = max(BLOCK_MIN, block // 2), 0
                BLOCK_RETRY.pause()
                continue
            if len(chunk) != want:
                raise LinkError(
                    f"the pump sent {len(chunk)} bytes for a {want}-byte block at {start + len(out)}"
                )
            out += chunk
            if report is not None:
                report(ReadProgress(len(out), total, page, self.link.failures))
            failures = 0
            good += 1
            if good >= 4:
                block, good = min(BLOCK_MAX, block * 2), 0
        return bytes(out)

    def _read_log(self) -> LogImage:
        return read_log_bytes(self._read_log_bytes(), "<pump log>").to_image()

    def _interrogate(self) -> Status:
        snap, _total, _page = SNAPSHOT.unpack(self.link.request(Op.SNAPSHOT))
        status, ok = decode_status(self._read_snapshot(snap, HEADER_SIZE, HEADER_SIZE + STATUS_SIZE))
        if not ok:
            raise LinkError("the status snapshot failed its CRC")
        return status

    def _program(self, rx: Prescription, override: bool, **opts: Any) -> None:
        """PROGRAM: a write, re-sent only by the link as the identical frame (the pump's cache
        answers a repeat); after no answer it is a :class:`LinkError`, never sent again."""
        note = None
        if override and "override_reason" in opts:
            note = (opts["override_reason"], opts["operator_id"])
        self.link.request(
            Op.PROGRAM, encode_prescription(rx, override, opts.get("intended_daily_dose_mcg"), note)
        )

    def _refill(self, volume_ml: float, concentration_mcg_ml: float, **opts: Any) -> RefillResult:
        """REFILL: a write, re-sent only by the link as the identical frame (as :meth:`_program`)."""
        reply = self.link.request(
            Op.REFILL, REFILL_REQ.pack(nl(volume_ml), round(concentration_mcg_ml * 1000), 0)
        )
        expected, measured = REFILL_RESP.unpack(reply)
        return RefillResult(ml(expected), ml(measured), volume_ml, concentration_mcg_ml)

    def _bolus(self, kind: str, dose_mcg: float, duration_s: int, key: int) -> int:
        """BOLUS with its idempotency key: re-sent only by the link as the identical frame.
        After no answer it is never sent again: the pump is asked what became of the key
        (BOLUS_QUERY, which never gives a bolus), and only then is anything reported."""
        payload = BOLUS_KEYED_REQ.pack(BOLUS_KINDS[kind], round(dose_mcg * 1000), duration_s, key)
        try:
            reply = self.link.request(Op.BOLUS, payload)
        except LinkError as exc:
            # Usually the request arrived and only the answer was lost: ask the pump what became
            # of the key before reporting anything (the query never gives a bolus).
            try:
                state, bolus_id = self._bolus_state(key)
            except (LinkError, PumpRefused) as query_exc:
                raise BolusOutcomeUnknown(
                    f"{exc}; asking the pump afterwards failed too ({query_exc}): the OUTCOME IS UNKNOWN, "
                    f"the pump may have started the bolus (key {key:#010x}). Do not give it again before "
                    "you know: the same bolus() call again on this programmer, or key=, asks the pump "
                    "first and never gives it twice", key) from exc
            if state:
                log.warning("BOLUS: the answer was lost, but the pump confirms it started bolus %d "
                            "(key %#010x)", bolus_id, key)
                return bolus_id
            raise LinkError(f"{exc}; the pump confirms it did NOT start the bolus (key {key:#010x}), so "
                            "asking for it again is safe") from exc
        return BOLUS_RESP.unpack(reply)[0]

    def _bolus_state(self, key: int) -> tuple[int, int]:
        state, bolus_id = BOLUS_QUERY_RESP.unpack(self.link.request(Op.BOLUS_QUERY, U32.pack(key)))
        return state, bolus_id

    def _set_clock(self, clock: int | None) -> None:
        """SET_CLOCK: a write, re-sent only by the link as the identical frame (as :meth:`_program`)."""
        self.link.request(Op.SET_CLOCK, U32.pack(_utc_now() if clock is None else clock))

    def _close(self) -> None:
        try:
            self.link.request(Op.SESSION_END, retry=SESSION_END_RETRY)
        except (LinkError, TransientLinkError):
            pass
        finally:
            self.link.close()


def _utc_now() -> int:
    """The programmer's clock: UTC now, in ITB-epoch seconds."""
    return datetime_to_clock(datetime.now(UTC))
