"""The ``itb`` command: one entry point, one module per sub-command (imported lazily).

User errors (bad arguments, unreadable or damaged files) print one line naming the problem
and exit with status 2; they never show a traceback.  Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from itb_device._startup import quiet_interrupt as _quiet_interrupt
from itb_device.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Interrupted, UserError

# sub-command -> module in itb_device.cli; each has register(parser) and run(args).
COMMANDS: dict[str, str] = {
    "check": "The two-hour check after an MRI or surgery with diathermy: verdict, evidence, actions",
    "report": "Write the printable interrogation report (PDF or HTML): status, refill planning, risks",
    "decode": "Decode an interrogation log (.itblog) into tables",
    "dose": "The guideline's calculators: test dose, starting dose, titration, refill, oral baclofen",
    "simulate": "Run a pump scenario and write its log and ground truth",
    "pump-sim": "Serve a simulated pump (or a saved log) over a pseudo-terminal or socket://",
    "interrogate": "Read a pump's whole log (over a link, or sim://, file://) and save it",
    "replay-capture": "Reproduce an interrogation's decode offline from its byte capture",
    "make-cohort": "Simulate a synthetic cohort of pumps for research tests and benchmarks",
    "cohort": "Research tables, Parquet/CSV and plots for many logs, in parallel (local or Dask)",
    "score": "Score the analysis against the sample logs' ground truth",
    "serve": "The ward app: the two-hour check in a browser, with a record of every check",
}

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``itb CMD: error: ...``), exit status 2."""
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    from itb_device import __version__

    parser = _Parser(
        prog="itb",
        description="ITB pump telemetry: decode logs, simulate pumps, check delivery. "
        "Supports clinicians; it does not replace the manufacturer's programmer or "
        "clinical judgement.",
    )
    parser.add_argument("--version", action="version", version=f"itb (itb-telemetry) {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"itb_device.cli.{name.replace('-', '_')}")
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.register(p)
        p.set_defaults(_module=module)
    return parser


_pressed: list[int] = []  # Ctrl-C seen while main() ran as the itb command


def _interrupt(signum: int, frame: object) -> None:
    _pressed.append(signum)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``itb`` command; returns the exit status."""
    quiet = signal.getsignal(signal.SIGINT) is _quiet_interrupt
    if quiet:  # from here Ctrl-C is a KeyboardInterrupt, handled at every stage below
        signal.signal(signal.SIGINT, _interrupt)
    try:
        return _main(argv)
    except Exception:
        if _pressed:  # Ctrl-C inside an import can surface as another error (an ImportError ...)
            print("itb: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    finally:
        if quiet and signal.getsignal(signal.SIGINT) is _interrupt:
            signal.signal(signal.SIGINT, _quiet_interrupt)  # and again while Python shuts down


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the command starts
        print("itb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        logging.basicConfig(level=logging.WARNING, format=f"itb {args.command}: %(levelname)s: %(message)s")
        from clinical.rules import RulesError
        from itb_device.errors import DeviceError
        from parsers import LogFormatError
    except KeyboardInterrupt:
        print(f"itb {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        return int(args._module.run(args) or 0)
    except BrokenPipeError:  # output piped into head, say
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"itb {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Interrupted as exc:
        print(f"itb {args.command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, LogFormatError, DeviceError, RulesError, OSError) as exc:
        print(f"itb {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (a message from a library may hold newlines), any
    control character in it escaped (it may quote a log or a pump)."""
    from parsers.text import printable

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return printable(" ".join(lines) or type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
