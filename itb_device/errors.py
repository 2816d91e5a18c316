"""Errors of the device layer, each a clear one-line message for the user."""

from __future__ import annotations


class DeviceError(Exception):
    """Base class for pump and programmer errors."""


class PumpRefused(DeviceError):
    """The pump refused a command it cannot carry out (rate out of range, volume too large...)."""


class ProgrammerRefused(DeviceError):
    """The programmer refused a change that breaks the guideline's rules (override needed)."""


class ReadOnlyPump(DeviceError):
    """The backend replays a saved interrogation and cannot be programmed."""


class LinkError(DeviceError):
    """The link to the pump failed (timeout, corrupted frames)."""


class TransientLinkError(LinkError):
    """A failure worth retrying (a lost or corrupted frame)."""


class UnknownBackend(DeviceError):
    """No backend handles the URL's scheme."""
