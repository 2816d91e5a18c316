"""``itb cohort``: research tables, Parquet/CSV and plots for many logs, in parallel.

    itb cohort PATHS... -o DIR [--workers N] [--engine local|dask] [--scheduler ADDRESS] [--resume]

PATHS are ``.itblog`` files or directories searched for them.  Unreadable files are listed
in ``DIR/failures.csv`` and on stderr, and the run goes on (exit 0); bad arguments exit 2.
A DIR holding an earlier run's results is refused unless ``--resume`` (keep the logs done) or
``--force`` (remove them first).  Ctrl-C stops the workers and exits 130; ``--resume`` then
goes on from there.  What is written and how to run on a cluster: docs/research.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clinical.rules import DEFAULT_LABEL, ENV_VAR
from itb_device.cli.errors import Interrupted, UserError


def register(p: argparse.ArgumentParser) -> None:
    """Add the cohort options."""
    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATHS",
        help="interrogation logs (.itblog) or directories holding them (searched recursively)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="DIR",
        help="output directory (parquet/, csv/, plots/, parts/, failures.csv)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: the CPUs available); Dask LocalCluster size",
    )
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local process pool (default) or a Dask distributed cluster",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="keep the results of logs already done in DIR/parts (unchanged files only)",
    )
    again.add_argument(
        "--force",
        action="store_true",
        help="DIR holds an earlier run's results: remove them (parquet/, csv/, plots/, parts/, ...) first",
    )
    p.add_argument(
        "--procedures",
        type=Path,
        metavar="CSV",
        help="MRI/diathermy windows: columns kind,start_utc,end_utc and log (file name) or serial",
    )
    p.add_argument(
        "--procedures-from-truth",
        action="store_true",
        help="read each log's procedures and weight from NAME.truth.json beside it "
        "(synthetic cohorts from itb make-cohort --truth)",
    )
    p.add_argument(
        "--rules",
        metavar="TOML",
        help=f"clinical rules file (default: ${ENV_VAR} or {DEFAULT_LABEL})",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")


def run(args: argparse.Namespace) -> int:
    """Run the cohort; exit 0 when it ran (even with unreadable files)."""
    from analysis.research.cohort import (
        CohortError,
        CohortInterrupted,
        existing_outputs,
        remove_outputs,
        run_cohort,
    )

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.scheduler and args.engine != "dask":
        raise UserError("--scheduler needs --engine dask")
    if args.output.exists() and not args.output.is_dir():
        raise UserError(f"{args.output} exists and is not a directory")
    old = existing_outputs(args.output)
    if old and not (args.resume or args.force):
        raise UserError(
            f"-o {args.output}: the folder already holds a cohort run's results "
            f"({', '.join(old)}); pass --resume to go on with them, --force to replace them, "
            "or pick another folder"
        )
    if old and args.force:
        try:
            remove_outputs(args.output)
        except OSError as exc:
            raise UserError(f"-o {args.output}: cannot remove the earlier results: {exc}") from exc
        print(f"itb cohort: --force: removed the earlier results in {args.output} ({', '.join(old)})",
              file=sys.stderr)
    try:
        res = run_cohort(
            args.paths,
            args.output,
            workers=args.workers,
            engine=args.engine,
            scheduler=args.scheduler,
            resume=args.resume,
            procedures=args.procedures,
            truth_sidecar=args.procedures_from_truth,
            rules=args.rules,
            make_plots=not args.no_plots,
            stream=sys.stderr,
        )
    except CohortError as exc:
        raise UserError(str(exc)) from exc
    except CohortInterrupted as exc:
        resume = "; rerun with --resume to go on from there" if exc.done else ""
        raise Interrupted(f"interrupted; {exc.done} of {exc.total} logs done{resume}") from None
    print(
        f"{res.out_dir}: {res.logs} logs ({res.processed} run now, {res.resumed} resumed), "
        f"{res.combined} in the tables, {len(res.failures)} could not be read "
        f"(failures.csv); {res.seconds:.1f} s"
    )
    for name in ("summary", "daily_dose", "titration", "refills", "stalls", "alarms"):
        print(f"  {name:<11} {res.rows.get(name, 0):>9} rows  parquet/{name}/  csv/{name}.csv")
    if res.plots:
        print("  plots       " + ", ".join(res.plots))
    return 0
