"""Build the tidy pandas tables (events, delivery history) from decoded record columns."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pandas as pd

from .decoded import DELIVERY_FIELDS, EVENT_FIELDS, DecodedRecords
from .records import BY_CODE, DELIVERY_CODE, Field, enum_name

ITB_EPOCH_UNIX_S = 946_684_800  # 2000-01-01T00:00:00Z as Unix seconds
_NS = 1_000_000_000

_EVENT_FIELD_SPECS: dict[str, Field] = {}
for _t in BY_CODE.values():
    if _t.code != DELIVERY_CODE:
        for _f in _t.fields:
            _EVENT_FIELD_SPECS.setdefault(_f.name, _f)
_DELIVERY_SPECS = {f.name: f for f in BY_CODE[DELIVERY_CODE].fields}


def utc_times(seconds: np.ndarray) -> pd.DatetimeIndex:
    """ITB-epoch seconds as a UTC DatetimeIndex (nanosecond resolution)."""
    ns = (seconds.astype(np.int64) + ITB_EPOCH_UNIX_S) * _NS
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def enum_categorical(raw: np.ndarray, enum: type[IntEnum]) -> pd.Categorical:
    """Enum integers (NaN for absent) as a Categorical of lower-case names."""
    names = [m.name.lower() for m in enum]
    values = [int(m) for m in enum]
    present = ~np.isnan(raw) if raw.dtype.kind == "f" else np.ones(len(raw), dtype=bool)
    ints = np.where(present, raw, -1).astype(np.int64)
    extra = sorted(set(np.unique(ints[present]).tolist()) - set(values))
    cats = names + [enum_name(enum, v) for v in extra]
    lookup = {v: i for i, v in enumerate(values + extra)}
    if len(ints) and not extra and values == list(range(len(values))):
        codes = ints
    else:
        codes = np.array([lookup.get(v, -1) for v in ints.tolist()], dtype=np.int64)
    codes = np.where(present, codes, -1)
    return pd.Categorical.from_codes(codes, categories=cats)


def _event_column(f: Field, raw: np.ndarray) -> object:
    if f.enum is not None:
        return enum_categorical(raw, f.enum)
    if f.per_unit != 1:
        return raw / f.per_unit
    missing = np.isnan(raw)
    return pd.arrays.IntegerArray(np.where(missing, 0, raw).astype(np.int64), missing)


def event_names(codes: np.ndarray) -> pd.Categorical:
    """Record codes as a Categorical of record-type names (``unknown_0x00NN`` if unknown)."""
    known = [t.name for t in BY_CODE.values() if t.code != DELIVERY_CODE]
    names = [BY_CODE[c].name if c in BY_CODE else f"unknown_{c:#06x}" for c in codes.tolist()]
    cats = known + sorted(set(names) - set(known))
    return pd.Categorical(names, categories=cats)


def build_events(dec: DecodedRecords, utc: np.ndarray, uncertain: np.ndarray) -> pd.DataFrame:
    """One row per non-delivery record, in time order."""
    idx = dec.event_idx
    cols: dict[str, object] = {
        "time_utc": utc_times(utc[idx]),
        "event": event_names(dec.code[idx]),
        "code": dec.code[idx].astype(np.int64),
        "pump_clock": dec.clock[idx].astype(np.int64),
        "time_uncertain": uncertain[idx],
        "page_seq": dec.page_seq[idx],
        "offset": dec.offset[idx],
        "aux": dec.aux[idx].astype(np.int64),
    }
    for name in EVENT_FIELDS:
        cols[name] = _event_column(_EVENT_FIELD_SPECS[name], dec.events[name])
    hexes = np.full(len(idx), None, dtype=object)
    for row, payload in dec.unknown_payload.items():
        hexes[row] = payload.hex()
    cols["payload_hex"] = hexes
    df = pd.DataFrame(cols)
    order = np.argsort(utc[idx], kind="stable")
    if len(order) and np.any(np.diff(order) != 1):
        df = df.iloc[order]
    return df.reset_index(drop=True)


def build_delivery(dec: DecodedRecords, utc: np.ndarray, uncertain: np.ndarray) -> pd.DataFrame:
    """One row per delivery-history interval, in time order of the interval's end."""
    idx = dec.delivery_idx
    d = dec.delivery
    t = utc[idx]
    interval = d["interval_s"].astype(np.int64)
    cols: dict[str, object] = {
        "time_utc": utc_times(t),
        "start_utc": utc_times(t - interval),
        "interval_s": interval,
    }
    for name in DELIVERY_FIELDS:
        if name == "interval_s":
            continue
        f = _DELIVERY_SPECS[name]
        raw = d[name]
        if f.enum is not None:
            cols[name] = enum_categorical(raw, f.enum)
        elif f.per_unit != 1:
            cols[name] = raw / f.per_unit
        else:
            cols[name] = raw.astype(np.int64) if name == "stalled_s" else raw
    cols.update(
        pump_clock=dec.clock[idx].astype(np.int64),
        time_uncertain=uncertain[idx],
        page_seq=dec.page_seq[idx],
        offset=dec.offset[idx],
        aux=dec.aux[idx],
    )
    df = pd.DataFrame(cols, copy=False)
    if len(t) > 1 and np.any(np.diff(t) < 0):
        df = df.iloc[np.argsort(t, kind="stable")].reset_index(drop=True)
    return df
