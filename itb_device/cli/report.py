"""``itb report``: the printable interrogation report (PDF or HTML) at any time.

Pump status, refill planning (the next refill date, the drug's stability limit, the battery),
the dose history with its titration steps, the findings and the withdrawal and overdose risk
with the guideline's actions.  Times are shown in the machine's zone or ``--tz``, labelled.
Exit status 0 when the report was written, 2 for bad arguments or an unreadable log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from itb_device.cli.errors import UserError


def register(p: argparse.ArgumentParser) -> None:
    """Add the report options."""
    p.add_argument("log", type=Path, help="interrogation log (.itblog)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help="the report to write: FILE.pdf or FILE.html",
    )
    p.add_argument(
        "--tz", help="time zone for the times shown (default: the machine's), e.g. Australia/Sydney"
    )
    p.add_argument("--weight-kg", type=float, help="the child's weight, for the oral baclofen dose")
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML)")


def run(args: argparse.Namespace) -> int:
    """Analyse the log and write the report."""
    from itb_device.cli.options import local_zone, rules_for

    if args.output.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise UserError(f"{args.output.name}: the report must be a .pdf or .html file")
    from itb_device.cli.options import check_output_file
    from parsers.text import printable

    check_output_file(args.output, "-o")
    zone = local_zone(args.tz)

    from analysis import analyse
    from analysis.timeutil import Clock
    from parsers import read_log

    rules = rules_for(args.rules, args.weight_kg)  # one plausible weight range for every command
    log = read_log(args.log)
    for p in log.problems:
        print(f"itb report: {p.severity}: {printable(p)}", file=sys.stderr)
    assessment = analyse(log, weight_kg=args.weight_kg, rules=rules, clock=Clock(zone))
    try:
        from analysis.reports import write_interrogation_report

        write_interrogation_report(log, args.output, assessment=assessment, rules=rules)
    except ImportError as exc:
        raise UserError(f"-o {args.output}: reports need matplotlib ({exc}); reinstall itb-telemetry "
                        "from the repository root with .venv/bin/pip install -e .") from exc
    print(f"report written to {args.output}", file=sys.stderr)
    return 0
