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

from parsers import LogImage, RecordCode, Status, read_log_bytes
from parsers import format as fmt
from parsers.crc import crc32c
from parsers.format import HEADER_SIZE, STATUS_SIZE
from parsers.header import decode_header, decode_status
from parsers.model import datetime_to_clock

from .errors import BolusOutcomeUnknown, LinkError, PumpRefused, ReadOnlyPump, TransientLinkError
from .pagecache import (
    HEAD_AND_STATUS,
    CacheDamaged,
    LogRead,
    PageCache,
    intact_page,
    page_count_field,
    page_places,
    page_seq,
)
from .prescription import Prescription
from .programmer import PumpProgrammer, RefillResult, log
from .retry import RetryPolicy
from .wire.capture import CapturePort, ReplayPort
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
    decode_page_map,
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
#: Cached pages whose header (sequence number, record count, slot) and CRC are read again from
#: the pump before the cache is used: the newest and the oldest reused, and ones spread between.
VERIFY_PAGES = 4


class _ReadWhole(Exception):
    """An incremental read that cannot be trusted: the whole log is read (the message says why)."""


@dataclass(frozen=True)
class _Moved:
    """How one snapshot was read (the link's byte counts are added by the caller)."""

    data: bytes
    incremental: bool
    reason: str
    pages: int
    pages_read: int
    pages_reused: int = 0
    pages_verified: int = 0


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

    def read_log_cached(self, cache: PageCache | str | Path | None = None, *, full: bool = False) -> LogRead:
        """The log, byte for byte what :meth:`read_log_bytes` gives, reading only what the page
        ``cache`` (a :class:`~itb_device.pagecache.PageCache`, a folder, or None: the default
        folder) does not hold yet; the log read is kept there for next time.

        One snapshot: its header and status; the cached copy of this pump (by serial number),
        which must have its layout; PAGE_MAP (where each page is, and the whole log's CRC-32C);
        the header and CRC of up to :data:`VERIFY_PAGES` cached pages read again from the pump;
        then only the pages the cache lacks (new ones, the head page that was still filling, any
        place holding no intact page).  The pages are put together as the pump holds them and the
        result must match the pump's CRC-32C.  Anything else reads the whole log, and
        ``LogRead.reason`` says why: ``full``, a capture (replayable only whole), no cached copy,
        a damaged one, another pump or layout, a pump without PAGE_MAP (an older pump), a memory
        that was reset (its newest page older than the cache's), a ring that wrapped past the
        cache, a pump reset since (a ``pump_reset`` record in the new pages), or any mismatch.
        Only reads: the pump is never asked to change anything."""
        store = PageCache.at(cache)
        why = "a full read was asked for" if full else ""
        if not why and isinstance(self.link.port, (CapturePort, ReplayPort)):
            why = "a capture records a whole read, so that itb replay-capture can reproduce it"
        before = self.link.sent + self.link.received
        moved = self._call("read log", lambda: self._read_cached(store, why))
        wire = self.link.sent + self.link.received - before
        serial, kept, note = _serial_of(moved.data), None, ""
        try:
            kept = store.store(moved.data)
        except CacheDamaged as exc:
            note = f"no copy kept: {exc}"
        except OSError as exc:
            note = f"no copy kept: the page cache {store.folder} cannot be written ({exc.strerror or exc})"
            log.warning("%s", note)
        return LogRead(moved.data, moved.incremental, moved.reason, serial, moved.pages, moved.pages_read,
                       moved.pages_reused, moved.pages_verified, wire, kept, note)

    def _read_cached(self, store: PageCache, why_whole: str) -> _Moved:
        """One snapshot, read in part when the cache allows, else whole (taken again when the pump
        dropped it, as :meth:`_read_log_bytes`)."""

        def read() -> _Moved:
            snap, total, page_size = SNAPSHOT.unpack(self.link.request(Op.SNAPSHOT))
            reason = why_whole
            if not reason:
                try:
                    return self._read_incremental(snap, total, page_size, store)
                except _ReadWhole as exc:
                    reason = str(exc)
            log.info("reading the whole log: %s", reason)
            data = self._read_snapshot(snap, 0, total, page_size)
            places = len(page_places(data, page_size))
            return _Moved(data, False, reason, places, places)

        try:
            return SNAPSHOT_RETRY.call(read, retry_on=StaleSnapshot)
        except StaleSnapshot:
            pass
        raise LinkError("the pump kept dropping the log snapshot before it could be read")

    def _read_incremental(self, snap: int, total: int, page_size: int, store: PageCache) -> _Moved:
        """Snapshot ``snap`` put together from the cache and the pages it lacks; raises
        :class:`_ReadWhole` (why) whenever the result could differ from a whole read."""
        if total < HEAD_AND_STATUS or page_size not in fmt.ALLOWED_PAGE_SIZES:
            raise _ReadWhole(f"the pump's log ({total} bytes, pages of {page_size}) has no usual layout")
        head = self._read_snapshot(snap, 0, HEAD_AND_STATUS)
        if head[: len(fmt.MAGIC)] != fmt.MAGIC:
            raise _ReadWhole("the pump's log does not start with a log header")
        header, header_ok = decode_header(head[:HEADER_SIZE])
        if not header_ok:
            raise _ReadWhole("the pump's log header fails its CRC")
        if header.page_size != page_size:
            raise _ReadWhole(f"the pump's log header says pages of {header.page_size} bytes, its snapshot "
                             f"{page_size}")
        try:
            held = store.load(header.serial)
        except CacheDamaged as exc:
            raise _ReadWhole(f"{exc}; it is replaced") from None
        if held is None:
            raise _ReadWhole("no pages of this pump are cached yet")
        other = held.differs(header)
        if other:
            raise _ReadWhole(other)
        try:
            pmap = decode_page_map(self.link.request(Op.PAGE_MAP, U32.pack(snap)))
        except (PumpRefused, ReadOnlyPump) as exc:
            raise _ReadWhole(f"the pump gave no page map, as a pump from before PAGE_MAP (it answered: {exc})"
                             ) from None
        except ValueError as exc:
            raise _ReadWhole(f"the pump's page map is malformed ({exc})") from None
        tail = HEAD_AND_STATUS + pmap.places * page_size
        if tail > total:
            raise _ReadWhole("the pump's page map does not fit its log")
        seqs = pmap.place_seqs()
        where = {s: HEAD_AND_STATUS + k * page_size for k, s in enumerate(seqs) if s is not None}
        newest = max(where, default=None)
        status, status_ok = decode_status(head[HEADER_SIZE:])
        if status_ok and status.ring_recorded and status.ring_pages and status.ring_last_seq != newest:
            raise _ReadWhole(f"the status puts the newest page at seq {status.ring_last_seq}, "
                             f"the page map at seq {newest}")
        held_newest = held.newest_seq
        if held_newest is not None and (newest is None or newest < held_newest):
            raise _ReadWhole(f"the pump's newest page is seq {newest} but the cache holds seq {held_newest}: "
                             "its log memory was reset or replaced")
        reuse = sorted(s for s in where if s in held.full)
        if not reuse:
            oldest, held_full = min(where, default=None), max(held.full, default=None)
            if oldest is not None and held_full is not None and oldest > held_full:
                raise _ReadWhole(f"the ring wrapped past the cache: the pump's oldest page is seq {oldest}, "
                                 f"the newest cached one seq {held_full}")
            raise _ReadWhole("no cached page is still in the pump's memory")
        checked = _spread(reuse, VERIFY_PAGES)
        for s in checked:
            mine, off = held.pages[s], where[s]
            if self._read_snapshot(snap, off, off + fmt.PAGE_HEADER_SIZE) != mine[: fmt.PAGE_HEADER_SIZE]:
                raise _ReadWhole(f"page seq {s} on the pump is not the cached one (its header differs): "
                                 "another pump, or its memory was rewritten")
            end = off + page_size
            if self._read_snapshot(snap, end - fmt.PAGE_TRAILER_SIZE, end) != mine[-fmt.PAGE_TRAILER_SIZE:]:
                raise _ReadWhole(f"page seq {s} on the pump is not the cached one (its CRC differs): "
                                 "another pump, or its memory was rewritten")

        reused = set(reuse)
        todo = [k for k, s in enumerate(seqs) if s is None or s not in reused]
        ranges = _coalesce(todo, page_size)
        if tail < total:
            ranges.append((tail, total))
        image = bytearray(total)
        image[:HEAD_AND_STATUS] = head
        for s in reuse:
            image[where[s] : where[s] + page_size] = held.pages[s]
        to_move, done = sum(b - a for a, b in ranges), 0
        for a, b in ranges:
            image[a:b] = self._read_snapshot(
                snap, a, b, page_size, shown=(HEAD_AND_STATUS + done, HEAD_AND_STATUS + to_move))
            done += b - a
        per_page = fmt.records_per_page(page_size)
        for k in todo:
            seq = seqs[k]
            if seq is None:
                continue
            page = image[where[seq] : where[seq] + page_size]
            if not intact_page(page) or page_seq(page) != seq:
                raise _ReadWhole(f"the pump sent another page where its page map puts seq {seq}")
            if held_newest is not None and seq >= held_newest:
                first = page_count_field(held.pages[seq]) if seq in held.pages else 0
                for i in range(first, min(page_count_field(page), per_page)):
                    at = fmt.PAGE_HEADER_SIZE + fmt.RECORD_SIZE * i + 4
                    if int.from_bytes(page[at : at + 2], "little") == RecordCode.PUMP_RESET:
                        raise _ReadWhole(f"the pump reset since it was last read (a pump_reset record in "
                                         f"page seq {seq})")
        if crc32c(image) != pmap.image_crc:
            raise _ReadWhole("the log put together from the cache does not match the pump's (CRC-32C): "
                             "a cached page is not the pump's")
        return _Moved(bytes(image), True, "", len(seqs), len(todo), len(reuse), len(checked))

    def _read_snapshot(
        self, snap: int, start: int, end: int, page_size: int | None = None,
        *, shown: tuple[int, int] | None = None,
    ) -> bytes:
        """Bytes [start, end) of a frozen log image, in blocks that shrink on errors and
        grow again on success (so a noisy link still gets through, slowly).  With
        ``page_size`` (a whole log), ``self.progress`` hears after each block; ``shown``
        (bytes done before, bytes in all) places this read within a larger one.

        The link sends each READ_BLOCK once (:data:`READ_BLOCK_RETRY`): a failed block is asked
        for again, half the size, with a new sequence number, until :data:`BLOCK_RETRY` blocks in
        a row failed.  A :class:`StaleSnapshot` is not retried here: the caller takes a new one."""
        out = bytearray()
        total = end - start
        block, good, failures = BLOCK_START, 0, 0
        page = page_size or 0
        base, overall = shown if shown is not None else (0, total)
        progress = self.progress if page_size else None

        def report(done: int) -> None:
            if progress is not None:
                progress(ReadProgress(base + done, overall, page, self.link.failures))

        report(0)
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
                report(len(out))
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
            report(len(out))
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


