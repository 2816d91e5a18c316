"""``itb make-cohort``: simulate a synthetic cohort of pumps (reproducible from its seed).

The folder gets ``make-cohort.json`` (the cohort's pumps, years, seed and start) beside the
logs.  Running the same command again finishes an interrupted cohort (logs already written
are kept); a folder that holds other logs is refused unless ``--force``, which removes the
``.itblog`` and ``.truth.json`` files there (and says so) and starts again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from itb_device.cli.errors import Interrupted, UserError

MANIFEST = "make-cohort.json"


def register(p: argparse.ArgumentParser) -> None:
    """Add the make-cohort options."""
    p.add_argument("pumps", type=int, help="how many pumps")
    p.add_argument("-o", "--output", type=Path, required=True, help="directory for the logs")
    p.add_argument("--years", type=float, default=1.0, help="years of history per pump")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--start",
        default="2025-01-06T09:00:00Z",
        metavar="DATE",
        help="when every pump's history starts: a date or time, UTC unless it has an offset "
        "(default: 2025-01-06T09:00:00Z)",
    )
    p.add_argument("--truth", action="store_true", help="also write each pump's ground truth")
    p.add_argument("--workers", type=int, default=1, help="processes to use")
    p.add_argument(
        "--force",
        action="store_true",
        help="remove the logs already in the folder (another cohort's, this one's, or any .itblog "
        "and .truth.json there) and start again",
    )


def run(args: argparse.Namespace) -> int:
    """Generate and write the cohort; already written logs of the same cohort are kept (resumable)."""
    from concurrent.futures import ProcessPoolExecutor

    from itb_device.sim.population import CohortSpec, cohort_scenarios, parse_start

    if args.pumps < 1:
        raise UserError(f"pumps {args.pumps}: give how many pumps, at least 1")
    if not 0 < args.years <= 50:
        raise UserError(f"--years {args.years:g}: give the years of history per pump, from above 0 to 50")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: give at least 1")
    try:
        start = parse_start(args.start, args.years)
    except ValueError as exc:
        raise UserError(f"--start {exc}") from exc
    out: Path = args.output
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a folder")
    spec = CohortSpec(args.pumps, args.years, args.seed, start)
    wanted = {"pumps": spec.pumps, "years": spec.years, "seed": spec.seed, "start": spec.start}
    created = not out.exists()
    if not created:
        from parsers.atomic import remove_stale_temp_files

        remove_stale_temp_files(out)  # half-written logs of a run that was killed
        _check_folder(out, wanted, args.force)
    had_manifest = (out / MANIFEST).exists()

    def missing(sc: dict) -> bool:
        log = out / f"{sc['name']}.itblog"
        return not log.exists() or (args.truth and not log.with_suffix(".truth.json").exists())

    todo = [sc for sc in cohort_scenarios(spec) if missing(sc)]
    done = args.pumps - len(todo)
    written = 0
    pool = None
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
            _write_json(out / MANIFEST, wanted)
        except OSError as exc:
            raise UserError(f"-o {out}: cannot write there: {exc.strerror or exc}") from exc
        from analysis.research.cohort import (  # one home for the Ctrl-C handling
            ignore_sigint,
            sigint_deferred,
        )

        pool = ProcessPoolExecutor(args.workers, initializer=ignore_sigint)
        with sigint_deferred():  # the workers start (fork) now and leave Ctrl-C to this process
            results = pool.map(_write, todo, [out] * len(todo), [args.truth] * len(todo))
        for error in results:
            if error is not None:
                raise UserError(error)
            written += 1
            if sys.stderr.isatty():
                print(f"\r{done + written}/{args.pumps} pumps", end="", file=sys.stderr, flush=True)
    except BaseException as exc:
        if pool is not None:  # the workers finish the pump they are writing (files are atomic)
            pool.shutdown(wait=True, cancel_futures=True)
        if sys.stderr.isatty() and written:
            print(file=sys.stderr)
        there = sum(not missing(sc) for sc in cohort_scenarios(spec))
        if there == 0:  # nothing of the cohort was written: leave nothing behind
            if created:
                shutil.rmtree(out, ignore_errors=True)
            elif not had_manifest:
                (out / MANIFEST).unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(
                f"interrupted; {there} of {args.pumps} pumps written, "
                "run the same command again to finish the cohort"
            ) from None
        raise
    pool.shutdown()
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{out}: {args.pumps} pumps ({len(todo)} simulated now, {done} already there)")
    return 0


def _check_folder(out: Path, wanted: dict, force: bool) -> None:
    """Refuse a folder holding logs that are not this cohort's (unless ``force``: remove them)."""
    logs = sorted(out.glob("*.itblog"))
    truths = sorted(out.glob("*.truth.json"))
    manifest = out / MANIFEST
    try:
        there = json.loads(manifest.read_text()) if manifest.is_file() else None
    except (OSError, ValueError):
        there = {}
    if there is None and not logs:
        return  # an empty folder, or one without logs
    if there is None:
        what = f"{len(logs)} .itblog files that are not from itb make-cohort"
    else:
        name = "the same cohort" if there == wanted else "another cohort"
        what = f"{name} (" + ", ".join(f"{k} {there.get(k)}" for k in wanted) + f"; {len(logs)} logs)"
    if force:
        for f in [*logs, *truths, manifest]:
            f.unlink(missing_ok=True)
        print(f"itb make-cohort: --force: removed {what} from {out}", file=sys.stderr)
        return
    if there == wanted:
        return  # the same cohort: finish it
    same = there and {k: v for k, v in there.items() if k != "pumps"} == {
        k: v for k, v in wanted.items() if k != "pumps"
    }
    if same and there and isinstance(there.get("pumps"), int) and there["pumps"] <= wanted["pumps"]:
        return  # the same cohort, grown: its first pumps are the logs already there
    raise UserError(
        f"-o {out}: the folder already holds {what}; pass --force to replace them or pick another folder"
    )


def _write_json(path: Path, data: dict) -> None:
    from parsers.writer import atomic_write_bytes

    atomic_write_bytes(path, [(json.dumps(data, indent=1) + "\n").encode()])


def _write(scenario: dict, out: Path, truth: bool) -> str | None:
    """Simulate and write one pump; returns None, or a one-line error naming the pump."""
    from itb_device.errors import DeviceError
    from itb_device.sim.population import write_pump

    try:
        write_pump(scenario, out, truth)
    except (ValueError, DeviceError, OSError) as exc:
        return f"cohort pump {scenario['name']}: {exc}"
    return None
