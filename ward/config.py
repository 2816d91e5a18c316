"""The ward app's settings: where its data lives, where it listens, and who may open it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def zone_name(zone: dt.tzinfo) -> str:
    """An IANA name for ``zone`` that the form can show and send back (``UTC`` if none)."""
    key = getattr(zone, "key", None)
    if key and key != "localtime":
        return str(key)
    if key == "localtime":  # the machine's zone read from /etc/localtime: find its name
        try:
            text = Path("/etc/timezone").read_text(encoding="utf-8").strip()
            if text:
                return text
        except OSError:
            pass
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return "UTC"


@dataclass
class WardConfig:
    """Everything ``create_app`` needs; ``itb serve`` fills it from its options."""

    data_dir: Path  # itb serve: --data, else a per-user folder (docs/ward.md)
    max_upload_bytes: int  # itb serve: --max-upload-mb
    host: str = "127.0.0.1"
    port: int = 0  # where it listens, once it does (itb serve sets it)
    zone: str = "UTC"  # the zone the form offers first (changeable per check)
    rules_path: Path | None = None  # the clinical rules new checks use (None: $ITB_CLINICAL_RULES or default)
    access_key: str | None = None  # required to open the app when set (always set off loopback)
    mrn_system: str = "urn:itb-telemetry:mrn"  # the FHIR identifier system of the hospital's MRNs
    allowed_hosts: set[str] = field(default_factory=set)  # Host headers accepted on loopback

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
