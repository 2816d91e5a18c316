"""The plot panels of the reports, built from an assessment and its log: delivery (prescribed,
commanded, rotor-confirmed), the reservoir, the event strip and the prescribed daily dose.

Each builder returns a panel of plain numbers (:mod:`.blocks`); ``figures`` draws it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from parsers import InterrogationLog

from ..assessment import Assessment
from ..planning import DoseStep, RefillPlan
from ..timeutil import HOUR, Clock, to_seconds
from .blocks import DeliveryPanel, DosePanel, EventPanel, Mark, ReservoirPanel, Span


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    out, i, n = [], 0, len(mask)
    while i < n:
        if mask[i]:
            j = i
            while j + 1 < n and mask[j + 1]:
                j += 1
            out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def _stall_spans(a: Assessment, now_s: int) -> list[Span]:
    out: list[Span] = []
    for f in a.findings:
        if f.kind in ("motor_stall", "stall_ongoing") and f.start_s is not None:
            end = f.end_s if f.end_s is not None else now_s
            if not any(s.start_s == f.start_s for s in out):
                out.append(Span(f.start_s, end, "motor stalled"))
    tl = a.reconstruction
    if not tl.empty:  # stalled time the pump counted but no finding covers
        st = tl["stalled_s"].to_numpy(dtype=float)
        a0, b0 = to_seconds(tl.index), to_seconds(tl["end"])
        for i, j in _runs(np.nan_to_num(st) > 0):
            if not any(s.start_s < b0[j] and s.end_s > a0[i] for s in out):
                out.append(Span(int(a0[i]), int(b0[j]), "motor stalled"))
    return out


def _gap_spans(tl: pd.DataFrame) -> list[Span]:
    if tl.empty:
        return []
    a0, b0 = to_seconds(tl.index), to_seconds(tl["end"])
    miss = tl["history_missing"].to_numpy(dtype=bool)
    return [Span(int(a0[i]), int(b0[j]), "no history") for i, j in _runs(miss)]


def _bin_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Means of ``k`` consecutive values (NaN only where all are NaN)."""
    n = len(x) // k * k
    if k <= 1 or n == 0:
        return x
    blocks = x[:n].reshape(-1, k)
    ok = np.isfinite(blocks)
    total = np.where(ok, blocks, 0.0).sum(axis=1)
    count = ok.sum(axis=1)
    out = np.full(len(blocks), np.nan)
    np.divide(total, count, out=out, where=count > 0)
    if n < len(x):
        tail = x[n:]
        out = np.append(out, np.nanmean(tail) if np.isfinite(tail).any() else np.nan)
    return out


def delivery_panel(
    a: Assessment, procedures: list[Span], now_s: int, since_s: int | None = None, bin_h: int = 1
) -> DeliveryPanel:
    """The delivery panel of an assessment from ``since_s``, averaged over ``bin_h`` hours."""
    tl = a.reconstruction
    if tl.empty:
        z = np.zeros(0)
        return DeliveryPanel(z.astype(np.int64), z.astype(np.int64), z, z, z, [], [], procedures, now_s)
    a0, b0 = to_seconds(tl.index), to_seconds(tl["end"])
    sel = b0 > (since_s if since_s is not None else a0[0])
    if not sel.any():
        sel[:] = True
    step = max(1, round(bin_h * HOUR / max(1, int(np.median(b0 - a0))))) if bin_h > 1 else 1
    a0, b0 = a0[sel], b0[sel]
    cols = [tl[c].to_numpy(dtype=float)[sel] for c in ("prescribed_mcg_h", "commanded_mcg_h", "rotor_mcg_h")]
    w1 = int(a.window_s[1])
    over = b0 > w1  # the last bin runs past the history: its prescription covers only part of it
    if over.any():
        part = (np.minimum(b0, w1) - a0).astype(float)
        scale = np.where(over & (part > 0), (b0 - a0) / np.maximum(part, 1.0), 1.0)
        cols[0] = cols[0] * scale
        b0 = np.where(over, np.maximum(np.minimum(b0, w1), a0), b0)
    if step > 1:
        cols = [_bin_mean(c, step) for c in cols]
        starts = a0[::step]
        ends = np.append(a0[step::step], b0[-1])[: len(starts)]
        a0, b0 = starts, ends
    prescribed, commanded, rotor = cols
    return DeliveryPanel(
        a0, b0, prescribed, commanded, rotor, _stall_spans(a, now_s), _gap_spans(tl), procedures, now_s
    )


