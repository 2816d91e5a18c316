"""``itb check``: the two-hour check after an MRI or surgery with diathermy (guideline 2).

Prints a verdict (OK, REVIEW or URGENT), what happened in plain clinical language, the
evidence with times, the withdrawal and overdose risk with the guideline's actions, and what
telemetry cannot show.  Times typed by the user are local wall-clock time (the machine's zone,
or ``--tz``) unless they carry an offset; output times are in the same zone and labelled.
Exit status 0 when the check ran, whatever the verdict (``--fail-on`` for scripts), 2 for bad
arguments or an unreadable log.  ``--json`` adds ``source``: the log's file name, SHA-256 and
pump serial.  Loads no plotting library unless ``--report`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from itb_device.cli.errors import UserError
from itb_device.cli.options import local_zone, parse_user_time, rules_for

if TYPE_CHECKING:  # the analysis is imported when a check runs, not when the command line starts
    from analysis.check import CheckResult
    from parsers import InterrogationLog

PRELOAD = ("analysis.check", "analysis.timeutil")  # imported before run(), see cli.main._load

EPILOG = """\
exit status:
  0  the check ran, WHATEVER THE VERDICT (OK, REVIEW or URGENT), unless --fail-on is given
  1  --fail-on review and the verdict is REVIEW or URGENT; --fail-on urgent and it is URGENT
  2  bad arguments or an unreadable log or rules file (one line on stderr)

--json: docs/check-json.md (its "source" names the log file, its SHA-256 and the pump serial)."""


def register(p: argparse.ArgumentParser) -> None:
    """Add the check options."""
    p.add_argument("log", type=Path, help="interrogation log (.itblog)")
    p.add_argument("--after", required=True, choices=("mri", "diathermy"), help="the procedure")
    p.add_argument(
        "--end",
        required=True,
        metavar="TIME",
        help="when the procedure ended, e.g. '2026-03-10 15:00' (local) or with an offset",
    )
    p.add_argument("--start", metavar="TIME", help="when it started (default: assumed from --end)")
    p.add_argument("--weight-kg", type=float, help="the child's weight, for the oral baclofen dose")
    p.add_argument(
        "--tz", help="time zone for typed and shown times (default: the machine's), e.g. Australia/Sydney"
    )
    p.add_argument("--json", action="store_true", help="print the documented JSON (docs/check-json.md)")
    p.add_argument(
        "--report", type=Path, metavar="FILE", help="also write a printable report (.pdf or .html)"
    )
    p.add_argument(
        "--fail-on",
        choices=("review", "urgent"),
        help="exit 1 when the verdict is at least this (for scripts); without it the exit status "
        "is 0 whatever the verdict",
    )
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML)")


def run(args: argparse.Namespace) -> int:
    """Run the check and print it."""
    zone = local_zone(args.tz)
    end = parse_user_time(args.end, zone, "--end")
    start = parse_user_time(args.start, zone, "--start") if args.start else None
    if start is not None and start > end:
        raise UserError("--start is after --end")
    if args.report is not None:  # before the analysis: a bad path must not come after a verdict
        from itb_device.cli.options import check_output_file

        check_output_file(args.report, "--report", (".pdf", ".html", ".htm"))
        if args.report.suffix.lower() == ".pdf" and importlib.util.find_spec("matplotlib") is None:
            raise UserError(f"--report {args.report}: a PDF report needs matplotlib, a dependency of "
                            "itb-telemetry: reinstall it from the repository root with "
                            ".venv/bin/pip install -e .")

    from analysis.check import VERDICTS, CheckInputError, check
    from analysis.timeutil import Clock
    from parsers import read_log

    rules = rules_for(args.rules, args.weight_kg)  # one plausible weight range for every command
    log = read_log(args.log)
    try:
        result = check(log, args.after, end, start, weight_kg=args.weight_kg, rules=rules, clock=Clock(zone))
    except CheckInputError as exc:  # the times entered do not fit this log: a user's error
        raise UserError(f"{args.log}: --end {args.end}: {exc}") from None
    if args.json:
        doc = result.to_dict(zone)
        doc["source"] = source_of(args.log, log)
        print(json.dumps(doc, indent=1))
    else:
        sys.stdout.write(render_text(result, log, colour=_colour_ok()))
    if args.report is not None:
        try:
            from analysis.reports import write_check_report

            write_check_report(result, log, args.report)
        except ImportError as exc:
            raise UserError(f"--report {args.report}: reports need matplotlib ({exc}); reinstall "
                            "itb-telemetry from the repository root with .venv/bin/pip install -e .") from exc
        print(f"report written to {args.report}", file=sys.stderr)
    if args.fail_on and VERDICTS.index(result.verdict) >= VERDICTS.index(args.fail_on.upper()):
        return 1
    return 0


def source_of(path: Path, log: InterrogationLog) -> dict[str, str | None]:
    """What a check was computed from: the log's file name (as given), its SHA-256 and the pump
    serial in its header (``None`` when the header is damaged)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    serial = log.header.serial if log.header_ok else None
    return {"file": str(path), "sha256": digest.hexdigest(), "pump_serial": serial or None}


