"""Time helpers: the analysis works in integer UTC seconds since the Unix epoch internally
and shows aware UTC :class:`pandas.Timestamp` values outside."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Iterator

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


# The zone explanations are written in: UTC unless a caller (the bedside check) asks for the
# user's zone with ``display_zone``.  Every time shown carries its zone's label.
_ZONE: contextvars.ContextVar[dt.tzinfo | None] = contextvars.ContextVar("itb_display_zone", default=None)


@contextlib.contextmanager
def display_zone(zone: dt.tzinfo | None) -> Iterator[None]:
    """Write explanation times in ``zone`` (labelled) inside this block."""
    token = _ZONE.set(zone)
    try:
        yield
    finally:
        _ZONE.reset(token)


def fmt(seconds: float | int | None) -> str:
    """A short readable time for explanations, with its zone label (``unknown`` for None)."""
    t = stamp(seconds)
    if t is None:
        return "unknown"
    zone = _ZONE.get()
    if zone is None:
        return t.strftime("%Y-%m-%d %H:%M UTC")
    local = t.to_pydatetime().astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or local.strftime("%z"))


def hours(seconds: float) -> str:
    """A duration in words: minutes below 2 h, hours below 3 days, else days."""
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * DAY:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} days"
