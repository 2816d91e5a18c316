"""``itb score``: run the analysis on every sample log with a truth file and compare."""

from __future__ import annotations

import argparse
from pathlib import Path

from itb_device.cli.errors import UserError

# the samples of a source checkout: <repository>/sample_logs, beside the itb_device package
BUNDLED = Path(__file__).resolve().parents[2] / "sample_logs"


def register(p: argparse.ArgumentParser) -> None:
    """Add the score options."""
    p.add_argument(
        "samples",
        type=Path,
        nargs="?",
        default=None,
        help="directory of NAME.itblog with NAME.truth.json (default: ./sample_logs, else the "
        "repository's sample_logs beside the installed package)",
    )
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML)")
    p.add_argument(
        "--fail", action="store_true", help="exit 1 on any missed or false finding or risk mismatch"
    )


def _has_samples(d: Path) -> bool:
    if not d.is_dir():
        return False
    return any(log.with_name(log.name.removesuffix(".itblog") + ".truth.json").is_file()
               for log in d.glob("*.itblog"))


def samples_dir(given: Path | None) -> Path:
    """The folder to score: ``given``, else ./sample_logs, else the checkout's sample_logs."""
    how = "pass the folder of NAME.itblog and NAME.truth.json files: itb score PATH/TO/sample_logs"
    if given is not None:
        if not given.is_dir():
            raise UserError(f"{given}: no such folder; {how}")
        if not _has_samples(given):
            raise UserError(f"{given}: holds no NAME.itblog with a NAME.truth.json beside it; {how}")
        return given
    for candidate in (Path("sample_logs"), BUNDLED):
        if _has_samples(candidate):
            return candidate
    raise UserError(f"no sample_logs folder here ({Path.cwd()}) or at {BUNDLED}; {how}")


def run(args: argparse.Namespace) -> int:
    """Score and print the report (its last line is the RESULT line)."""
    from analysis.research.scoring import report, score_directory
    from clinical.rules import get_rules
    from parsers.text import printable_lines

    samples = samples_dir(args.samples)
    rules = get_rules(args.rules) if args.rules is not None else None  # a bad file: one line, exit 2
    result = score_directory(samples, rules=rules)
    text = report(result)
    print(printable_lines(text))  # sample names and messages, escaped for the terminal
    last = text.strip().splitlines()[-1]
    bad = any(f"{k}=0" not in last for k in ("missed_findings", "false_findings", "risk_mismatches"))
    return 1 if args.fail and bad else 0