def _colour_ok() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


_COLOURS = {"OK": "\033[1;32m", "REVIEW": "\033[1;33m", "URGENT": "\033[1;41;97m"}


def render_text(result: CheckResult, log: InterrogationLog, *, colour: bool = False) -> str:
    """The check as plain text for a terminal, times with the check's clock (``result.clock``);
    colour only for the verdict, when asked; control characters from the log escaped."""
    from analysis.risk import checklist
    from parsers.text import printable

    a = result.assessment
    p = result.procedure
    clock = result.clock
    verdict = result.verdict
    shown = f"{_COLOURS[verdict]} {verdict} \033[0m" if colour else verdict
    out = [
        f"ITB pump check after {'MRI' if p.kind == 'mri' else 'surgery with diathermy'}"
        f"  -  pump {log.header.serial or 'unknown'} ({log.header.model_ml} mL)",
        f"Procedure: {clock.time(p.start_s)} to {clock.time(p.end_s)}"
        + ("  (start assumed)" if result.assumed_start else ""),
        f"Interrogated: {clock.time(result.interrogated_s)} ({result.hours_after_end:.1f} h after the end)",
        "",
        f"VERDICT: {verdict}",
    ]
    out += [f"  - {r}" for r in result.reasons]
    out += [f"  (note: {n})" for n in result.notes]
    out += ["", "WHAT HAPPENED"] + [f"  {line}" for line in result.summary]
    for k in ("withdrawal", "overdose"):
        r = a.risks[k]
        out += ["", f"{k.upper()} RISK: {r.level.replace('_', ' ').upper()}"]
        out += [f"  - {x}" for x in r.reasons]
        if r.actions and r.level != "none":
            out.append("  What the guideline says:")
            out += [f"    [{x.section}] {x.text}" for x in r.actions]
    items = checklist(a.risks)
    if items:
        out += ["", "TO COLLECT BEFORE CALLING KIDS REHAB (tick each)"]
        out += [f"  [ ] {c.item}  ({c.condition + ', ' if c.condition else ''}{c.section})"
                for c in items]
    out += ["", "EVIDENCE FROM THE LOG"]
    if result.evidence:
        out += [f"  {clock.time(e.time_s)}  {e.text}  (byte {e.offset})" for e in result.evidence]
    else:
        out.append("  no logged events in the window")
    if a.findings:
        out += ["", "FINDINGS (whole log)"]
        out += [f"  * {f.kind.replace('_', ' ')} [{f.severity}]: {f.explanation}" for f in a.findings]
    out += ["", "WHAT THE PUMP'S TELEMETRY CANNOT SHOW"] + [f"  - {x}" for x in a.limitations]
    out += ["", a.disclaimer, ""]
    # text from the log (serial, drug name ...) is shown escaped: it cannot fake or recolour a line
    lines = [printable(line) for line in out]
    lines[lines.index(f"VERDICT: {verdict}")] = f"VERDICT: {shown}"
    return "\n".join(lines)
