"""Decode benchmark: the fast reader against the construct reader and a plain file read.

    python benchmarks/decode.py [--mb 256] [--workdir DIR] [--reps 5] [--keep]

Generates a log of at least ``--mb`` MiB (page size 4096, a wrapped ring, mostly delivery
records with a sprinkling of events), then measures with a warm page cache, best of
``--reps`` runs:

* ``read_log(path)`` (fast numpy decoder, its default threads: one per core, at most
  four), in MiB/s of file, and ``read_log(path, workers=1)``, on one thread;
* ``read_log(slice, decoder="construct")`` on a ``--construct-mb`` MiB log of the same mix;
* ``open(path, "rb").read()``, the ceiling;
* the peak RSS of one fast read in a fresh subprocess (``ru_maxrss`` minus its value after
  the imports), against the decoded output (``memory_usage(deep=True)`` of events and
  delivery).

The plain reads and the fast reads alternate (read, fast, read, fast, ...), so that a
neighbour's load on a shared machine falls on both; besides the ratio of the best times, the
ratio of each pair is kept and their median and spread (lowest-highest) printed, with the
load average (1 min) after the pairs.

The last line printed is machine-readable::

    RESULT fast_mb_s=... construct_mb_s=... read_mb_s=... fast_vs_construct=... fast_vs_read=...
    fast_vs_read_median=... fast_vs_read_min=... fast_vs_read_max=... fast1_mb_s=...
    fast1_vs_read=... threads=... peak_rss_mb=... output_mb=... load=...

(on one line).  MB here is MiB (2**20 bytes).  Targets: fast >= 100x construct,
fast >= 0.5x read, peak RSS <= ~2x decoded output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from parsers import format as fmt  # noqa: E402
from parsers.crc import crc32c  # noqa: E402
from parsers.header import encode_header, encode_status  # noqa: E402
from parsers.model import Header, Page, Record, Status, datetime_to_clock  # noqa: E402
from parsers.records import RecordCode  # noqa: E402
from parsers.writer import encode_page  # noqa: E402

MIB = 1 << 20
PAGE_SIZE = 4096
RPP = fmt.records_per_page(PAGE_SIZE)
INTERVAL_S = 60  # one delivery record per minute of pump clock
T0 = datetime_to_clock(dt.datetime(2008, 1, 1, tzinfo=dt.UTC))
DRIFT_PPM = 20  # the pump clock runs fast by this much
N_TEMPLATES = 256
PAGE_HEAD = np.dtype(
    {
        "names": ["sync", "count", "slot", "seq"],
        "formats": ["<u2", "<u2", "<u4", "<u4"],
        "offsets": [0, 2, 4, 8],
        "itemsize": PAGE_SIZE,
    }
)
REC = np.dtype(
    {
        "names": ["clock", "code", "p4"],
        "formats": ["<u4", "<u2", "<u4"],
        "offsets": [0, 4, 12],
        "itemsize": 32,
    }
)


# ---------------------------------------------------------------------------- generation


def _event(rng: np.random.Generator, bolus_id: int) -> list[Record]:
    """One or two event records (clock 0: clocks are assigned when the pages are tiled)."""
    kind = rng.choice(["ptm", "bolus", "alarm", "stall", "prescription"], p=[0.5, 0.2, 0.15, 0.05, 0.1])
    if kind == "ptm":
        granted = int(rng.random() < 0.7)
        return [
            Record(
                0,
                RecordCode.PTM_REQUEST,
                {
                    "granted": granted,
                    "reason": 0 if granted else int(rng.integers(1, 5)),
                    "count_today": int(rng.integers(0, 6)),
                    "dose_mcg": 25.0,
                },
            )
        ]
    if kind == "bolus":
        k = ["clinician", "patient", "bridge"][int(rng.integers(0, 3))]
        dose = {"kind": k, "bolus_id": bolus_id, "dose_mcg": 50.0, "volume_ml": 0.025}
        return [
            Record(0, RecordCode.BOLUS_START, {**dose, "duration_s": 600}),
            Record(0, RecordCode.BOLUS_END, {**dose, "completed": 1}),
        ]
    if kind == "alarm":
        code = RecordCode.ALARM_RAISED if rng.random() < 0.5 else RecordCode.ALARM_CLEARED
        value = int(rng.integers(1, 3_000_000))
        return [Record(0, code, {"alarm": "low_reservoir", "value": value})]
    if kind == "stall":
        return [
            Record(0, RecordCode.MOTOR_STALL, {}),
            Record(0, RecordCode.MOTOR_STALL_RECOVERY, {"stall_s": int(rng.integers(1, 300))}),
        ]
    return [
        Record(
            0,
            RecordCode.PRESCRIPTION,
            {
                "mode": "simple_continuous",
                "step": 255,
                "step_count": 0,
                "override": 0,
                "daily_dose_mcg_day": float(rng.integers(50, 800)),
                "rate_ml_day": 0.2,
                "concentration_mcg_ml": 2000.0,
                "step_start_min": 0,
            },
        )
    ]


def _session(session_id: int) -> list[Record]:
    """A programmer session: telemetry start (a clock sync point), refill, telemetry end."""
    return [
        Record(0, RecordCode.TELEMETRY_START, {"session_id": session_id, "programmer_clock": 0}),
        Record(
            0,
            RecordCode.REFILL,
            {
                "volume_added_ml": 18.0,
                "expected_residual_ml": 2.0,
                "measured_residual_ml": 1.9,
                "concentration_mcg_ml": 2000.0,
                "reservoir_ml": 19.9,
            },
        ),
        Record(0, RecordCode.TELEMETRY_END, {"session_id": session_id}),
    ]


def template_pages(seed: int = 1) -> np.ndarray:
    """``N_TEMPLATES`` distinct full pages as a (N, PAGE_SIZE) uint8 array.

    About 97 % delivery records; the first template carries a programmer session, so the
    tiled log has a clock sync point every 256 pages (about three weeks of pump clock).
    """
    rng = np.random.default_rng(seed)
    out = []
    for t in range(N_TEMPLATES):
        recs: list[Record] = []
        if t == 0:
            recs += _session(t)
        while len(recs) < RPP:
            if rng.random() < 0.03:
                recs += _event(rng, int(rng.integers(0, 65536)))
                continue
            commanded = int(rng.integers(300, 400))
            recs.append(
                Record(
                    0,
                    RecordCode.DELIVERY,
                    {
                        "interval_s": INTERVAL_S,
                        "commanded_ml": commanded / 1e6,
                        "rotor_ml": (commanded - int(rng.integers(0, 3))) / 1e6,
                        "stalled_s": 0,
                        "reservoir_ml": float(rng.integers(2_000_000, 20_000_000)) / 1e6,
                        "mode": "simple_continuous" if rng.random() < 0.8 else "flex",
                    },
                )
            )
        out.append(encode_page(Page(0, 0, tuple(recs[:RPP])), PAGE_SIZE))
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(N_TEMPLATES, PAGE_SIZE)


def _drift(pump_clock: np.ndarray | int) -> np.ndarray | int:
    return (np.asarray(pump_clock, dtype=np.int64) - T0) * DRIFT_PPM // 1_000_000


def build_log(path: Path, n_pages: int, templates: np.ndarray, last_count: int = 40) -> int:
    """Write a valid log of ``n_pages`` pages (ring wrapped a third of the way) to ``path``.

    Pages are stored in slot order; slot ``s`` holds seq ``s + n`` for ``s < wrap`` (the
    newest pages, the last one partial) and seq ``s`` after it.  Returns the file size.
    """
    pages = templates[np.arange(n_pages) % len(templates)]  # a (n, PAGE_SIZE) copy
    flat = pages.reshape(-1)
    heads = np.ndarray((n_pages,), PAGE_HEAD, flat)
    recs = np.ndarray((n_pages, RPP), REC, flat, offset=fmt.PAGE_HEADER_SIZE, strides=(PAGE_SIZE, 32))
    wrap = n_pages // 3
    slot = np.arange(n_pages, dtype=np.int64)
    seq = np.where(slot < wrap, slot + n_pages, slot)
    heads["slot"] = slot
    heads["seq"] = seq
    rank = seq - seq.min()  # position of each page in time order
    recs["clock"] = T0 + (rank[:, None] * RPP + np.arange(RPP)[None, :]) * INTERVAL_S
    sync = recs["code"] == RecordCode.TELEMETRY_START
    recs["p4"][sync] = recs["clock"][sync] - _drift(recs["clock"][sync])  # programmer UTC
    newest = int(np.argmax(seq))
    heads["count"][newest] = last_count
    base = newest * PAGE_SIZE + fmt.PAGE_HEADER_SIZE + 32 * last_count
    flat[base : (newest + 1) * PAGE_SIZE - fmt.PAGE_TRAILER_SIZE] = 0xFF
    body = PAGE_SIZE - fmt.PAGE_TRAILER_SIZE
    mv = memoryview(flat)
    crcs = np.fromiter(
        (crc32c(mv[o : o + body]) for o in range(0, n_pages * PAGE_SIZE, PAGE_SIZE)),
        dtype=np.uint32,
        count=n_pages,
    )
    pages[:, body:] = crcs.astype("<u4").view(np.uint8).reshape(n_pages, 4)

    last_clock = int(recs["clock"][newest, last_count - 1])
    pump_now = last_clock + 30
    header = Header(
        model_ml=40,
        serial="BENCH0001",
        firmware="bench-1.0",
        implant_date=dt.date(2007, 12, 1),
        pump_clock=pump_now,
        programmer_clock=pump_now - int(_drift(pump_now)),
        programmer_id="BENCH",
        page_size=PAGE_SIZE,
        ring_slots=n_pages,
    )
    status = Status(
        reservoir_ml=12.5,
        low_reservoir_alarm_ml=2.0,
        drug_name="baclofen",
        concentration_mcg_ml=2000.0,
        mode="simple_continuous",
        daily_dose_mcg_day=400.0,
        rate_ml_day=0.2,
    )
    with open(path, "wb") as f:
        f.write(encode_header(header, n_pages))
        f.write(encode_status(status))
        f.write(memoryview(flat))
    return path.stat().st_size


# ---------------------------------------------------------------------------- measuring


def best_time(fn, reps: int) -> float:
    """Best wall time of ``reps`` calls of ``fn``."""
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def paired_times(first, second, reps: int) -> tuple[list[float], list[float]]:
    """Wall times of ``reps`` calls of ``first`` and ``second``, alternating."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):
        for fn, out in zip((first, second), times, strict=True):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return times


