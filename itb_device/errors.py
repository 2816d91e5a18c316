"""Errors of the device layer, each a clear one-line message for the user."""

from __future__ import annotations


class DeviceError(Exception):
    """Base class for pump and programmer errors."""


class PumpRefused(DeviceError):
    """The pump refused a command it cannot carry out (rate out of range, volume too large...)."""


class ProgrammerRefused(DeviceError):
    """The programmer refused a change that breaks the guideline's rules (override needed)."""


class InvalidValue(ProgrammerRefused, ValueError):
    """A value the programmer cannot send: not a number, not finite, negative, or too large for
    the wire and the pump's log (a ValueError too, for callers that catch that)."""


class ReadOnlyPump(DeviceError):
    """The backend replays a saved interrogation and cannot be programmed."""


class LinkError(DeviceError):
    """The link to the pump failed (timeout, corrupted frames)."""


class TransientLinkError(LinkError):
    """A failure worth retrying (a lost or corrupted frame)."""


class BolusOutcomeUnknown(LinkError):
    """A bolus request got no answer and the pump could not be asked afterwards: it may or may
    not have started the bolus.  ``key`` is the request's idempotency key: ``bolus(...,
    key=exc.key)`` (or the same ``bolus(...)`` call again on the same programmer) asks the
    pump safely, which gives a bolus at most once per key."""

    def __init__(self, message: str, key: int) -> None:
        super().__init__(message)
        self.key = key


class UnknownBackend(DeviceError):
    """No backend handles the URL's scheme."""
