"""Backends picked by URL scheme from a small lazy registry (python-can's habit).

``sim://`` an in-process simulated pump, ``file://`` read-only replay of a saved
interrogation, and the link URLs pyserial opens (a device path, ``socket://HOST:PORT`` as
``itb pump-sim`` prints it, ``spy://``, ``loop://``, ``rfc2217://``).  Third parties add schemes with
:func:`register_backend` or the ``itb_device.backends`` entry-point group.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from .errors import UnknownBackend
from .programmer import PumpProgrammer

# scheme -> (module, class); the class has a classmethod from_url(url, **kwargs)
BACKENDS: dict[str, tuple[str, str]] = {
    "sim": ("itb_device.sim_backend", "SimProgrammer"),
    "file": ("itb_device.file_backend", "FileProgrammer"),
    # pyserial URL handlers, and plain device paths (no scheme)
    "socket": ("itb_device.serial_backend", "SerialProgrammer"),
    "spy": ("itb_device.serial_backend", "SerialProgrammer"),
    "loop": ("itb_device.serial_backend", "SerialProgrammer"),
    "rfc2217": ("itb_device.serial_backend", "SerialProgrammer"),
    "serial": ("itb_device.serial_backend", "SerialProgrammer"),
}


def register_backend(scheme: str, module: str, cls: str) -> None:
    """Make ``scheme://`` URLs open with ``module.cls``."""
    BACKENDS[scheme] = (module, cls)


def _lookup(scheme: str) -> type[PumpProgrammer]:
    if scheme not in BACKENDS:
        from importlib.metadata import entry_points  # only for schemes we do not know

        for ep in entry_points(group="itb_device.backends"):
            if ep.name == scheme:
                return ep.load()
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise UnknownBackend(f"no backend for {scheme}:// (known: {known})")
    module, cls = BACKENDS[scheme]
    return getattr(importlib.import_module(module), cls)


def backend_for(url: str) -> type[PumpProgrammer]:
    """The programmer class that opens ``url`` (UnknownBackend, one line, if none does)."""
    scheme = urlsplit(url).scheme
    if not scheme or len(scheme) == 1:  # a device path such as /dev/ttyUSB0 or COM3
        if url.startswith(("/", "COM", "com")):
            scheme = "serial"
        else:
            raise UnknownBackend(
                f"{url!r} is not a URL: use sim://..., file://PATH.itblog, a serial device path, "
                "socket://HOST:PORT"
            )
    return _lookup(scheme)


def open_pump(url: str, **kwargs: Any) -> PumpProgrammer:
    """Open a programmer session on the pump named by ``url``."""
    return backend_for(url).from_url(url, **kwargs)