_RSS_CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import numpy, pandas, construct
from parsers import read_log

def hwm_kib():  # this process's own high-water mark (not inherited from the parent)
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1])

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base_hwm = hwm_kib()
print("ready", flush=True)
path = sys.stdin.readline().strip()
if path:
    log = read_log(path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = int(log.events.memory_usage(deep=True).sum() + log.delivery.memory_usage(deep=True).sum())
    print(json.dumps(dict(base_kib=base, peak_kib=peak, base_hwm_kib=base_hwm,
                          peak_hwm_kib=hwm_kib(), output_bytes=out, events=len(log.events),
                          delivery=len(log.delivery))))
"""


class RssProbe:
    """A fresh interpreter that imports the reader, then reads one log when told to.

    Started before the benchmark allocates anything: on Linux a child's ``ru_maxrss`` starts
    from its parent's high-water mark at fork (and keeps it across exec), so a child forked
    from a parent that already holds a 256 MiB log would report a meaningless baseline.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RSS_CHILD, str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the RSS probe failed to start")

    def read(self, path: Path) -> dict:
        """Peak RSS (KiB, ``ru_maxrss``) of one fast read of ``path``, and the output size."""
        out, _ = self.proc.communicate(f"{path}\n", timeout=600)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the RSS probe failed (exit status {self.proc.returncode})")
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        """Stop the probe if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=256, help="size of the big log in MiB (default 256)")
    ap.add_argument(
        "--construct-mb", type=int, default=4, help="size of the log the construct decoder reads (default 4)"
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "benchmarks" / "_work",
        help="where the logs are written (default benchmarks/_work)",
    )
    ap.add_argument(
        "--reps",
        type=int,
        default=5,
        help="repetitions, best kept (default 5; the construct decoder runs at most 2)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the generated logs")
    args = ap.parse_args(argv)

    from parsers import read_log
    from parsers.fast import default_workers

    workers = default_workers()

    args.workdir.mkdir(parents=True, exist_ok=True)
    probe = RssProbe()
    big = args.workdir / f"bench_{args.mb}mib.itblog"
    small = args.workdir / f"bench_{args.construct_mb}mib_slice.itblog"
    try:
        t = time.perf_counter()
        templates = template_pages()
        n_big = -(-args.mb * MIB // PAGE_SIZE)
        size = build_log(big, n_big, templates)
        size_small = build_log(small, max(args.construct_mb * MIB // PAGE_SIZE, 2), templates)
        print(
            f"generated {big.name}: {size / MIB:.1f} MiB, {n_big} pages of {PAGE_SIZE} B, "
            f"{n_big * RPP:,} record slots, in {time.perf_counter() - t:.1f} s"
        )

        def read_bytes(p: Path = big) -> bytes:
            with open(p, "rb") as f:
                return f.read()

        read_bytes()  # warm the page cache
        read_bytes(small)
        log = read_log(big)  # also checks the generated log is clean
        if log.problems:
            raise SystemExit(f"generated log has problems: {log.problems[:3]}")
        slog = read_log(small, decoder="construct")
        if slog.problems:
            raise SystemExit(f"generated slice has problems: {slog.problems[:3]}")
        n_rec = len(log.events) + len(log.delivery)
        del log, slog

        reads, fasts = paired_times(read_bytes, lambda: read_log(big), args.reps)
        load = os.getloadavg()[0]
        t_read, t_fast = min(reads), min(fasts)
        pair_ratios = sorted(r / f for r, f in zip(reads, fasts, strict=True))
        t_fast1 = best_time(lambda: read_log(big, workers=1), args.reps)
        t_cons = best_time(lambda: read_log(small, decoder="construct"), max(1, min(args.reps, 2)))
        t_fast_small = best_time(lambda: read_log(small), args.reps)
        rss = probe.read(big)
    finally:
        probe.close()
        if not args.keep:
            for p in (big, small):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # only if empty
                args.workdir.rmdir()

    read_mb_s = size / MIB / t_read
    fast_mb_s = size / MIB / t_fast
    fast1_mb_s = size / MIB / t_fast1
    cons_mb_s = size_small / MIB / t_cons
    peak_mb = (rss["peak_kib"] - rss["base_kib"]) / 1024
    out_mb = rss["output_bytes"] / MIB
    rows = [
        ("plain read()", size, t_read, read_mb_s, ""),
        (
            f"read_log fast ({workers} threads)",
            size,
            t_fast,
            fast_mb_s,
            f"{n_rec / t_fast / 1e6:.2f} M records/s",
        ),
        ("read_log fast (1 thread)", size, t_fast1, fast1_mb_s, f"{n_rec / t_fast1 / 1e6:.2f} M records/s"),
        ("read_log fast (slice)", size_small, t_fast_small, size_small / MIB / t_fast_small, ""),
        (
            "read_log construct (slice)",
            size_small,
            t_cons,
            cons_mb_s,
            f"{size_small / PAGE_SIZE * RPP / t_cons / 1e3:.1f} k records/s",
        ),
    ]
    print(f"\n{'what':28s} {'MiB':>8s} {'best s':>9s} {'MiB/s':>9s}")
    for name, sz, secs, rate, note in rows:
        print(f"{name:28s} {sz / MIB:8.1f} {secs:9.3f} {rate:9.1f}  {note}")
    print(f"\nfast / construct  {fast_mb_s / cons_mb_s:8.1f} x   (target >= 100)")
    print(
        f"fast / read       {fast_mb_s / read_mb_s:8.3f} x   (target >= 0.5; each pair: median "
        f"{statistics.median(pair_ratios):.3f}, {pair_ratios[0]:.3f}-{pair_ratios[-1]:.3f}; "
        f"load average {load:.2f})"
    )
    print(f"fast 1 thread / read {fast1_mb_s / read_mb_s:5.3f} x")
    print(
        f"peak RSS of a fast read  {peak_mb:8.1f} MiB  (ru_maxrss above its value after the "
        f"imports, {rss['base_kib'] / 1024:.0f} MiB; own VmHWM above its baseline: "
        f"{(rss['peak_hwm_kib'] - rss['base_hwm_kib']) / 1024:.1f} MiB)"
    )
    print(f"  includes the resident pages of the memory-mapped {size / MIB:.0f} MiB file")
    print(
        f"decoded output           {out_mb:8.1f} MiB  ({rss['events']:,} events, "
        f"{rss['delivery']:,} delivery rows)"
    )
    print(f"peak / output     {peak_mb / out_mb:8.2f} x   (target <= ~2)")
    print(
        f"RESULT fast_mb_s={fast_mb_s:.1f} construct_mb_s={cons_mb_s:.3f} "
        f"read_mb_s={read_mb_s:.1f} fast_vs_construct={fast_mb_s / cons_mb_s:.1f} "
        f"fast_vs_read={fast_mb_s / read_mb_s:.3f} fast_vs_read_median={statistics.median(pair_ratios):.3f} "
        f"fast_vs_read_min={pair_ratios[0]:.3f} fast_vs_read_max={pair_ratios[-1]:.3f} "
        f"fast1_mb_s={fast1_mb_s:.1f} fast1_vs_read={fast1_mb_s / read_mb_s:.3f} threads={workers} "
        f"peak_rss_mb={peak_mb:.1f} output_mb={out_mb:.1f} load={load:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
