"""Argument types every command shares: typed times and zones, and output paths checked before
any work is done (a bad one is one line naming the option, exit 2)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from itb_device.cli.errors import UserError

if TYPE_CHECKING:
    from clinical.rules import Rules


def local_zone(name: str | None) -> dt.tzinfo:
    """``name`` (IANA), else $TZ, else the machine's zone (/etc/localtime), else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise UserError(f"--tz {name!r} is not a known time zone (e.g. Australia/Sydney, UTC)") from exc
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return dt.UTC


def parse_user_time(text: str, zone: dt.tzinfo, option: str) -> dt.datetime:
    """A typed time: ISO-like, local to ``zone`` unless it carries an offset."""
    cleaned = text.strip().replace("Z", "+00:00")
    try:
        t = dt.datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise UserError(
            f"{option} {text!r}: use a date and time such as '2026-03-10 15:00' or '2026-03-10T15:00+11:00'"
        ) from exc
    if t.tzinfo is not None:
        return t
    early, late = t.replace(tzinfo=zone, fold=0), t.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():  # the clocks change around this wall time
        back = early.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
        what = "happens twice (clocks go back)" if back == t else "does not exist (clocks go forward)"
        raise UserError(
            f"{option} {text!r} {what} in {zone}: give the time with its UTC offset, "
            f"e.g. {early.isoformat(timespec='minutes')} or {late.isoformat(timespec='minutes')}"
        )
    return early


def rules_for(path: Path | None, weight_kg: float | None = None) -> Rules:
    """The clinical rules (``--rules`` or the default), and the child's ``--weight-kg`` checked
    against their one plausible range (``[patient] weight_kg_range``): a bad file or weight is a
    UserError naming the option."""
    from clinical.rules import InputError, get_rules

    try:
        rules = get_rules(path)
        if weight_kg is not None:
            rules.check_weight(weight_kg)
    except InputError as exc:
        raise UserError(f"--weight-kg: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    return rules


def check_output_file(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse (UserError) an output file that cannot be written: its folder is missing or not
    writable, it is a folder, or its suffix is not one of ``suffixes`` (when given).  Removes the
    temporary files an earlier, killed write of the same file left behind."""
    from parsers.atomic import remove_stale_temp_files  # here: `itb --version` loads no pandas
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: the folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: the file exists and is not writable")
    remove_stale_temp_files(parent, path.name)  # what a killed earlier run left of this file
