"""Wire benchmark: a full interrogation of a realistic log over a pseudo-terminal at 115200 baud,
then a whole and an incremental interrogation of a pump read a few hours before.

    python benchmarks/wire.py [--log sample_logs/normal_year.itblog] [--reps 3] [--timeout 0.25]
                              [--days 365] [--hours 3]

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

Incremental interrogation (docs/wire-protocol.md section 6): a simulated pump ``--days`` into its
log (``PumpService(pump)``, a live pump) is interrogated with an empty page cache (a whole read,
``full_s``), then ``--hours`` later again (``incremental_s``: the cached pages, verified, plus the
pages written since); both as line times like ``interrogate_s``, with the bytes and requests
moved.  The second log must be byte for byte the pump's (what a whole read gives).  The line
time counts bytes only: a real pump's turnaround adds a few milliseconds per request
(``incremental_requests``).

Last line: ``RESULT interrogate_s=... efficiency=... pty_wall_s=... wire_bytes=... full_s=...
full_wire_bytes=... incremental_s=... incremental_wire_bytes=... incremental_pages_read=...
incremental_requests=... incremental_pty_wall_s=... speedup=...``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from itb_device.pagecache import LogRead  # noqa: E402
from itb_device.serial_backend import SerialProgrammer  # noqa: E402
from itb_device.sim.pump import PumpConfig, SimulatedPump  # noqa: E402
from itb_device.wire.server import PtyTransport, PumpService, serve  # noqa: E402
from parsers.writer import encode_log  # noqa: E402

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


def line_time_s(wire_bytes: int) -> float:
    """Seconds ``wire_bytes`` take on a real 115200-baud 8N1 line."""
    return wire_bytes * BITS_PER_BYTE / BAUD


def cached_once(pump: SimulatedPump, cache: Path, timeout: float) -> tuple[LogRead, float, int]:
    """One session on the live ``pump`` served over a pty, reading with the page cache; returns
    what was read, the wall time and the requests sent.  The log must be the pump's image."""
    transport = PtyTransport()
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(PumpService(pump), transport, stop.is_set), daemon=True)
    server.start()
    try:
        t0 = time.perf_counter()
        prog = SerialProgrammer.from_url(transport.name, baudrate=BAUD, link_timeout=timeout)
        try:
            got = prog.read_log_cached(cache)
            if got.data != encode_log(pump.log_image()):
                raise SystemExit("the log read with the page cache differs from the pump's")
        finally:
            prog.close()
        return got, time.perf_counter() - t0, prog.link.attempts
    finally:
        stop.set()
        server.join(5)
        transport.close()


def incremental_run(days: float, hours: float, timeout: float) -> dict[str, float]:
    """The pump read whole (no cache yet), then ``hours`` later with the cache."""
    pump = SimulatedPump(PumpConfig(), start=836_000_000, seed=1, reservoir_ml=20.0)
    pump.advance_to(pump.now + int(days * 86_400))
    with tempfile.TemporaryDirectory(prefix="itb-pump-cache-") as cache:
        first, first_wall, _ = cached_once(pump, Path(cache), timeout)
        pump.advance_to(pump.now + int(hours * 3600))
        second, second_wall, requests = cached_once(pump, Path(cache), timeout)
    if first.incremental or not second.incremental:
        raise SystemExit(f"expected a whole then an incremental read: {first.describe()} / "
                         f"{second.describe()}")
    print(f"pump: simulated, {days:g} days of log ({len(first.data)} bytes, {first.pages} pages), read "
          "over a pty")
    print(f"first interrogation: {first.describe()}; {first_wall:.3f} s over the pty")
    print(f"{hours:g} h later: {second.describe()}; {requests} requests; {second_wall:.3f} s over the pty")
    full_s, incr_s = line_time_s(first.wire_bytes), line_time_s(second.wire_bytes)
    print(f"full_s: {full_s:.2f} s, incremental_s: {incr_s:.2f} s on a real 115200-baud line "
          f"({full_s / incr_s:.0f} times faster)")
    return {"full_s": full_s, "full_wire_bytes": first.wire_bytes, "incremental_s": incr_s,
            "incremental_wire_bytes": second.wire_bytes, "incremental_pages_read": second.pages_read,
            "incremental_requests": requests, "incremental_pty_wall_s": second_wall,
            "speedup": full_s / incr_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG, help="the .itblog the pump serves")
    ap.add_argument("--reps", type=int, default=3, help="interrogations; the best wall time is kept")
    ap.add_argument("--timeout", type=float, default=0.25, help="link timeout per response (s)")
    ap.add_argument("--days", type=float, default=365, help="days of log on the incrementally read pump")
    ap.add_argument("--hours", type=float, default=3, help="hours between its two interrogations")
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
    inc = incremental_run(args.days, args.hours, args.timeout)
    print(
        f"RESULT interrogate_s={line_s:.2f} efficiency={efficiency:.4f} pty_wall_s={wall:.3f} "
        f"wire_bytes={wire} full_s={inc['full_s']:.2f} full_wire_bytes={inc['full_wire_bytes']} "
        f"incremental_s={inc['incremental_s']:.2f} incremental_wire_bytes={inc['incremental_wire_bytes']} "
        f"incremental_pages_read={inc['incremental_pages_read']} "
        f"incremental_requests={inc['incremental_requests']} "
        f"incremental_pty_wall_s={inc['incremental_pty_wall_s']:.3f} speedup={inc['speedup']:.0f}"
    )


if __name__ == "__main__":
    main()
