"""Benchmark: cohort logs analysed per second (read, research tables, analyse, part file),
with 1 and with 2 worker processes, and the scaling between them, over several runs.

The cohort is the seeded synthetic one of ``itb make-cohort`` (``itb_device.sim.population``),
generated once into ``benchmarks/_work/cohort`` (one-year logs; other ``--years`` get their
own directory) and reused: pump i is the same whatever ``--pumps`` is, so a larger run only
adds pumps.  Each measurement runs the cohort runner's own local engine
(``analysis.research.cohort.run_local``: a process pool fed chunks of logs, each worker
writing its logs' part files and sending back only a few fields per log) into a fresh
output directory, timed from pool start to the last result.  The runs alternate (1 worker,
2 workers, 1, 2, ...) so that a neighbour's load falls on both; each run's scaling is its
2-worker rate over the 1-worker rate just before it, and the medians are reported with
their spread (lowest-highest) and the load average (1 min) at the end of each measurement.
The parent process's own CPU time is reported too: it only hands out chunks and counts
results.  The combine step (Parquet, CSV) is not part of the per-log rate and is timed once
separately.

    python benchmarks/cohort.py [--pumps 1000] [--years 1] [--runs 3] [--gen-workers 2]

Last line: ``RESULT logs_per_s_1=... logs_per_s_2=... scaling=... scaling_min=...
scaling_max=... runs=...`` (on one line; the rates and the scaling are medians).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from analysis.research.cohort import combine, discover, plan, run_local
from itb_device.sim.population import CohortSpec, cohort_scenarios, write_pump

WORK = Path(__file__).resolve().parent / "_work"


def _write(scenario: dict, out: Path) -> Path:
    return write_pump(scenario, out)


def make_cohort(out: Path, pumps: int, years: float, workers: int) -> list[Path]:
    """The first ``pumps`` logs of the seed-0 cohort in ``out`` (simulating only the missing)."""
    out.mkdir(parents=True, exist_ok=True)
    spec = CohortSpec(pumps=pumps, years=years, seed=0)
    scenarios = list(cohort_scenarios(spec))
    todo = [sc for sc in scenarios if not (out / f"{sc['name']}.itblog").exists()]
    if todo:
        print(f"simulating {len(todo)} of {pumps} pumps ({years:g} years each) into {out} ...", flush=True)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            for i, _ in enumerate(pool.map(_write, todo, [out] * len(todo), chunksize=8), start=1):
                if sys.stderr.isatty() and i % 10 == 0:
                    print(f"\r  {i}/{len(todo)}", end="", file=sys.stderr)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return [out / f"{sc['name']}.itblog" for sc in scenarios]


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(logs: list[Path], workers: int, out: Path) -> tuple[float, float, int, float]:
    """(logs per second, seconds, failures, the parent's CPU seconds) of the per-log work on
    ``workers`` processes."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "parts").mkdir(parents=True)
    found, _ = discover(logs)
    tasks, _ = plan(found, out)
    cpu = _cpu_self()
    t0 = time.perf_counter()
    results = run_local(tasks, workers)
    dt = time.perf_counter() - t0
    ok = sum(r.ok for r in results)
    return ok / dt, dt, len(results) - ok, _cpu_self() - cpu


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pumps", type=int, default=1000, help="logs in the cohort (default 1000)")
    ap.add_argument("--years", type=float, default=1.0, help="years of history per log (default 1)")
    ap.add_argument("--runs", type=int, default=3, help="measurements with each worker count (default 3)")
    ap.add_argument("--gen-workers", type=int, default=2, help="processes to simulate the cohort with")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark's output directories")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    cohort_dir = WORK / ("cohort" if args.years == 1.0 else f"cohort-{args.years:g}y")
    logs = make_cohort(cohort_dir, args.pumps, args.years, args.gen_workers)
    size_mb = sum(p.stat().st_size for p in logs) / 2**20
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cohort          {len(logs)} logs, {args.years:g} years each, {size_mb:.0f} MiB ({cohort_dir})")
    print(f"machine         {cpus} CPUs available, load average {os.getloadavg()[0]:.2f} at start")
    rates: dict[int, list[float]] = {1: [], 2: []}
    scalings: list[float] = []
    for run in range(1, args.runs + 1):
        for w in (1, 2):
            out = WORK / f"cohort-out-{w}"
            rate, dt, failed, parent = measure(logs, w, out)
            rates[w].append(rate)
            print(f"run {run} workers={w}  {rate:.2f} logs/s  ({dt:.1f} s, {failed} failed, parent CPU "
                  f"{parent:.2f} s, load average {os.getloadavg()[0]:.2f})", flush=True)
        scalings.append(rates[2][-1] / rates[1][-1])
        print(f"run {run} scaling   {scalings[-1]:.2f}x", flush=True)
    out = WORK / "cohort-out-2"
    t0 = time.perf_counter()
    found, _ = discover(logs)
    tasks, _ = plan(found, out)
    rows, _, _ = combine(out, [(t.log_id, t.part) for t in tasks])
    print(f"combine         {time.perf_counter() - t0:.1f} s for {rows['summary']} logs "
          f"({rows['daily_dose']} daily rows; Parquet + CSV, no plots)")
    if not args.keep:
        for w in (1, 2):
            shutil.rmtree(WORK / f"cohort-out-{w}", ignore_errors=True)
    print(f"workers=1       {_spread(rates[1])} logs/s, median (lowest-highest) of {args.runs} runs")
    print(f"workers=2       {_spread(rates[2])} logs/s")
    print(f"scaling         {_spread(scalings)}x from 1 to 2 workers (ideal 2.00)")
    med1, med2 = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"RESULT logs_per_s_1={med1:.2f} logs_per_s_2={med2:.2f} scaling={statistics.median(scalings):.2f} "
          f"scaling_min={min(scalings):.2f} scaling_max={max(scalings):.2f} runs={args.runs}")


if __name__ == "__main__":
    main()
