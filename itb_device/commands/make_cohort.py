"""``itb make-cohort``: simulate a synthetic cohort of pumps (reproducible from its seed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    """Add the make-cohort options."""
    p.add_argument("pumps", type=int, help="how many pumps")
    p.add_argument("-o", "--output", type=Path, required=True, help="directory for the logs")
    p.add_argument("--years", type=float, default=1.0, help="years of history per pump")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", default="2025-01-06T09:00:00Z", help="when every pump's history starts")
    p.add_argument("--truth", action="store_true", help="also write each pump's ground truth")
    p.add_argument("--workers", type=int, default=1, help="processes to use")


def run(args: argparse.Namespace) -> int:
    """Generate and write the cohort; already written logs are kept (resumable)."""
    from concurrent.futures import ProcessPoolExecutor

    from itb_device.cli import UserError
    from itb_device.sim.cohort import CohortSpec, cohort_scenarios

    if args.pumps < 1 or args.years <= 0 or args.workers < 1:
        raise UserError("pumps, years and workers must be positive")
    args.output.mkdir(parents=True, exist_ok=True)
    spec = CohortSpec(args.pumps, args.years, args.seed, args.start)
    todo = [sc for sc in cohort_scenarios(spec) if not (args.output / f"{sc['name']}.itblog").exists()]
    done = args.pumps - len(todo)
    with ProcessPoolExecutor(args.workers) as pool:
        for i, _ in enumerate(
            pool.map(_write, todo, [args.output] * len(todo), [args.truth] * len(todo), chunksize=4), start=1
        ):
            if sys.stderr.isatty():
                print(f"\r{done + i}/{args.pumps} pumps", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{args.output}: {args.pumps} pumps ({len(todo)} simulated now, {done} already there)")
    return 0


def _write(scenario: dict, out: Path, truth: bool) -> Path:
    from itb_device.sim.cohort import write_pump

    return write_pump(scenario, out, truth)
