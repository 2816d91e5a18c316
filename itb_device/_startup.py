"""Ctrl-C while the ``itb`` command starts (or after it ended): one line and status 130, never a
traceback.  Imported first by the package, and itself imports only what the interpreter has
already loaded (``_signal`` is the builtin under ``signal``), so that only Python's own start-up
comes before it.  It changes nothing unless this process is the ``itb`` command (the console
script, ``python -m itb_device`` or ``python -m itb_device.cli``), not a program using the package."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see above)
if TYPE_CHECKING:
    import signal as _signal  # typeshed has no stub for _signal; signal re-exports its names
else:
    import _signal


def quiet_interrupt(signum: int, frame: object) -> None:
    """The SIGINT handler outside :func:`itb_device.cli.main`: say so, exit 130 at once."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - no contextlib: this module imports nothing new
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        os.write(2, b"itb: interrupted\n")
    finally:
        os._exit(130)


def running_as_itb() -> bool:
    """True when this process is the ``itb`` command."""
    argv = list(getattr(sys, "orig_argv", []))
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] in ("itb_device", "itb_device.cli"):
        return True
    main = sys.modules.get("__main__")
    return os.path.basename(getattr(main, "__file__", "") or "") in ("itb", "itb.exe", "itb-script.py")


if running_as_itb() and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    try:  # noqa: SIM105
        _signal.signal(_signal.SIGINT, quiet_interrupt)
    except ValueError:  # not the main thread
        pass
