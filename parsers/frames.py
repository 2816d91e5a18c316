"""Build the tidy pandas tables (events, delivery history) from decoded record columns."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pandas as pd

from .decoded import DELIVERY_FIELDS, EVENT_FIELDS, DecodedRecords
from .model import ITB_EPOCH_UNIX_S
from .records import BY_CODE, DELIVERY_CODE, Field, enum_name

_NS = 1_000_000_000

_EVENT_FIELD_SPECS: dict[str, Field] = {}
for _t in BY_CODE.values():
    if _t.code != DELIVERY_CODE:
        for _f in _t.fields:
            _EVENT_FIELD_SPECS.setdefault(_f.name, _f)
_DELIVERY_SPECS = {f.name: f for f in BY_CODE[DELIVERY_CODE].fields}
_UNSIGNED = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32}


_NAT = np.iinfo(np.int64).min
MAX_UTC_S = 7_900_000_000  # 2250-05-05: beyond it nanosecond times overflow; such a clock is damage


def _sort_key(seconds: np.ndarray) -> np.ndarray:
    """Times for ordering rows: unrepresentable ones (shown as NaT) go last."""
    if not len(seconds) or (seconds.max() <= MAX_UTC_S and seconds.min() >= -ITB_EPOCH_UNIX_S):
        return seconds
    bad = (seconds > MAX_UTC_S) | (seconds < -ITB_EPOCH_UNIX_S)
    return np.where(bad, np.iinfo(np.int64).max, seconds)


def utc_times(seconds: np.ndarray, missing: np.ndarray | None = None) -> pd.DatetimeIndex:
    """ITB-epoch seconds as a UTC DatetimeIndex (nanosecond resolution); ``missing`` rows,
    and times too far out to represent, become NaT."""
    ns = seconds.astype(np.int64)  # a fresh array, converted in place below
    out_of_range = len(ns) and (ns.max() > MAX_UTC_S or ns.min() < -ITB_EPOCH_UNIX_S)
    bad = ((ns > MAX_UTC_S) | (ns < -ITB_EPOCH_UNIX_S)) if out_of_range else None
    if missing is not None:
        bad = missing if bad is None else bad | missing
    ns += ITB_EPOCH_UNIX_S
    ns *= _NS
    if bad is not None and bad.any():
        ns[bad] = _NAT
    return pd.DatetimeIndex(ns.view("M8[ns]"), dtype="datetime64[ns, UTC]")


def _lookup_codes(ints: np.ndarray, mapping: dict[int, int], missing: np.ndarray | None) -> np.ndarray:
    """Category codes for integer values through a small lookup table (no per-row Python)."""
    top = max([*mapping, int(ints.max()) if len(ints) else 0]) + 1
    lut = np.full(top, -1, dtype=np.int16)
    for value, code in mapping.items():
        lut[value] = code
    codes = lut[ints]
    if missing is not None:
        codes[missing] = -1
    return codes


_DTYPES: dict[tuple[str, ...], pd.CategoricalDtype] = {}


def _dtype(categories: list[str]) -> pd.CategoricalDtype:
    """A CategoricalDtype per category list, built once (building one validates its labels)."""
    key = tuple(categories)
    dt = _DTYPES.get(key)
    if dt is None:
        dt = _DTYPES[key] = pd.CategoricalDtype(categories, ordered=False)
    return dt


def enum_categorical(raw: np.ndarray, enum: type[IntEnum]) -> pd.Categorical:
    """Enum integers (NaN for absent) as a Categorical of lower-case names; values the enum
    does not know become ``unknown_<n>`` categories, never dropped."""
    values = [int(m) for m in enum]
    if raw.dtype.kind == "u" and raw.dtype.itemsize == 1:  # fast path: a 256-entry table
        lut = np.full(256, -1, dtype=np.int8)
        lut[values] = np.arange(len(values))
        codes = lut[raw]
        if not (codes < 0).any():
            return pd.Categorical.from_codes(
                codes, dtype=_dtype([m.name.lower() for m in enum]), validate=False
            )
    if raw.dtype.kind == "f":
        missing = np.isnan(raw)
        ints = np.where(missing, 0, raw).astype(np.int64)
        seen = np.flatnonzero(np.bincount(ints[~missing])) if len(ints) else np.array([], dtype=np.int64)
    else:
        missing = None
        ints = raw
        seen = np.flatnonzero(np.bincount(ints)) if len(ints) else np.array([], dtype=np.int64)
    extra = sorted(set(seen.tolist()) - set(values))
    cats = [m.name.lower() for m in enum] + [enum_name(enum, v) for v in extra]
    codes = _lookup_codes(ints, {v: i for i, v in enumerate(values + extra)}, missing)
    return pd.Categorical.from_codes(codes, dtype=_dtype(cats), validate=False)


def _event_column(f: Field, raw: np.ndarray) -> object:
    if f.enum is not None:
        return enum_categorical(raw, f.enum)
    if f.per_unit != 1:
        return raw / f.per_unit
    missing = np.isnan(raw)
    return pd.arrays.IntegerArray(np.where(missing, 0, raw).astype(np.int64), missing)


def event_names(codes: np.ndarray) -> pd.Categorical:
    """Record codes as a Categorical of record-type names (``unknown_0x00NN`` if unknown)."""
    known = [(int(t.code), t.name) for t in BY_CODE.values() if t.code != DELIVERY_CODE]
    seen = np.unique(codes).tolist()
    extra = [(c, f"unknown_{c:#06x}") for c in seen if c not in BY_CODE or c == DELIVERY_CODE]
    mapping = {c: i for i, (c, _) in enumerate(known + extra)}
    cats = [name for _, name in known + extra]
    return pd.Categorical.from_codes(
        _lookup_codes(codes.astype(np.int64), mapping, None), dtype=_dtype(cats), validate=False
    )


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
    t = _sort_key(utc[idx])
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        df = df.iloc[np.argsort(t, kind="stable")].reset_index(drop=True)
    return df


def delivery_column_dtype(name: str) -> np.dtype:
    """The dtype of a delivery column in the table (enum columns: their int8 category codes)."""
    f = _DELIVERY_SPECS[name]
    if f.enum is not None:
        return np.dtype(np.int8)
    if f.per_unit != 1:
        return np.dtype(np.float64)
    if name in ("interval_s", "stalled_s"):
        return np.dtype(np.int64)
    return np.dtype(_UNSIGNED[f.ctype])


def convert_delivery(name: str, raw: np.ndarray, out: np.ndarray) -> None:
    """Raw on-disk integers of one delivery field into its table column (``out``); enum
    fields become category codes of the enum's own names, -1 for a value it does not know.
    The fast decoder calls this chunk by chunk while the records are still in cache."""
    f = _DELIVERY_SPECS[name]
    if f.enum is not None:
        out[:] = _ENUM_LUT[f.enum][raw]
    elif f.per_unit != 1:
        np.divide(raw, f.per_unit, out=out)
    else:
        out[:] = raw


def _enum_lut(enum: type[IntEnum]) -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int8)
    lut[[int(m) for m in enum]] = np.arange(len(enum))
    return lut


_ENUM_LUT = {f.enum: _enum_lut(f.enum) for f in _DELIVERY_SPECS.values() if f.enum is not None}


def build_delivery(dec: DecodedRecords, utc: np.ndarray, uncertain: np.ndarray) -> pd.DataFrame:
    """One row per delivery-history interval, in time order of the interval's end
    (``time_utc``; the interval began ``interval_s`` seconds earlier)."""
    idx = dec.delivery_idx
    d = dec.delivery
    t = utc[idx]
    cols: dict[str, object] = {"time_utc": utc_times(t)}
    ready = dec.delivery_columns or {}
    for name in DELIVERY_FIELDS:
        f = _DELIVERY_SPECS[name]
        if name in ready:  # converted by the decoder already
            col = ready[name]
            if f.enum is not None:
                if (col < 0).any():  # a value the enum does not know: name it from the raw values
                    cols[name] = enum_categorical(d[name], f.enum)
                else:
                    cols[name] = pd.Categorical.from_codes(
                        col, dtype=_dtype([m.name.lower() for m in f.enum]), validate=False
                    )
            else:
                cols[name] = col
            continue
        raw = d[name]
        if f.enum is not None:
            cols[name] = enum_categorical(raw, f.enum)
        elif f.per_unit != 1:
            cols[name] = raw / f.per_unit
        elif name in ("interval_s", "stalled_s"):
            cols[name] = raw.astype(np.int64)
        else:  # reserved words keep their on-disk width, whichever decoder made them
            cols[name] = raw.astype(_UNSIGNED[f.ctype], copy=False)
    clock = dec.delivery_clock if dec.delivery_clock is not None else dec.clock[idx]
    aux = dec.delivery_aux if dec.delivery_aux is not None else dec.aux[idx]
    cols.update(  # narrow integer types keep a table of millions of rows small and quick
        pump_clock=clock.astype(np.uint32, copy=False),
        time_uncertain=uncertain[idx],
        page_seq=(dec.delivery_page_seq if dec.delivery_page_seq is not None else dec.page_seq[idx]).astype(
            np.uint32, copy=False
        ),
        offset=dec.delivery_offset if dec.delivery_offset is not None else dec.offset[idx],
        aux=aux.astype(np.uint16, copy=False),
    )
    df = pd.DataFrame(cols, copy=False)
    t = _sort_key(t)
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        df = df.iloc[np.argsort(t, kind="stable")].reset_index(drop=True)
    return df
