"""``itb interrogate``: read a pump's status and whole log over a link and save it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    """Add the interrogate options."""
    p.add_argument("url", help="pump link: device path, pseudo-terminal, socket://127.0.0.1:PORT, spy://...")
    p.add_argument("-o", "--output", type=Path, required=True, help="log to write (.itblog)")
    p.add_argument("--capture", type=Path, help="also keep the raw byte capture of the session")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=0.25, help="seconds to wait for each response")


def run(args: argparse.Namespace) -> int:
    """Interrogate and save."""
    from itb_device.serial_backend import SerialProgrammer
    from parsers import read_log_bytes
    from parsers.writer import atomic_write_bytes

    prog = SerialProgrammer.from_url(
        args.url, baudrate=args.baud, capture=args.capture, link_timeout=args.timeout
    )
    try:
        data = prog.read_log_bytes()
    finally:
        prog.close()
    atomic_write_bytes(args.output, [data])
    log = read_log_bytes(data, str(args.output))
    link = prog.link
    print(
        f"{args.output}: {len(data)} bytes, {len(log.delivery)} delivery intervals, "
        f"{len(log.events)} events, "
        f"{len(log.problems)} problems; link: {link.attempts} requests sent, {link.failures} retried"
    )
    if args.capture:
        print(f"capture: {args.capture}", file=sys.stderr)
    return 0
