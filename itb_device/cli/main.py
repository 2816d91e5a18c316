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


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked for (reading the
    package metadata costs about 30 ms, which every other command would pay)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from itb_device import __version__

        print(f"itb (itb-telemetry) {__version__}")  # on stdout, as argparse's own action
        parser.exit()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command listed.  Given ``argv``, only the options of
    the sub-command it names are registered (its module imported): the others' modules are
    not needed to run it, and loading all of them would slow every command's start."""
    parser = _Parser(
        prog="itb",
        description="ITB pump telemetry: decode logs, simulate pumps, check delivery. "
        "Supports clinicians; it does not replace the manufacturer's programmer or "
        "clinical judgement.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _named_command(argv)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if wanted is None or name == wanted:
            module = importlib.import_module(f"itb_device.cli.{name.replace('-', '_')}")
            p.epilog = getattr(module, "EPILOG", None)
            module.register(p)
            p.set_defaults(_module=module)
    return parser


def _named_command(argv: Sequence[str] | None) -> str | None:
    """The sub-command ``argv`` names (its first word that is not an option), if any."""
    if argv is None:
        return None
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


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
        return _main(argv, itb_process=quiet)
    except Exception:
        if _pressed:  # Ctrl-C inside an import can surface as another error (an ImportError ...)
            print("itb: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    finally:
        if quiet and signal.getsignal(signal.SIGINT) is _interrupt:
            signal.signal(signal.SIGINT, _quiet_interrupt)  # and again while Python shuts down
        if quiet:
            _spare_the_final_collection()


def _spare_the_final_collection() -> None:
    """The ``itb`` process ends next.  Python's shutdown runs a full garbage collection over
    every object still alive (pandas, numpy and pyarrow leave some million), which took 0.2 to
    0.4 s here, a third of a bedside check.  Frozen objects are outside the collector's reach;
    they are freed with the process as before, and everything the command wrote is already
    closed (stdout and stderr are flushed by the interpreter as usual).  Only in the ``itb``
    process: a program that calls :func:`main` keeps its collector."""
    import gc

    gc.freeze()


def _main(argv: Sequence[str] | None, *, itb_process: bool = False) -> int:
    try:
        words = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(words)
        args = parser.parse_args(words)
    except KeyboardInterrupt:  # Ctrl-C while the command starts
        print("itb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        logging.basicConfig(level=logging.WARNING, format=f"itb {args.command}: %(levelname)s: %(message)s")
        _load(["clinical.rules", "itb_device.errors", "parsers", *getattr(args._module, "PRELOAD", ())],
              itb_process=itb_process)
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


def _load(names: Sequence[str], *, itb_process: bool) -> None:
    """Import the modules a command needs (its ``PRELOAD``) before it runs.  In the ``itb``
    process they are imported with the garbage collector off, then frozen: what an import
    makes (modules, classes, functions) lives as long as the process, and pandas' import
    alone otherwise sets off collections that each walk everything made so far (about a
    tenth of a bedside check here).  A program calling main() keeps its collector as it was."""
    if not itb_process:
        for name in names:
            importlib.import_module(name)
        return
    import gc

    gc.disable()
    try:
        for name in names:
            importlib.import_module(name)
    finally:
        gc.freeze()
        gc.enable()


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (a message from a library may hold newlines), any
    control character in it escaped (it may quote a log or a pump)."""
    from parsers.text import printable

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return printable(" ".join(lines) or type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
