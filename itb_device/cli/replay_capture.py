"""``itb replay-capture``: reproduce an interrogation's decode offline from its byte capture."""

from __future__ import annotations

import argparse
from pathlib import Path

from itb_device.cli.errors import UserError


def register(p: argparse.ArgumentParser) -> None:
    """Add the replay-capture options."""
    p.add_argument("capture", type=Path, help="capture file written by itb interrogate --capture")
    p.add_argument("-o", "--output", type=Path, help="write the reproduced log here")


def run(args: argparse.Namespace) -> int:
    """Replay and report."""
    from itb_device.serial_backend import SerialProgrammer
    from itb_device.wire.capture import CaptureError, ReplayPort, load_capture
    from parsers import read_log_bytes
    from parsers.writer import atomic_write_bytes

    if args.output is not None:
        from itb_device.cli.options import check_output_file

        check_output_file(args.output, "-o")
    try:
        port = ReplayPort(load_capture(args.capture))
    except CaptureError as exc:
        raise UserError(str(exc)) from exc
    prog = SerialProgrammer(port)
    try:
        data = prog.read_log_bytes()
    finally:
        prog.close()
    log = read_log_bytes(data, str(args.capture))
    print(
        f"{args.capture}: reproduced {len(data)} bytes of log ({len(log.delivery)} delivery intervals, "
        f"{len(log.events)} events); {port.mismatches} requests differed from the capture"
    )
    if args.output:
        atomic_write_bytes(args.output, [data])
    return 0 if port.mismatches == 0 else 1