def _spread(seqs: list[int], n: int) -> list[int]:
    """Up to ``n`` of the sorted ``seqs``: the newest, the oldest and ones evenly between."""
    if len(seqs) <= n:
        return list(seqs)
    picks = {seqs[-1], seqs[0]}
    for i in range(1, n - 1):
        picks.add(seqs[round(i * (len(seqs) - 1) / (n - 1))])
    return sorted(picks)


def _coalesce(places: list[int], page_size: int) -> list[tuple[int, int]]:
    """Byte ranges covering the page places ``places`` (sorted), adjacent places merged."""
    ranges: list[tuple[int, int]] = []
    for k in places:
        a = HEAD_AND_STATUS + k * page_size
        if ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], a + page_size)
        else:
            ranges.append((a, a + page_size))
    return ranges


def _serial_of(image: bytes) -> str:
    """The pump serial number in a log's header ("" when the header is not a good one)."""
    if len(image) < HEADER_SIZE or image[: len(fmt.MAGIC)] != fmt.MAGIC:
        return ""
    header, ok = decode_header(image[:HEADER_SIZE])
    return str(header.serial) if ok else ""


def _utc_now() -> int:
    """The programmer's clock: UTC now, in ITB-epoch seconds."""
    return datetime_to_clock(datetime.now(UTC))
