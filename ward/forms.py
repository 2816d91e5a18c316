"""The new-check form: what ``itb check`` refuses, the form refuses, with the same messages,
each shown next to its field.

Times and zones are read by the command line's own functions
(``itb_device.cli.options.parse_user_time`` and ``local_zone``), the weight by the rules'
``check_weight`` (``[patient] weight_kg_range``); the messages name the form's field where the
command line names its option (``End '2026-02-30 10:00': use a date and time such as ...``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from itb_device.cli.errors import UserError
from itb_device.cli.options import local_zone, parse_user_time

from . import analysis_adapter as engine
from .config import is_loopback

MAX_TEXT = {"mrn": 40, "patient_name": 120, "checked_by": 80}
PROCEDURES = {"mri": "MRI", "diathermy": "Surgery with diathermy"}


@dataclass
class CheckForm:
    """The form's fields as typed (strings), shown again when something is refused."""

    procedure: str = "mri"
    start: str = ""
    end: str = ""
    zone: str = "UTC"
    weight_kg: str = ""
    mrn: str = ""
    patient_name: str = ""
    checked_by: str = ""
    port: str = ""  # a serial port from the list
    url: str = ""  # or a pump address typed in
    log: str = ""  # the SHA-256 of a log kept from before ("Check again")

    @classmethod
    def from_mapping(cls, data: Any, default_zone: str) -> CheckForm:
        out = cls(zone=default_zone)
        for f in fields(cls):
            value = data.get(f.name)
            if value is not None:
                setattr(out, f.name, str(value).strip())
        if not out.zone:
            out.zone = default_zone
        return out

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ValidCheck:
    """The form read: what ``analysis.check.check`` takes, plus who and for whom."""

    procedure: str
    start: dt.datetime | None
    end: dt.datetime
    zone: dt.tzinfo
    zone_name: str
    weight_kg: float | None
    mrn: str | None
    patient_name: str | None
    checked_by: str | None
    typed: dict[str, str] = field(default_factory=dict)


def _cli_message(exc: Exception, option: str) -> str:
    """A command-line message with its option's name taken off the front (the field is named by
    the label the message sits next to)."""
    text = str(exc)
    return text[len(option):].lstrip(" :") if text.startswith(option) else text


def validate(form: CheckForm, rules: Any) -> tuple[ValidCheck | None, dict[str, str]]:
    """The form read as ``itb check`` reads its options; errors by field name."""
    errors: dict[str, str] = {}
    if form.procedure not in PROCEDURES:
        errors["procedure"] = "Choose the procedure: MRI or surgery with diathermy"
    zone: dt.tzinfo = dt.UTC
    try:
        zone = local_zone(form.zone or "UTC")
    except UserError as exc:  # "--tz 'X' is not a known time zone (e.g. Australia/Sydney, UTC)"
        errors["zone"] = _cli_message(exc, "--tz")
    end = start = None
    if not form.end:
        errors["end"] = "Enter when the procedure ended, e.g. '2026-03-10 15:00'"
    elif "zone" not in errors:
        try:
            end = parse_user_time(form.end, zone, "End")
        except UserError as exc:
            errors["end"] = str(exc)
    if form.start and "zone" not in errors:
        try:
            start = parse_user_time(form.start, zone, "Start")
        except UserError as exc:
            errors["start"] = str(exc)
    if start is not None and end is not None and start > end:
        errors["start"] = "Start is after End"  # itb check: "--start is after --end"
    weight = None
    if form.weight_kg:
        try:
            weight = float(form.weight_kg.replace(",", "."))
            if not math.isfinite(weight):
                raise ValueError
        except ValueError:
            errors["weight_kg"] = f"{form.weight_kg!r} is not a number: give the weight in kg, e.g. 22.5"
        else:
            try:
                engine.check_weight(rules, weight)
            except ValueError as exc:  # clinical.rules.InputError: the range in [patient] weight_kg_range
                errors["weight_kg"] = str(exc)
    for name, limit in MAX_TEXT.items():
        value = getattr(form, name)
        if len(value) > limit:
            errors[name] = f"At most {limit} characters"
        elif value and not value.isprintable():
            errors[name] = "Letters, digits, spaces and punctuation only (no control characters)"
    if errors or end is None:
        return None, errors
    return (
        ValidCheck(
            procedure=form.procedure,
            start=start,
            end=end,
            zone=zone,
            zone_name=form.zone or "UTC",
            weight_kg=weight,
            mrn=form.mrn or None,
            patient_name=form.patient_name or None,
            checked_by=form.checked_by or None,
            typed={"start": form.start, "end": form.end},
        ),
        {},
    )


# ----- the pump to read -------------------------------------------------------------------------

_DEVICE = re.compile(r"^(/dev/(tty[A-Za-z0-9._-]+|pts/[0-9]+|cu\.[A-Za-z0-9._-]+|serial/[A-Za-z0-9/._:-]+)"
                     r"|COM[0-9]{1,3})$")


def serial_ports() -> list[tuple[str, str]]:
    """The serial ports of this computer (pyserial's listing): (device, description)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        desc = p.description if p.description and p.description != "n/a" else ""
        out.append((p.device, desc))
    return out


def pump_url(form: CheckForm) -> tuple[str | None, str | None]:
    """The pump to read (a listed or typed serial port, or ``socket://`` on this computer: the
    simulated pump); (url, None) or (None, the message)."""
    url = form.url or form.port
    if not url:
        return None, "Choose the pump's serial port, or type its address (socket://127.0.0.1:PORT)"
    listed = {d for d, _ in serial_ports()}
    if url in listed or _DEVICE.match(url):
        return url, None
    parts = urlsplit(url)
    if parts.scheme == "socket":
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.hostname and port and is_loopback(parts.hostname) and not parts.path.strip("/"):
            return url, None
        return None, (f"{url!r}: a socket:// pump must be on this computer, e.g. socket://127.0.0.1:PORT "
                      "as itb pump-sim prints it")
    return None, (f"{url!r} is not a serial port of this computer nor socket://127.0.0.1:PORT "
                  "(the simulated pump)")
