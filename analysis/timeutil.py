"""Time helpers: the analysis works in integer UTC seconds since the Unix epoch internally
and shows aware UTC :class:`pandas.Timestamp` values outside; :class:`Clock` writes times for
people, in one zone, labelled."""

from __future__ import annotations

import datetime as dt
import math
import time as _time

import numpy as np
import pandas as pd

HOUR = 3600
DAY = 86_400


def to_seconds(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC datetimes (aware or naive-as-UTC) as int64 Unix seconds; NaT becomes the minimum int."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.to_numpy(dtype="datetime64[s]").astype(np.int64)


def ts_seconds(when: pd.Timestamp | dt.datetime | str) -> int:
    """One moment as Unix seconds (naive values are taken as UTC)."""
    t = pd.Timestamp(when)
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    return int(t.value // 1_000_000_000)


def stamp(seconds: float | int | None) -> pd.Timestamp | None:
    """Unix seconds as an aware UTC Timestamp (None stays None)."""
    if seconds is None or (isinstance(seconds, float) and np.isnan(seconds)):
        return None
    return pd.Timestamp(round(float(seconds)), unit="s", tz="UTC")


def stamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    """An array of Unix seconds as an aware UTC DatetimeIndex."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(seconds, dtype=np.int64), unit="s", utc=True))


class Clock:
    """The one way times are shown to people: Unix seconds in a zone, always labelled.

    ``Clock()`` shows UTC; ``Clock(zone)`` the user's zone.  It is passed explicitly, from the
    command line through ``analyse`` (``Context.clock``, ``Assessment.clock``) and the check to
    the reports, so every text and every label of one run name the same zone.  ``at_s`` is the
    moment ``label`` describes (the zone's abbreviation and offset then; now when not given)."""

    def __init__(self, zone: dt.tzinfo | None = None, at_s: float | None = None) -> None:
        self.zone: dt.tzinfo = zone if zone is not None else dt.UTC
        self.at_s = at_s

    def __repr__(self) -> str:
        return f"Clock({self.zone!s})"

    def _local(self, seconds: float | int | None) -> dt.datetime | None:
        if seconds is None or math.isnan(float(seconds)):
            return None
        return dt.datetime.fromtimestamp(round(float(seconds)), self.zone)

    def time(self, seconds: float | int | None) -> str:
        """'YYYY-MM-DD HH:MM ABBR', e.g. '2026-03-11 01:00 AEDT' or '2026-03-10 14:00 UTC'
        (``unknown`` for None or NaN)."""
        t = self._local(seconds)
        if t is None:
            return "unknown"
        return t.strftime("%Y-%m-%d %H:%M ") + (t.tzname() or t.strftime("%z"))

    def date(self, seconds: float | int | None) -> str:
        """'Tue 2026-04-21' (``unknown`` for None or NaN)."""
        t = self._local(seconds)
        return "unknown" if t is None else t.strftime("%a %Y-%m-%d")

    @property
    def label(self) -> str:
        """The zone's label at ``at_s`` (now when not given), as :func:`zone_label`."""
        return self.label_at(self.at_s if self.at_s is not None else _time.time())

    def label_at(self, seconds: float | int) -> str:
        """The zone's label at ``seconds``: 'Australia/Sydney (AEDT, UTC+11:00)', or 'UTC'."""
        return zone_label(self.zone, seconds)

    def same_zone(self, other: Clock) -> bool:
        """True if ``other`` shows times in this clock's zone."""
        return self.zone == other.zone or str(self.zone) == str(other.zone)


def zone_label(zone: dt.tzinfo, at_s: float | int) -> str:
    """'Australia/Sydney (AEST, UTC+10:00)', or 'UTC'."""
    t = dt.datetime.fromtimestamp(int(at_s), zone)
    off = t.strftime("%z") or "+0000"
    offset = f"UTC{off[:3]}:{off[3:5]}"
    abbr = t.tzname() or ""
    key = getattr(zone, "key", None)
    if offset == "UTC+00:00" and abbr in ("UTC", "", "Z") and key in (None, "UTC", "Etc/UTC", "localtime"):
        return "UTC"
    name = key if key and key != "localtime" else None
    inner = ", ".join(x for x in (abbr if abbr and not abbr.startswith(("+", "-")) else "", offset) if x)
    return f"{name} ({inner})" if name else inner


def hours(seconds: float) -> str:
    """A duration in words: minutes below 2 h, hours below 3 days, else days."""
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * DAY:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} days"
