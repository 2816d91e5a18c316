"""The programmer's end of the link: requests, timeouts and retries over a pyserial port.

Every request carries a sequence number; a retry re-sends the same frame, so the pump can
answer a repeated command from its cache instead of acting twice.  The link's decisions
depend only on what ``port.read`` returns (data, or nothing when the port's timeout
expires), never on the wall clock, so a captured session replays exactly.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import LinkError, PumpRefused, ReadOnlyPump, TransientLinkError
from ..retry import RetryPolicy
from .frames import MAX_PAYLOAD, FrameDecoder, encode_frame
from .messages import RESPONSE, ErrorCode, Op

log = logging.getLogger("itb_device.link")


class StaleSnapshot(TransientLinkError):
    """The pump no longer holds the log snapshot being read: take a new one."""


MAX_BYTES_PER_ATTEMPT = 4 * 2 * (MAX_PAYLOAD + 16)  # a link that keeps trickling noise still gives up


class Link:
    """Request/response over an open pyserial-like port (``read``, ``write``, ``in_waiting``,
    ``timeout``).  ``timeout`` is the wait for a response before a retry; ``retries`` is how
    many times a request is re-sent before :class:`LinkError` (the policy is ``retry``, a
    :class:`~itb_device.retry.RetryPolicy` without a pause: the timeout paces the retries)."""

    def __init__(
        self, port: Any, *, timeout: float = 0.25, retries: int = 8, bad_frame_wait: float = 0.02
    ) -> None:
        self.port = port
        self.timeout = timeout
        self.retry = RetryPolicy.from_retries(retries)
        self.bad_frame_wait = bad_frame_wait
        self.decoder = FrameDecoder()
        first = getattr(port, "first_seq", None)  # a replay continues the captured numbering
        self._seq = (first - 1) & 0xFFFF if first is not None else int.from_bytes(os.urandom(2), "little")
        self.sent = self.received = 0  # bytes on the wire
        self.attempts = self.failures = 0

    @property
    def retries(self) -> int:
        """Times a request is re-sent after the first attempt."""
        return self.retry.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.retry = RetryPolicy.from_retries(value, self.retry.backoff_s)

    def next_seq(self) -> int:
        """A new sequence number (16 bits, wrapping)."""
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def request(
        self, op: Op, payload: bytes = b"", *, seq: int | None = None, retry: RetryPolicy | None = None
    ) -> bytes:
        """Send ``op`` and return the response payload; retries re-send the identical frame
        (the same sequence number), so the pump answers a repeat from its cache and never acts
        twice.  ``retry`` replaces the link's own policy (:attr:`retry`) for this request.

        Raises :class:`PumpRefused` / :class:`ReadOnlyPump` when the pump refuses, and
        :class:`LinkError` when no valid response came after all attempts (or
        :class:`TransientLinkError` when ``retry`` was given and all failed, so the caller
        can adapt and try again).
        """
        seq = self.next_seq() if seq is None else seq
        frame = encode_frame(seq, op, payload)
        policy = self.retry if retry is None else retry
        for attempt in policy:
            self.attempts += 1
            self.port.write(frame)
            self.sent += len(frame)
            reply = self._await(seq, op)
            if reply is not None:
                return reply
            self.failures += 1
            log.debug("%s seq %d: no valid response (attempt %d of %d)", op.name, seq, attempt,
                      policy.attempts)
        msg = f"{op.name} got no valid response after {policy.attempts} attempts ({self.timeout:g} s each)"
        if retry is not None:
            raise TransientLinkError(msg)
        raise LinkError(f"timeout: {msg}; check the telemetry head's position and the link")

    def _await(self, seq: int, op: Op) -> bytes | None:
        port = self.port
        port.timeout = self.timeout
        bad_before = self.decoder.bad_frames
        got = 0
        while got < MAX_BYTES_PER_ATTEMPT:
            data = port.read(max(1, port.in_waiting))
            if not data:
                return None
            got += len(data)
            self.received += len(data)
            for f in self.decoder.feed(data):
                if f.seq != seq:
                    continue  # a late answer to an earlier request
                if f.opcode == (op | RESPONSE):
                    return f.payload
                if f.opcode == (Op.ERROR | RESPONSE):
                    _raise_error(f.payload)
            if self.decoder.bad_frames > bad_before:
                port.timeout = self.bad_frame_wait  # our answer was probably garbled: retry soon
        return None

    def close(self) -> None:
        """Close the port."""
        self.port.close()


def _raise_error(payload: bytes) -> None:
    code = payload[0] if payload else 0
    message = payload[1:].decode("utf-8", "replace") or "refused"
    if code == ErrorCode.READ_ONLY:
        raise ReadOnlyPump(message)
    if code == ErrorCode.STALE_SNAPSHOT:
        raise StaleSnapshot(message)
    raise PumpRefused(message)
