"""``itb score``: run the analysis on every sample log with a truth file and compare."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    """Add the score options."""
    p.add_argument(
        "samples",
        type=Path,
        nargs="?",
        default=Path("sample_logs"),
        help="directory of NAME.itblog with NAME.truth.json (default: sample_logs)",
    )
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML)")
    p.add_argument(
        "--fail", action="store_true", help="exit 1 on any missed or false finding or risk mismatch"
    )


def run(args: argparse.Namespace) -> int:
    """Score and print the report (its last line is the RESULT line)."""
    from analysis.scoring import report, score_directory
    from itb_device.cli import UserError

    if not args.samples.is_dir():
        raise UserError(f"{args.samples} is not a directory")
    result = score_directory(args.samples, rules=args.rules)
    text = report(result)
    print(text)
    last = text.strip().splitlines()[-1]
    bad = any(f"{k}=0" not in last for k in ("missed_findings", "false_findings", "risk_mismatches"))
    return 1 if args.fail and bad else 0
