"""``itb interrogate``: read a pump's status and whole log and save it.

URL is anything ``itb_device.open()`` takes: a link to a pump over the wire protocol (a serial
device path, a pseudo-terminal, ``socket://127.0.0.1:PORT`` as ``itb pump-sim`` prints it,
``spy://...``), an in-process simulated pump (``sim://?model=20&seed=1``,
``sim://?scenario=FILE.toml``) or a saved interrogation (``file://PATH.itblog``).  On a
terminal, reading a pump over a link shows its progress (pages read of total, retries) on
standard error; nothing is shown when standard error is not a terminal.

Over a link the pump's pages are kept in the page cache (``itb_device.pagecache``: by serial
number, in ``$ITB_PUMP_CACHE`` or ``~/.local/share/itb-telemetry/pumps``, or ``--cache DIR``),
and the next interrogation reads only the pages written since, verified against the pump; the
log written is byte for byte a whole read's.  ``--full`` reads it whole.  One line on standard
error says which it was (and why a whole read), the pages read and the bytes on the link.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from itb_device.cli.errors import UserError

if TYPE_CHECKING:
    from itb_device.serial_backend import ReadProgress


def register(p: argparse.ArgumentParser) -> None:
    """Add the interrogate options."""
    p.add_argument(
        "url",
        help="the pump: a device path (/dev/ttyUSB0, a pseudo-terminal), socket://127.0.0.1:PORT "
        "(itb pump-sim), spy://..., sim://?model=20&seed=1 or sim://?scenario=FILE.toml (a simulated "
        "pump), file://PATH.itblog (a saved log)",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="log to write (.itblog)")
    p.add_argument("--capture", type=Path, help="also keep the raw byte capture of the session (links only)")
    p.add_argument("--baud", type=int, default=115200, help="link speed (links only)")
    p.add_argument(
        "--timeout", type=float, default=0.25, help="seconds to wait for each response (links only)"
    )
    p.add_argument(
        "--full", action="store_true",
        help="read the whole log even when this pump's pages are cached (links only; the cache is "
        "refreshed)",
    )
    p.add_argument(
        "--cache", type=Path, metavar="DIR",
        help="the page cache folder (links only; default $ITB_PUMP_CACHE, else "
        "~/.local/share/itb-telemetry/pumps)",
    )


class TerminalProgress:
    """``page N of M (P%), R retries`` on one line of ``stream``, at most ten times a second."""
    def __init__(self, stream: TextIO, prefix: str = "itb interrogate") -> None:
        self.stream = stream
        self.prefix = prefix
        self._last = 0.0
        self._shown = False

    def __call__(self, p: ReadProgress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and p.done_bytes < p.total_bytes:
            return
        self._last = now
        if p.pages_total:
            pct = 100 * p.pages_done // p.pages_total
        else:
            pct = 100 * p.done_bytes // max(1, p.total_bytes)
        retries = f", {p.retries} {'retry' if p.retries == 1 else 'retries'}" if p.retries else ""
        line = f"{self.prefix}: reading the log, page {p.pages_done} of {p.pages_total} ({pct}%){retries}"
        self.stream.write(f"\r{line}\033[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the line."""
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


def run(args: argparse.Namespace) -> int:
    """Interrogate and save."""
    from itb_device import open as open_pump
    from itb_device.backends import backend_for
    from itb_device.cli.options import check_output_file
    from itb_device.serial_backend import SerialProgrammer
    from parsers import LogFormatError, read_log_bytes
    from parsers.writer import atomic_write_bytes

    check_output_file(args.output, "-o")
    if args.capture is not None:
        check_output_file(args.capture, "--capture")
    if args.timeout <= 0 or args.baud <= 0:
        raise UserError("--timeout and --baud must be positive")
    is_link = issubclass(backend_for(args.url), SerialProgrammer)
    if args.capture is not None and not is_link:
        raise UserError(f"--capture records the bytes of a link; {args.url} is not one (sim:// and file:// "
                        "have no link)")
    if args.cache is not None and args.cache.exists() and not args.cache.is_dir():
        raise UserError(f"--cache {args.cache}: not a folder")
    progress = TerminalProgress(sys.stderr) if is_link and sys.stderr.isatty() else None
    options: dict[str, Any] = (
        {"baudrate": args.baud, "capture": args.capture, "link_timeout": args.timeout, "progress": progress}
        if is_link else {}
    )
    try:
        prog = open_pump(args.url, **options)
    except LogFormatError:
        raise  # names the file and byte already
    except ValueError as exc:  # a sim:// URL with bad options or scenario
        raise UserError(f"{args.url}: {exc}") from exc
    how = None
    try:
        if isinstance(prog, SerialProgrammer):
            how = prog.read_log_cached(args.cache, full=args.full)
            data = how.data
        else:
            data = prog.read_log_bytes()
    finally:
        if progress is not None:
            progress.close()
        prog.close()
    atomic_write_bytes(args.output, [data])
    log = read_log_bytes(data, str(args.output))
    summary = (
        f"{args.output}: {len(data)} bytes, {len(log.delivery)} delivery intervals, "
        f"{len(log.events)} events, {len(log.problems)} problems"
    )
    link = getattr(prog, "link", None)
    if link is not None:
        summary += f"; link: {link.attempts} requests sent, {link.failures} retried"
    print(summary)
    if how is not None:
        print(f"itb interrogate: {how.describe()}", file=sys.stderr)
    if args.capture:
        print(f"capture: {args.capture}", file=sys.stderr)
    return 0
