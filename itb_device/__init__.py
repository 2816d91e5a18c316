"""The device layer: the pump-programmer interface, its backends and the simulated pump.

``itb_device.open(url)`` opens a programmer session: ``sim://`` (simulated pump),
``file://PATH.itblog`` (read-only replay), a serial device path or ``socket://HOST:PORT``
(a pump, or ``itb pump-sim``, over the wire protocol).  Uses ``parsers`` and ``clinical``;
only its command line (``itb_device.cli``, the top layer) imports ``analysis`` and ``ward``
(docs/architecture.md, enforced by tests/test_architecture.py).  The names below are imported
when first used, so ``import itb_device`` (and ``itb --version``) stays quick.
"""

from __future__ import annotations

# first: Ctrl-C while the `itb` command starts prints one line, no traceback
from . import _startup  # noqa: F401

# isort: split
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import open_pump as open
    from .backends import register_backend
    from .errors import (
        BolusOutcomeUnknown,
        DeviceError,
        InvalidValue,
        LinkError,
        ProgrammerRefused,
        PumpRefused,
        ReadOnlyPump,
        TransientLinkError,
        UnknownBackend,
    )
    from .prescription import FlexDose, Prescription
    from .programmer import PumpProgrammer, RefillResult

# public name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "open": (".backends", "open_pump"),
    "register_backend": (".backends", "register_backend"),
    "DeviceError": (".errors", "DeviceError"),
    "LinkError": (".errors", "LinkError"),
    "ProgrammerRefused": (".errors", "ProgrammerRefused"),
    "PumpRefused": (".errors", "PumpRefused"),
    "ReadOnlyPump": (".errors", "ReadOnlyPump"),
    "TransientLinkError": (".errors", "TransientLinkError"),
    "UnknownBackend": (".errors", "UnknownBackend"),
    "InvalidValue": (".errors", "InvalidValue"),
    "BolusOutcomeUnknown": (".errors", "BolusOutcomeUnknown"),
    "FlexDose": (".prescription", "FlexDose"),
    "Prescription": (".prescription", "Prescription"),
    "PumpProgrammer": (".programmer", "PumpProgrammer"),
    "RefillResult": (".programmer", "RefillResult"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("itb-telemetry")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # looked up when first asked for: `import itb_device` stays quick
        globals()[name] = value = _version()
        return value
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "BolusOutcomeUnknown",
    "DeviceError",
    "FlexDose",
    "InvalidValue",
    "LinkError",
    "Prescription",
    "ProgrammerRefused",
    "PumpProgrammer",
    "PumpRefused",
    "ReadOnlyPump",
    "RefillResult",
    "TransientLinkError",
    "UnknownBackend",
    "__version__",
    "open",
    "register_backend",
]
