"""Wire benchmark: a full interrogation of a realistic log over a pseudo-terminal at 115200 baud.

    python benchmarks/wire.py [--log sample_logs/normal_year.itblog] [--reps 3] [--timeout 0.25]

The pump side is ``PumpService(replay=<log bytes>)`` served by ``serve()`` on a
``PtyTransport`` in a background thread; the programmer side is ``SerialProgrammer`` on the
pty's device path opened with pyserial at 115200 baud 8N1 (``SerialProgrammer.from_url``).
One interrogation = SESSION_START, SNAPSHOT, the adaptive READ_BLOCKs, SESSION_END.

A pseudo-terminal does not enforce the baud rate: bytes move as fast as the kernel copies
them.  So the benchmark reports two times:

* ``interrogate_s``: the time the bytes that crossed the wire (both directions, counted by
  ``Link.sent`` / ``Link.received``) would take on a real 115200-baud 8N1 line, 10 bits per
  byte (a lower bound: it ignores the pump's turnaround time between request and response);
* ``pty_wall_s``: the measured wall time over the pty (best of ``--reps``).

``efficiency`` = log bytes delivered / total bytes on the wire in both directions (framing,
byte stuffing, CRCs, request frames and the session's other messages are the overhead).

Last line: ``RESULT interrogate_s=... efficiency=... pty_wall_s=... wire_bytes=...``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from itb_device.serial_backend import SerialProgrammer  # noqa: E402
from itb_device.wire.server import PtyTransport, PumpService, serve  # noqa: E402

BAUD = 115200
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
DEFAULT_LOG = ROOT / "sample_logs" / "normal_year.itblog"


def interrogate_once(url: str, timeout: float) -> tuple[bytes, float, SerialProgrammer]:
    """One whole session; returns the log, the wall time and the (closed) programmer."""
    t0 = time.perf_counter()
    prog = SerialProgrammer.from_url(url, baudrate=BAUD, link_timeout=timeout)
    try:
        data = prog.read_log_bytes()
    finally:
        prog.close()
    return data, time.perf_counter() - t0, prog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG, help="the .itblog the pump serves")
    ap.add_argument("--reps", type=int, default=3, help="interrogations; the best wall time is kept")
    ap.add_argument("--timeout", type=float, default=0.25, help="link timeout per response (s)")
    args = ap.parse_args()

    raw = args.log.read_bytes()
    transport = PtyTransport()
    stop = threading.Event()
    service = PumpService(replay=raw)
    server = threading.Thread(target=serve, args=(service, transport, stop.is_set), daemon=True)
    server.start()
    try:
        runs = [interrogate_once(transport.name, args.timeout) for _ in range(max(1, args.reps))]
    finally:
        stop.set()
        server.join(5)
        transport.close()

    for data, _, _ in runs:
        if data != raw:
            raise SystemExit("the interrogated log differs from the served log")
    wall = min(w for _, w, _ in runs)
    link = runs[0][2].link  # every run moves the same bytes when the link is clean
    sent, received = link.sent, link.received
    wire = sent + received
    efficiency = len(raw) / wire
    line_s = wire * BITS_PER_BYTE / BAUD
    print(f"log: {args.log} ({len(raw)} bytes), served by PumpService(replay=...) over {transport.name}")
    print(
        f"link: {link.attempts} requests ({link.failures} retried); on the wire {sent} bytes "
        f"programmer->pump + {received} bytes pump->programmer = {wire} bytes"
    )
    print(f"efficiency: {len(raw)} log bytes / {wire} wire bytes = {efficiency:.4f}")
    print(
        f"interrogate_s: {line_s:.2f} s = {wire} bytes x {BITS_PER_BYTE} bits / {BAUD} baud "
        "(the time on a real 115200-baud 8N1 line; a pty does not enforce the baud rate)"
    )
    print(f"pty_wall_s: {wall:.3f} s measured over the pty (best of {len(runs)})")
    print(
        f"RESULT interrogate_s={line_s:.2f} efficiency={efficiency:.4f} pty_wall_s={wall:.3f} "
        f"wire_bytes={wire}"
    )


if __name__ == "__main__":
    main()
