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
_EVENT_ROW = {name: i for i, name in enumerate(EVENT_FIELDS)}
_EVENT_FLOATS = [n for n, f in _EVENT_FIELD_SPECS.items() if f.enum is None and f.per_unit != 1]


_NAT = np.iinfo(np.int64).min
MAX_UTC_S = 7_900_000_000  # 2250-05-05: beyond it nanosecond times overflow; such a clock is damage


def representable(seconds: np.ndarray) -> bool:
    """True when every time can be shown (the usual case: then none needs masking)."""
    return not len(seconds) or bool(seconds.max() <= MAX_UTC_S and seconds.min() >= -ITB_EPOCH_UNIX_S)


def _sort_key(seconds: np.ndarray, shown: bool) -> np.ndarray:
    """Times for ordering rows: unrepresentable ones (shown as NaT) go last (``shown``:
    :func:`representable` said they all can be shown)."""
    if shown:
        return seconds
    bad = (seconds > MAX_UTC_S) | (seconds < -ITB_EPOCH_UNIX_S)
    return np.where(bad, np.iinfo(np.int64).max, seconds)


def utc_times(
    seconds: np.ndarray,
    missing: np.ndarray | None = None,
    *,
    inplace: bool = False,
    shown: bool | None = None,
) -> pd.DatetimeIndex:
    """ITB-epoch seconds as a UTC DatetimeIndex (nanosecond resolution); ``missing`` rows,
    and times too far out to represent, become NaT.  ``inplace`` converts the caller's
    int64 array itself into the nanoseconds (no copy of a column of millions of rows);
    ``shown``: what :func:`representable` says of ``seconds``, if the caller knows."""
    ns = seconds if inplace and seconds.dtype == np.int64 else seconds.astype(np.int64)
    if shown is None:
        shown = representable(ns)
    bad = None if shown else (ns > MAX_UTC_S) | (ns < -ITB_EPOCH_UNIX_S)
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


def enum_categorical(
    raw: np.ndarray, enum: type[IntEnum], missing: np.ndarray | None = None
) -> pd.Categorical:
    """Enum integers as a Categorical of lower-case names (``missing`` rows: NaN); values the
    enum does not know become ``unknown_<n>`` categories, never dropped."""
    values = [int(m) for m in enum]
    names = [m.name.lower() for m in enum]
    ints = raw.astype(np.int64, copy=False)
    present = ints if missing is None else ints[~missing]
    seen = np.flatnonzero(np.bincount(present)) if len(present) else np.array([], dtype=np.int64)
    extra = sorted(set(seen.tolist()) - set(values))
    cats = names + [enum_name(enum, v) for v in extra]
    codes = _lookup_codes(ints, {v: i for i, v in enumerate(values + extra)}, missing)
    return pd.Categorical.from_codes(codes, dtype=_dtype(cats), validate=False)


def _missing(codes: np.ndarray) -> dict[str, np.ndarray]:
    """For each event field, the rows whose record type lacks it (one pass per record type,
    into one block for all the fields)."""
    present = np.zeros((len(EVENT_FIELDS), len(codes)), dtype=bool)
    for c in np.unique(codes).tolist():
        t = BY_CODE.get(c)
        if t is None or c == DELIVERY_CODE:
            continue
        rows = codes == c
        for f in t.fields:
            present[_EVENT_ROW[f.name]] |= rows
    return dict(zip(EVENT_FIELDS, np.logical_not(present, out=present), strict=True))


def _event_column(f: Field, raw: np.ndarray, missing: np.ndarray, out: np.ndarray | None = None) -> object:
    if f.enum is not None:
        return enum_categorical(raw, f.enum, missing)
    if f.per_unit != 1:
        col = np.divide(raw, f.per_unit, out=out)
        col[missing] = np.nan
        return col
    return pd.arrays.IntegerArray(raw, missing)


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


def build_events(
    dec: DecodedRecords, seconds: np.ndarray, uncertain: np.ndarray, *, shown: bool | None = None
) -> pd.DataFrame:
    """One row per non-delivery record, in time order (``seconds``: each row's UTC, ITB
    epoch, consumed; ``shown``: what :func:`representable` says of them, if known)."""
    shown = representable(seconds) if shown is None else shown
    order = _time_order(seconds, shown)
    code = dec.event_code
    cols: dict[str, object] = {
        "time_utc": utc_times(seconds, inplace=True, shown=shown),
        "event": event_names(code),
        "code": code.astype(np.int64),
        "pump_clock": dec.event_clock.astype(np.int64),
        "time_uncertain": uncertain,
        "page_seq": dec.event_page_seq,
        "offset": dec.event_offset,
        "aux": dec.event_aux.astype(np.int64),
    }
    missing = _missing(code)
    floats = dict(zip(_EVENT_FLOATS, np.empty((len(_EVENT_FLOATS), len(code))), strict=True))  # one block
    for name in EVENT_FIELDS:
        f = _EVENT_FIELD_SPECS[name]
        cols[name] = _event_column(f, dec.events[name], missing[name], floats.get(name))
    hexes = np.full(len(code), None, dtype=object)
    for row, payload in dec.unknown_payload.items():
        hexes[row] = payload.hex()
    cols["payload_hex"] = hexes
    df = pd.DataFrame(cols, copy=False)
    return df if order is None else df.take(order).reset_index(drop=True)


def _time_order(seconds: np.ndarray, shown: bool) -> np.ndarray | None:
    """The row order that sorts ``seconds`` (stable; unrepresentable times last), or None
    when they are already in order (the usual case)."""
    t = _sort_key(seconds, shown)
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        return np.argsort(t, kind="stable")
    return None


def build_delivery(
    dec: DecodedRecords, seconds: np.ndarray, uncertain: np.ndarray, *, shown: bool | None = None
) -> pd.DataFrame:
    """One row per delivery-history interval, in time order of the interval's end
    (``time_utc``; the interval began ``interval_s`` seconds earlier).  ``seconds`` (each
    row's UTC, ITB epoch) is consumed: it becomes the ``time_utc`` column (``shown``: what
    :func:`representable` says of them, if known)."""
    shown = representable(seconds) if shown is None else shown
    order = _time_order(seconds, shown)
    cols: dict[str, object] = {"time_utc": utc_times(seconds, inplace=True, shown=shown)}
    for name in DELIVERY_FIELDS:
        f = _DELIVERY_SPECS[name]
        col = dec.delivery[name]
        if f.enum is not None:
            if len(col) and col.min() < 0:  # a value the enum does not know: name it from the raw values
                cols[name] = enum_categorical(dec.delivery_raw[name], f.enum)
            else:
                cols[name] = pd.Categorical.from_codes(
                    col, dtype=_dtype([m.name.lower() for m in f.enum]), validate=False
                )
        else:
            cols[name] = col
    cols.update(  # narrow integer types keep a table of millions of rows small and quick
        pump_clock=dec.delivery_clock,
        time_uncertain=uncertain,
        page_seq=dec.delivery_page_seq,
        offset=dec.delivery_offset,
        aux=dec.delivery_aux,
    )
    df = pd.DataFrame(cols, copy=False)
    return df if order is None else df.take(order).reset_index(drop=True)
