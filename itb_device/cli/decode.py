"""``itb decode``: a log's status, events or delivery history as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from itb_device.cli.errors import UserError

if TYPE_CHECKING:
    from parsers import InterrogationLog

FORMATS = ("table", "csv", "json", "parquet")


def register(p: argparse.ArgumentParser) -> None:
    """Add the decode options."""
    p.add_argument("log", type=Path, help="interrogation log (.itblog)")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--events",
        action="store_const",
        dest="what",
        const="events",
        help="the event table (prescriptions, boluses, refills, alarms, ...)",
    )
    what.add_argument(
        "--delivery",
        action="store_const",
        dest="what",
        const="delivery",
        help="the periodic delivery history",
    )
    what.add_argument(
        "--status",
        action="store_const",
        dest="what",
        const="status",
        help="header and status snapshot",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: table on a terminal, else csv; json for --status)",
    )
    p.add_argument("-o", "--output", type=Path, help="write to this file (atomically) instead of stdout")
    p.add_argument("--strict", action="store_true", help="fail on any damage instead of recovering")
    p.set_defaults(what=None)


def run(args: argparse.Namespace) -> int:
    """Decode and print or export."""
    from parsers import read_log
    from parsers.writer import atomic_write_bytes

    if args.output is not None:
        from itb_device.cli.options import check_output_file

        check_output_file(args.output, "-o")
    from parsers.text import printable

    log = read_log(args.log, strict=args.strict)
    for p in log.problems:
        print(f"itb decode: {p.severity}: {printable(p)}", file=sys.stderr)
    what = args.what or "summary"
    fmt = args.format or (
        "json"
        if what == "status"
        else "table"
        if what == "summary" or (args.output is None and sys.stdout.isatty())
        else "csv"
    )
    if what in ("summary", "status"):
        data = _status_dict(log)
        if fmt == "json":
            text = json.dumps(data, indent=2, default=str) + "\n"
        elif fmt == "table":
            text = _summary_text(log, data)
        else:
            raise UserError(f"--status and the summary print as table or json, not {fmt}")
        return _emit(text.encode(), args.output, atomic_write_bytes)
    df = log.events if what == "events" else log.delivery
    if fmt == "parquet":
        if args.output is None:
            raise UserError("--format parquet needs -o FILE")
        try:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
        except ImportError as exc:
            raise UserError("--format parquet needs pyarrow, a dependency of itb-telemetry: reinstall it "
                            "from the repository root with .venv/bin/pip install -e .") from exc
        return _emit(buf.getvalue(), args.output, atomic_write_bytes)
    if fmt == "csv":
        text = df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    elif fmt == "json":
        text = df.to_json(orient="records", date_format="iso", date_unit="s", indent=1) + "\n"
    else:
        import pandas as pd

        shown = df.dropna(axis=1, how="all") if what == "events" else df
        with pd.option_context(
            "display.max_rows",
            200 if args.output is None else None,
            "display.width",
            200,
            "display.max_columns",
            None,
        ):
            text = shown.to_string(index=False) + "\n"
        text += f"({len(df)} rows; times are UTC)\n"
    return _emit(text.encode(), args.output, atomic_write_bytes)


def _emit(data: bytes, output: Path | None,
          atomic_write_bytes: Callable[[Path, Iterable[bytes]], None]) -> int:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        atomic_write_bytes(output, [data])
    return 0


def _status_dict(log: InterrogationLog) -> dict:
    h, s = log.header, log.status
    return {
        "file": str(log.path),
        "header": {
            **asdict(h),
            "clock_drift_s": h.clock_drift_s,
            "interrogated_at_utc": h.interrogated_at.isoformat(),
        },
        "header_crc_ok": log.header_ok,
        "status": asdict(s),
        "status_crc_ok": log.status_ok,
        "records": {
            "events": len(log.events),
            "delivery": len(log.delivery),
            "pages": len(log.pages),
        },
        "history_utc": _span(log),
        "problems": [
            {"kind": p.kind, "severity": p.severity, "offset": p.offset, "message": p.message}
            for p in log.problems
        ],
    }


def _span(log: InterrogationLog) -> list[str] | None:
    times = [t for t in (log.delivery["time_utc"], log.events["time_utc"]) if len(t)]
    if not times:
        return None
    return [min(t.min() for t in times).isoformat(), max(t.max() for t in times).isoformat()]


def _summary_text(log: InterrogationLog, d: dict) -> str:
    h, s = log.header, log.status
    span = d["history_utc"]
    lines = [
        f"{log.path}",
        f"  pump        {h.model_ml} mL reservoir, serial {h.serial}, firmware {h.firmware}, "
        f"implanted {h.implant_date}",
        f"  interrogated {h.interrogated_at:%Y-%m-%d %H:%M:%S} UTC (pump clock "
        f"{h.clock_drift_s:+d} s from UTC){'' if log.header_ok else '  [HEADER CRC BAD]'}",
        f"  drug        {s.drug_name} {s.concentration_mcg_ml:g} mcg/mL, reservoir "
        f"{s.reservoir_ml:.2f} mL (alarm at {s.low_reservoir_alarm_ml:g} mL)"
        f"{'' if log.status_ok else '  [STATUS CRC BAD]'}",
        f"  program     {s.mode}, {s.daily_dose_mcg_day:g} mcg/day ({s.rate_ml_day:.4f} mL/day)"
        + (f", {len(s.flex_steps)} flex steps" if s.flex_steps else ""),
        f"  motor       {s.motor_state}; battery {s.battery_state}; alarms "
        f"{', '.join(s.active_alarms) or 'none'}",
        f"  history     {len(log.delivery)} delivery intervals, {len(log.events)} events, "
        f"{len(log.pages)} pages" + (f", {span[0]} to {span[1]} UTC" if span else ""),
    ]
    errors = sum(p.severity == "error" for p in log.problems)
    warnings = len(log.problems) - errors
    if errors:
        lines.append(
            f"  problems    {errors} errors, {warnings} warnings (listed above): damaged "
            "or missing history cannot be read as normal"
        )
    elif warnings:
        lines.append(f"  problems    {warnings} warnings (listed above), no damage")
    else:
        lines.append("  problems    none found in the file")
    from parsers.text import printable

    return "\n".join(printable(line) for line in lines) + "\n"  # the log's text fields, escaped
