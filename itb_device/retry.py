"""One retry policy for every layer that tries again: how many attempts, and the pause between.

Four layers retry, each with its own :class:`RetryPolicy` and its own rule for what may be
tried again (the policy says how often; the layer says what is safe):

* :meth:`itb_device.programmer.PumpProgrammer._call` (``retries``, default 2: 3 attempts)
  calls a backend hook again only after a :class:`~itb_device.errors.TransientLinkError`: a
  failure that carried nothing out, or after which carrying it out again is harmless (a log
  snapshot the pump dropped; a bolus, whose idempotency key the pump gives at most once).  A
  write that got no answer is a plain :class:`~itb_device.errors.LinkError` and is never sent
  again from here.
* :meth:`itb_device.wire.link.Link.request` (``link_retries``, default 30: 31 attempts)
  re-sends the *identical* frame (same sequence number) when no valid answer came: the pump
  answers a repeat from its response cache without acting again, so this is the one layer
  where a write is repeated after a timeout.  Its pause is the response timeout itself.
* :meth:`itb_device.serial_backend.SerialProgrammer._read_snapshot`: the link sends each
  READ_BLOCK once (``READ_BLOCK_RETRY``); a lost block is asked for again, half the size,
  with a new sequence number, and ``BLOCK_RETRY`` (65) failed blocks in a row end the read.
* :meth:`itb_device.serial_backend.SerialProgrammer._read_log_bytes`: a new snapshot when the
  pump dropped the one being read, 3 snapshots at most (``SNAPSHOT_RETRY``).  SESSION_END is
  sent up to 3 times (``SESSION_END_RETRY``).

No layer pauses between attempts today (``backoff_s`` 0): the link's response timeout paces
the retries, and its decisions must depend only on what the port returned (a capture replays
exactly, docs/wire-protocol.md section 8).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all (the first included, at least 1), ``backoff_s`` seconds of
    pause before each try after the first."""

    attempts: int
    backoff_s: float = 0.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"a retry policy makes at least 1 attempt, not {self.attempts!r}")
        if not (math.isfinite(self.backoff_s) and self.backoff_s >= 0):
            raise ValueError(f"a retry policy's backoff_s must be 0 or more seconds, not {self.backoff_s!r}")

    @classmethod
    def from_retries(cls, retries: int, backoff_s: float = 0.0) -> RetryPolicy:
        """The policy that tries once and then ``retries`` more times."""
        return cls(retries + 1, backoff_s)

    @property
    def retries(self) -> int:
        """Tries after the first."""
        return self.attempts - 1

    def exhausted(self, failures: int) -> bool:
        """Whether ``failures`` failed tries (in a row) used up the policy."""
        return failures >= self.attempts

    def pause(self) -> None:
        """Wait ``backoff_s`` before the next try (nothing when it is 0)."""
        if self.backoff_s > 0:
            self.sleep(self.backoff_s)

    def __iter__(self) -> Iterator[int]:
        """The try numbers 1 to ``attempts``, pausing before each after the first: the caller
        breaks out (or returns) when a try succeeds."""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self.pause()
            yield attempt

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        on_failure: Callable[[int, BaseException], None] | None = None,
    ) -> T:
        """``fn()``, tried again after an exception of ``retry_on`` (anything else propagates at
        once); ``on_failure(try number, exception)`` hears of each failed try.  When every try
        failed, the last exception is raised."""
        for attempt in self:
            try:
                return fn()
            except retry_on as exc:
                if on_failure is not None:
                    on_failure(attempt, exc)
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable: the last failed try re-raises")