def reservoir_panel(
    log: InterrogationLog,
    a: Assessment,
    rules: Any,
    now_s: int,
    procedures: list[Span],
    plan: RefillPlan | None = None,
    clock: Clock | None = None,
) -> ReservoirPanel:
    """The reservoir panel (with the projection to the alarm when a plan is given)."""
    tl = a.reconstruction
    t = to_seconds(tl["end"]) if not tl.empty else np.zeros(0, np.int64)
    ml = tl["reservoir_ml"].to_numpy(dtype=float) if not tl.empty else np.zeros(0)
    st = log.status
    refills = []
    if not log.events.empty:
        refills = to_seconds(log.events.loc[log.events["event"] == "refill", "time_utc"]).tolist()
    projection: list[tuple[int, float]] = []
    note = ""
    if plan is not None and plan.reservoir_ml is not None:
        m = plan.milestone("empty")
        low = plan.milestone("low_alarm")
        if m is not None and m.when_s is not None and m.days:
            projection = [(now_s, plan.reservoir_ml), (m.when_s, plan.empty_ml)]
            if clock is not None and low is not None and low.when_s is not None:
                note = (
                    f"projection at the programmed rate: alarm {clock.date(low.when_s)}, "
                    f"empty {clock.date(m.when_s)}"
                )
    return ReservoirPanel(
        t,
        ml,
        st.low_reservoir_alarm_ml if log.status_ok else None,
        float(rules.number("pump", "empty_reservoir_ml")),
        [int(x) for x in refills],
        now_s,
        st.reservoir_ml if log.status_ok else None,
        projection,
        procedures,
        note=note,
    )


def _pair_spans(
    ev: pd.DataFrame, t: np.ndarray, start: str, end: str, key: str | None, now_s: int, open_to_now: bool
) -> list[Mark]:
    out: list[Mark] = []
    pending: dict[Any, int] = {}
    for i in np.flatnonzero(ev["event"].isin([start, end]).to_numpy()):
        row = ev.iloc[int(i)]
        k = row[key] if key else None
        if row["event"] == start:
            if k in pending:
                out.append(Mark(pending.pop(k), None, _label(k)))
            pending[k] = int(t[i])
        elif k in pending:
            out.append(Mark(pending.pop(k), int(t[i]), _label(k)))
        else:
            out.append(Mark(int(t[i]), None, _label(k)))
    for k, s in pending.items():
        out.append(Mark(s, now_s if open_to_now else None, _label(k)))
    return out


def _label(k: Any) -> str:
    if k is None or (isinstance(k, float) and np.isnan(k)):
        return ""
    text = str(k).replace("_", " ")
    return text.upper() if text in ("eri", "eos") else text


def event_panel(log: InterrogationLog, a: Assessment, now_s: int, procedures: list[Span]) -> EventPanel:
    """The event strip: stalls, alarms, refills, boluses, programming, sessions."""
    ev = log.events
    lanes: list[tuple[str, list[Mark]]] = []
    stalls = [Mark(s.start_s, s.end_s) for s in _stall_spans(a, now_s)]
    if ev.empty:
        t = np.zeros(0, np.int64)
        lanes = [("Stalls", stalls)] + [
            (n, []) for n in ("Alarms", "Refills", "Boluses", "Programming", "Sessions")
        ]
        return EventPanel(lanes, now_s, procedures)
    t = to_seconds(ev["time_utc"])
    e = ev["event"].to_numpy()
    stalls += [Mark(int(x), None, "stall logged") for x in t[e == "motor_stall"]]
    stalls += [Mark(int(x), None, "recovery logged") for x in t[e == "motor_stall_recovery"]]
    active = set(log.status.active_alarms) if log.status_ok else set()
    alarms = _pair_spans(ev, t, "alarm_raised", "alarm_cleared", "alarm", now_s, open_to_now=False)
    alarms = [
        Mark(
            m.start_s,
            m.end_s
            if m.end_s is not None
            else (now_s if m.label.lower().replace(" ", "_") in active else None),
            m.label,
        )
        for m in alarms
    ]
    refills = [Mark(int(x), None, "refill") for x in t[e == "refill"]]
    boluses = _pair_spans(ev, t, "bolus_start", "bolus_end", "bolus_id", now_s, open_to_now=False)
    boluses += [Mark(int(x), None, "patient request") for x in t[e == "ptm_request"]]
    programs = [Mark(int(x), None, "program") for x in sorted(set(t[e == "prescription"].tolist()))]
    sessions = _pair_spans(ev, t, "telemetry_start", "telemetry_end", None, now_s, open_to_now=False)
    sessions += [Mark(int(x), None, "clock set") for x in t[e == "clock_set"]]
    sessions += [Mark(int(x), None, "pump reset") for x in t[e == "pump_reset"]]
    lanes = [
        ("Stalls", stalls),
        ("Alarms", alarms),
        ("Refills", refills),
        ("Boluses", boluses),
        ("Programming", programs),
        ("Sessions", sessions),
    ]
    return EventPanel(lanes, now_s, procedures)


def dose_panel(steps: list[DoseStep], a: Assessment, now_s: int) -> DosePanel:
    """The prescribed daily dose from the program changes in the log (``dose_steps``), or, with
    none, the daily means of the reconstructed prescription (marked inferred)."""
    if steps:
        t = np.array([s.time_s for s in steps] + [now_s], dtype=np.int64)
        d = np.array([s.daily_dose_mcg for s in steps] + [steps[-1].daily_dose_mcg])
        return DosePanel(t, d, [s.time_s for s in steps[1:]], now_s)
    tl = a.reconstruction
    if tl.empty:
        return DosePanel(np.zeros(0, np.int64), np.zeros(0), [], now_s, inferred=True)
    daily = (tl["prescribed_basal_mcg_h"] * 24).resample("1D").mean()
    return DosePanel(to_seconds(daily.index), daily.to_numpy(dtype=float), [], now_s, inferred=True)
