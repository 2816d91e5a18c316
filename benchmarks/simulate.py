"""Benchmark: simulated pump-years per wall-clock second on one core.

A year of typical therapy with hourly delivery history (the normal_year sample scenario:
titration, quarterly refills), run several times with different seeds; the time includes
building the log image an interrogation reads.  Optionally writes the logs too.

    python benchmarks/simulate.py [--runs 10] [--write]

Last line: ``RESULT pump_years_per_s=... s_per_pump_year=... runs=...``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from itb_device.sim.scenario import load_scenario, run_scenario
from parsers.writer import encode_log

SCENARIO = Path(__file__).resolve().parents[1] / "sample_logs" / "scenarios" / "normal_year.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="also encode each log to bytes")
    args = ap.parse_args()
    sc = load_scenario(SCENARIO)
    years = (sc.timeline[-1]["_t"] - sc.start) / (365.0 * 86400)
    run_scenario(sc, seed=0)  # warm-up: imports, caches
    times = []
    for seed in range(1, args.runs + 1):
        t0 = time.perf_counter()
        result = run_scenario(sc, seed=seed)
        if args.write:
            with tempfile.TemporaryFile() as f:
                f.write(encode_log(result.image))
        times.append(time.perf_counter() - t0)
    best, total = min(times), sum(times)
    rate = years * len(times) / total
    print(f"scenario        {SCENARIO.name} ({years:.2f} pump-years, hourly history)")
    print(f"runs            {len(times)}  (write log: {args.write})")
    print(f"mean s/run      {total / len(times):.3f}   best {best:.3f}")
    print(f"pump-years/s    {rate:.2f}  (target >= 5)")
    print(
        f"RESULT pump_years_per_s={rate:.2f} s_per_pump_year={total / len(times) / years:.4f} "
        f"runs={len(times)}"
    )


if __name__ == "__main__":
    main()
