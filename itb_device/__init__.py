"""The device layer: the pump-programmer interface, its backends and the simulated pump.

``itb_device.open(url)`` opens a programmer session: ``sim://`` (simulated pump),
``file://PATH.itblog`` (read-only replay).  Uses ``parsers``; never imports ``analysis``.
"""

from .backends import open_pump as open
from .backends import register_backend
from .errors import (
    DeviceError,
    LinkError,
    ProgrammerRefused,
    PumpRefused,
    ReadOnlyPump,
    TransientLinkError,
    UnknownBackend,
)
from .prescription import FlexDose, Prescription
from .programmer import PumpProgrammer, RefillResult

__all__ = [
    "DeviceError",
    "FlexDose",
    "LinkError",
    "Prescription",
    "ProgrammerRefused",
    "PumpProgrammer",
    "PumpRefused",
    "ReadOnlyPump",
    "RefillResult",
    "TransientLinkError",
    "UnknownBackend",
    "open",
    "register_backend",
]
