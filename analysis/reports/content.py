"""What the printable reports say, as plain blocks the PDF and HTML renderers both draw, so the
two formats always carry the same content in the same order.

Nothing here plots or imports matplotlib: plots are described as panels of numbers
(:class:`DeliveryPanel`, :class:`ReservoirPanel`, :class:`EventPanel`, :class:`DosePanel`)
that ``figures`` draws.  Times are Unix seconds (UTC); the analysis' :class:`Clock` (the
check's or the assessment's ``clock``, the one that wrote their texts) shows them in the user's
zone with its label, so every label names the zone the times are in.  Strings from the log are
kept as they are: each renderer escapes them for its format.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from parsers import InterrogationLog

from ..assessment import Assessment
from ..findings import Finding
from ..planning import DoseStep, RefillPlan, dose_steps
from ..risk import checklist
from ..timeutil import DAY, HOUR, Clock, to_seconds

# ---------------------------------------------------------------------------------------------
# Blocks


@dataclass
class Heading:
    """A section heading."""

    text: str


@dataclass
class Para:
    """A paragraph; ``style`` is body, strong, small or note."""

    text: str
    style: str = "body"


@dataclass
class Bullets:
    """A bulleted list."""

    items: list[str]
    style: str = "body"


@dataclass
class Banner:
    """The verdict: a large coloured box with the word, then a one-line headline."""

    verdict: str
    headline: str


@dataclass
class RiskPair:
    """Withdrawal and overdose side by side: (title, level, reasons) each."""

    risks: list[tuple[str, str, list[str]]]


@dataclass
class Callout:
    """A boxed line or two that must not be missed (e.g. the next refill date)."""

    title: str
    lines: list[str]


@dataclass
class Column:
    """A table column: title, relative width, alignment."""

    title: str
    width: float
    align: str = "left"


@dataclass
class Table:
    """A table with a title; rows of strings; ``strong`` rows are emphasised."""

    title: str
    columns: list[Column]
    rows: list[list[str]]
    empty: str = "none"
    strong: set[int] = field(default_factory=set)
    note: str = ""
    header: bool = True
    strong_cols: int | None = None  # in strong rows, only the first columns are bold


@dataclass
class Span:
    """A shaded time span on a plot."""

    start_s: int
    end_s: int
    label: str = ""


@dataclass
class Mark:
    """One event on an event strip: a point (``end_s`` None) or a span."""

    start_s: int
    end_s: int | None = None
    label: str = ""


@dataclass
class DeliveryPanel:
    """Prescribed, commanded and rotor-confirmed delivery per bin (mcg/h)."""

    start_s: np.ndarray
    end_s: np.ndarray
    prescribed: np.ndarray
    commanded: np.ndarray
    rotor: np.ndarray
    stalls: list[Span]
    gaps: list[Span]
    procedures: list[Span]
    now_s: int
    height: float = 1.0


@dataclass
class ReservoirPanel:
    """The pump's reservoir estimate (mL) with the alarm and empty levels."""

    time_s: np.ndarray
    ml: np.ndarray
    alarm_ml: float | None
    empty_ml: float
    refills: list[int]
    now_s: int
    status_ml: float | None
    projection: list[tuple[int, float]] = field(default_factory=list)
    procedures: list[Span] = field(default_factory=list)
    height: float = 0.75
    note: str = ""


@dataclass
class EventPanel:
    """Lanes of events: (lane name, marks)."""

    lanes: list[tuple[str, list[Mark]]]
    now_s: int
    procedures: list[Span] = field(default_factory=list)
    height: float = 0.75


@dataclass
class DosePanel:
    """The prescribed daily dose over time (a step line) and its program changes."""

    time_s: np.ndarray
    dose: np.ndarray
    changes: list[int]
    now_s: int
    inferred: bool = False
    height: float = 0.75


@dataclass
class Plot:
    """A figure of panels sharing one time axis from ``xlim[0]`` to ``xlim[1]``."""

    key: str
    title: str
    caption: str
    xlim: tuple[int, int]
    panels: list[Any]
    zone: dt.tzinfo
    zone_label: str


@dataclass
class PageBreak:
    """Start a new page (PDF) or a printed page (HTML)."""


@dataclass
class Report:
    """A whole report: identity lines, a short running header, blocks, the disclaimer."""

    kind: str
    title: str
    lines: list[str]
    running: str
    blocks: list[Any]
    disclaimer: str
    generated: str
    verdict: str | None = None


# ---------------------------------------------------------------------------------------------
# Shared pieces

VERDICT_HEADLINES = {
    "URGENT": "Act now: read the reasons and the guideline's actions below.",
    "REVIEW": "A clinician must review this: read the reasons below before deciding.",
    "OK": "The log covers the procedure and shows nothing that needs action. Watch the child as "
    "usual: telemetry cannot show catheter problems.",
}
_LEVEL_WORD = {
    "none": "NONE",
    "cannot_rule_out": "CANNOT RULE OUT",
    "low": "LOW",
    "moderate": "MODERATE",
    "high": "HIGH",
}
_MODES = {
    "simple_continuous": "simple continuous",
    "flex": "flex (time-of-day steps)",
    "minimum_rate": "minimum rate",
    "stopped": "STOPPED",
}


def level_word(level: str) -> str:
    """A risk level as printed."""
    return _LEVEL_WORD.get(level, level.replace("_", " ").upper())


def _num(x: float | None, unit: str = "", nd: int = 0) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "unknown"
    return f"{x:,.{nd}f}{(' ' + unit) if unit else ''}"


def _g(x: float) -> str:
    return f"{x:g}"


def _pump_lines(log: InterrogationLog, weight_kg: float | None) -> list[str]:
    h, st = log.header, log.status
    drug = (
        f"{st.drug_name or 'drug not named'} {_g(st.concentration_mcg_ml)} mcg/mL"
        if log.status_ok
        else "unknown (status damaged)"
    )
    weight = f"{weight_kg:g} kg" if weight_kg is not None else "not given"
    return [
        f"Pump: {h.serial or 'serial unknown'} ({h.model_ml} mL model, firmware {h.firmware or '?'}, "
        f"implanted {h.implant_date.isoformat()})",
        f"Drug: {drug}   |   Child's weight: {weight}",
    ]


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
    out = []
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
    w1 = int((a.details.get("window_s") or (None, now_s))[1] or now_s)
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
    return DeliveryPanel(a0, b0, *cols, _stall_spans(a, now_s), _gap_spans(tl), procedures, now_s)


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


def _risk_pair(a: Assessment) -> RiskPair:
    return RiskPair(
        [
            (f"{k.capitalize()} risk", a.risks[k].level, list(a.risks[k].reasons))
            for k in ("withdrawal", "overdose")
        ]
    )


def _action_tables(a: Assessment) -> list[Any]:
    out: list[Any] = []
    for k in ("withdrawal", "overdose"):
        r = a.risks[k]
        if r.level == "none" or not r.actions:
            continue
        rows = [[("" if x.section == "note" else x.section), x.text] for x in r.actions]
        strong = {i for i, x in enumerate(r.actions) if x.section in ("5.1.4.1", "note")}
        out.append(
            Table(
                f"What the guideline says: {k} ({level_word(r.level)} risk)",
                [Column("Section", 0.09), Column("Action", 0.91)],
                rows,
                strong=strong,
            )
        )
    items = checklist(a.risks)
    if items:
        out.append(
            Table(
                "To collect before calling Kids Rehab (tick each)",
                [Column("Done", 0.07), Column("Item", 0.63), Column("Section", 0.30)],
                [["\u2610", c.item, f"{c.section}{': ' + _lower1(c.condition) if c.condition else ''}"]
                 for c in items],
            )
        )
    return out


def _finding_drug(f: Finding) -> str:
    parts = []
    for mcg, share, what in (
        (f.missed_mcg, f.missed_share, "missed"),
        (f.excess_mcg, f.excess_share, "in excess"),
    ):
        if mcg is not None and mcg >= 0.5:
            parts.append(
                f"{mcg:,.0f} mcg {what}"
                + (f" ({100 * share:.0f}% of a day's dose)" if share is not None else "")
            )
    return "; ".join(parts) or "-"


def _findings_table(a: Assessment, clock: Clock, now_s: int) -> Table:
    rows, strong = [], set()
    for i, f in enumerate(a.findings):
        end = (
            "still at interrogation"
            if f.ongoing
            else f"to {clock.time(f.end_s)}"
            if f.end_s is not None
            else "end unknown"
        )
        rows.append(
            [
                f"{f.kind.replace('_', ' ')}\n[{f.severity}]",
                f"from {clock.time(f.start_s)}\n{end}",
                _finding_drug(f),
                f.explanation,
            ]
        )
        if f.severity == "critical":
            strong.add(i)
    return Table(
        "Findings (whole log)",
        [
            Column("Finding", 0.15),
            Column("When", 0.17),
            Column("Drug", 0.14),
            Column(f"Explanation, times in {clock.label_at(now_s)}", 0.54),
        ],
        rows,
        empty="No findings: nothing in the log points to a delivery problem.",
        strong=strong,
        strong_cols=2,
    )


def _status_rows(log: InterrogationLog, clock: Clock, plan: RefillPlan | None) -> list[list[str]]:
    h, st = log.header, log.status
    rows = []
    if not log.status_ok:
        rows.append(["Status snapshot", "DAMAGED (fails its checksum): the values below cannot be trusted"])
    rows.append(
        [
            "Pump",
            f"{h.serial or 'unknown'}, {h.model_ml} mL model, firmware {h.firmware or '?'}, "
            f"implanted {h.implant_date.isoformat()}",
        ]
    )
    rows.append(
        [
            "Drug",
            f"{st.drug_name or 'not named'}, {_g(st.concentration_mcg_ml)} mcg/mL "
            "(the drug in the reservoir)",
        ]
    )
    rows.append(
        [
            "Program",
            f"{_MODES.get(st.mode, st.mode)}: {st.daily_dose_mcg_day:,.1f} mcg/day, "
            f"{st.rate_ml_day:.3f} mL/day",
        ]
    )
    if st.flex_steps:
        steps = "; ".join(
            f"from {s.start_min // 60:02d}:{s.start_min % 60:02d} {s.daily_dose_mcg_day:g} mcg/day "
            f"({s.rate_ml_day:.3f} mL/day)"
            for s in st.flex_steps
        )
        rows.append(["Flex steps (pump clock)", steps])
    rows.append(
        [
            "Patient bolus (myPTM)",
            f"on: {st.ptm_dose_mcg:g} mcg, lockout {st.ptm_lockout_min} min, at most {st.ptm_max_per_day} "
            "a day"
            if st.ptm_enabled
            else "off",
        ]
    )
    rows.append(
        [
            "Reservoir",
            f"{st.reservoir_ml:.2f} mL (the pump's estimate, not measured); low-reservoir "
            f"alarm at {st.low_reservoir_alarm_ml:g} mL",
        ]
    )
    if plan is not None:
        src = {"status": "status snapshot", "log": "refill record in the log"}.get(plan.last_refill_source)
        rows.append(
            [
                "Last refill",
                f"{clock.time(plan.last_refill_s)} ({src})"
                if src
                else "unknown (not in the status or the log)",
            ]
        )
    alarms = ", ".join(a.replace("_", " ") for a in st.active_alarms)
    if st.alarm_bits_unknown:
        alarms += (", " if alarms else "") + f"unknown alarm bits 0x{st.alarm_bits_unknown:x}"
    rows.append(["Active alarms", alarms.upper() if alarms else "none"])
    rows.append(
        [
            "Battery",
            {
                "ok": "OK",
                "eri": "ERI (elective replacement indicator): replace the pump",
                "eos": "EOS (end of service): the pump has stopped",
            }.get(st.battery_state, st.battery_state),
        ]
    )
    rows.append(["Motor", "STALLED: no drug is being delivered" if st.motor_stalled else st.motor_state])
    drift = h.clock_drift_s
    rows.append(
        [
            "Pump clock",
            f"{abs(drift) // 60} min {'fast' if drift > 0 else 'slow'} against the "
            "programmer at interrogation"
            if abs(drift) >= 60
            else "within a minute of the programmer",
        ]
    )
    if not log.header_ok:
        rows.append(
            ["File header", "DAMAGED (fails its checksum): pump identity and interrogation time may be wrong"]
        )
    return rows


def _problems(log: InterrogationLog) -> list[Any]:
    if not log.problems:
        return []
    items = [
        f"[{p.severity}] {p.message}" + (f" (byte {p.offset})" if p.offset is not None else "")
        for p in log.problems
    ]
    return [Heading("Damage found while reading the log"), Bullets(items, "small")]


def _generated(clock: Clock) -> str:
    return clock.time(int(time.time()))


# ---------------------------------------------------------------------------------------------
# The check report


def build_check(result: Any, log: InterrogationLog, rules: Any = None) -> Report:
    """The content of the two-hour check report (with the rules the analysis used, unless
    ``rules`` are given), its times shown with the check's clock (``result.clock``)."""
    from clinical.rules import get_rules

    a: Assessment = result.assessment
    r = get_rules(rules if rules is not None else a.rules)
    p = result.procedure
    now = int(result.interrogated_s)
    clock = result.clock
    label = clock.label_at(now)
    name = "MRI" if p.kind == "mri" else "Surgery with diathermy"
    short = "MRI" if p.kind == "mri" else "diathermy"
    assumed = "  (start assumed)" if result.details.get("assumed_start") else ""
    lines = [
        *_pump_lines(log, result.weight_kg),
        f"{name}: {clock.time(p.start_s)} to {clock.time(p.end_s)}{assumed}",
        f"Interrogated: {clock.time(now)} ({result.hours_after_end:.1f} h after the end of the {short})",
        f"All times are in {label} unless marked UTC.",
    ]
    blocks: list[Any] = [Banner(result.verdict, VERDICT_HEADLINES[result.verdict])]
    blocks.append(Bullets(list(result.reasons) or ["nothing in the log needs action"], "strong"))
    if result.notes:
        blocks.append(Bullets([f"Note: {n}" for n in result.notes], "note"))
    blocks += [Heading("What happened"), Bullets(list(result.summary))]
    blocks += [Heading("Withdrawal and overdose risk"), _risk_pair(a)]
    blocks += _action_tables(a)
    blocks += [Heading("What the pump's telemetry cannot show"), Bullets(list(a.limitations), "small")]
    procs = [Span(p.start_s, p.end_s, short + (" (start assumed)" if assumed else ""))]
    tl = a.reconstruction
    first = int(to_seconds(tl.index)[0]) if not tl.empty else now - 30 * DAY
    zoom0 = max(first, p.start_s - 24 * HOUR)
    zoom1 = max(now, p.end_s) + 3 * HOUR
    if zoom1 - zoom0 > 7 * DAY:
        zoom0 = max(first, min(p.start_s, now) - 24 * HOUR)
        zoom1 = min(zoom1, max(p.end_s, zoom0) + 6 * DAY)
    dp = delivery_panel(a, procs, now)
    ep = event_panel(log, a, now, procs)
    blocks.append(PageBreak())
    blocks.append(
        Plot(
            "zoom",
            f"Delivery around the {short}: {clock.date(zoom0)} to {clock.date(zoom1)}",
            f"Hourly averages. Shaded: the {short} window; hatched red: motor stalled; hatched grey: no "
            "history in the log. 'Rotor-confirmed' is what the pump counted its rotor delivering; telemetry "
            "cannot show whether it reached the spinal fluid.",
            (zoom0, zoom1),
            [dp, ep],
            clock.zone,
            label,
        )
    )
    m0 = max(first, now - 30 * DAY)
    blocks.append(
        Plot(
            "month",
            f"The last 30 days: {clock.date(m0)} to {clock.date(now)}",
            "Delivery in 3-hour averages (a short stall shows as a dip and as red hatching). The reservoir "
            "is the pump's estimate from counted rotor strokes, not a measurement; the dashed line is the "
            "low-reservoir alarm level.",
            (m0, now + 2 * DAY),
            [delivery_panel(a, procs, now, m0, bin_h=3), reservoir_panel(log, a, r, now, procs), ep],
            clock.zone,
            label,
        )
    )
    blocks.append(PageBreak())
    daily = result.daily_dose_mcg
    share = lambda mcg: f" ({100 * mcg / daily:.0f}% of the daily dose)" if daily and mcg else ""  # noqa: E731
    kv = [
        ["Prescribed daily dose", _num(daily, "mcg/day")],
        [
            f"Not delivered since the start of the {short}",
            "unknown (history incomplete)"
            if result.missed_mcg is None
            else f"{result.missed_mcg:,.0f} mcg{share(result.missed_mcg)}",
        ],
        [
            f"Delivered in excess since the start of the {short}",
            "unknown (history incomplete)"
            if result.excess_mcg is None
            else f"{result.excess_mcg:,.0f} mcg{share(result.excess_mcg)}",
        ],
    ]
    blocks.append(Table("Drug in the procedure window", [Column("", 0.4), Column("", 0.6)], kv, header=False))
    ev_rows = [
        [clock.time(e.time_s), e.text, "" if e.offset is None else str(e.offset)] for e in result.evidence
    ]
    blocks.append(
        Table(
            f"Evidence from the log: events from shortly before the {short} to the interrogation",
            [Column("Time", 0.22), Column("Event", 0.64), Column("Byte offset", 0.14, "right")],
            ev_rows,
            empty="No logged events in the window.",
        )
    )
    blocks.append(_findings_table(a, clock, now))
    blocks.append(
        Table(
            "Pump status at interrogation",
            [Column("", 0.22), Column("", 0.78)],
            _status_rows(log, clock, None),
            header=False,
        )
    )
    blocks += _problems(log)
    running = (
        f"ITB pump check after {short} | pump {log.header.serial or 'unknown'} | interrogated "
        f"{clock.time(now)} | verdict {result.verdict}"
    )
    return Report(
        "check",
        f"ITB pump check after {'MRI' if p.kind == 'mri' else 'surgery with diathermy'}",
        lines,
        running,
        blocks,
        a.disclaimer,
        _generated(clock),
        result.verdict,
    )


# ---------------------------------------------------------------------------------------------
# The interrogation report


def _planning_table(plan: RefillPlan, clock: Clock) -> Table:
    rows, strong = [], set()
    for i, m in enumerate(plan.milestones):
        if m.when_s is None and m.days is None:
            when = "cannot be worked out"
        elif m.passed:
            when = f"reached{' ' + clock.date(m.when_s) if m.when_s is not None else ''}"
        else:
            when = (
                f"{clock.date(m.when_s)}\nin {m.days:,.0f} days"
                if m.days is not None
                else clock.date(m.when_s)
            )
        worst = ""
        if m.worst_when_s is not None and not m.passed:
            worst = f"{clock.date(m.worst_when_s)}\nin {m.worst_days:,.0f} days"
        rows.append([m.label, when, worst, m.basis])
        if plan.next_refill is not None and m.key == plan.next_refill.key:
            strong.add(i)
    return Table(
        "Refill and battery planning",
        [
            Column("Milestone", 0.2),
            Column("Date", 0.17),
            Column("Worst case", 0.15),
            Column("How it is worked out", 0.48),
        ],
        rows,
        strong=strong,
        note="Worked out from the status snapshot and the programmed rate at "
        "interrogation; the bold row is the next refill. Worst case: the pump running as fast as its "
        "labelled accuracy allows (plus patient boluses at their daily maximum, if enabled). Check the "
        "dates on the manufacturer's programmer before booking.",
    )


def _dose_table(steps: list[DoseStep], clock: Clock) -> Table:
    rows = []
    for s in steps:
        what = _MODES.get(s.mode, s.mode) + (
            f", {s.flex_steps} steps (time-weighted)" if s.flex_steps else ""
        )
        if s.change_mcg is None:
            change = "first program in the log"
        elif abs(s.change_mcg) < 0.05:
            change = "no change in dose"
        else:
            pct = f" ({100 * s.change_fraction:+.0f}%)" if s.change_fraction is not None else ""
            change = f"{s.change_mcg:+,.1f} mcg/day{pct}, {s.days_since_previous:.1f} days after the previous"
        flags = ", ".join(
            x
            for x in (
                "OVERRIDE of the programmer's check" if s.override else "",
                "time uncertain" if s.time_uncertain else "",
            )
            if x
        )
        rows.append(
            [
                clock.time(s.time_s),
                f"{s.daily_dose_mcg:,.1f} mcg/day",
                f"{_g(s.concentration_mcg_ml)} mcg/mL",
                what,
                change + (f"; {flags}" if flags else ""),
            ]
        )
    return Table(
        "Program changes (titration steps)",
        [
            Column("Time", 0.19),
            Column("Daily dose", 0.14),
            Column("Drug mcg/mL", 0.12),
            Column("Mode", 0.2),
            Column("Change from the previous program", 0.35),
        ],
        rows,
        empty="No program change in the log's history.",
        strong={i for i, s in enumerate(steps) if s.override},
    )


def build_interrogation(log: InterrogationLog, a: Assessment, plan: RefillPlan, rules: Any = None) -> Report:
    """The content of the general interrogation report, its times shown with the assessment's
    clock (``a.clock``, the one that wrote its explanations)."""
    from clinical.rules import get_rules

    r = get_rules(rules)
    now = int(a.details.get("now_s") or log.header.interrogated_at.timestamp())
    clock = a.clock
    label = clock.label_at(now)
    w0, w1 = a.details.get("window_s", (None, None))
    lines = [
        *_pump_lines(log, a.weight_kg),
        f"Interrogated: {clock.time(now)}   |   History in the log: {clock.time(w0)} to {clock.time(w1)}",
        f"All times are in {label} unless marked UTC.",
    ]
    nxt = plan.next_refill
    if nxt is None:
        due = "Next refill due by: cannot be worked out (see the planning table)."
    elif nxt.passed or (nxt.days is not None and nxt.days <= 0):
        due = f"Next refill due: NOW ({_lower1(nxt.label)} already reached)."
    else:
        due = f"Next refill due by: {clock.date(nxt.when_s)} ({_lower1(nxt.label)}, in {nxt.days:,.0f} days)."
    glance = [
        due,
        f"Withdrawal risk: {level_word(a.withdrawal.level)}   |   Overdose risk: "
        f"{level_word(a.overdose.level)}   |   Findings: {len(a.findings)}",
    ]
    if log.status_ok and (
        log.status.motor_stalled or log.status.mode == "stopped" or log.status.battery_state == "eos"
    ):
        glance.append("The pump is NOT delivering at interrogation (motor stalled, stopped or battery EOS).")
    eri, eos = plan.milestone("eri"), plan.milestone("eos")
    if eri is not None and eri.passed:
        glance.append(
            f"Battery: ERI reached{' ' + clock.date(eri.when_s) if eri.when_s else ''}; "
            + (
                f"EOS (the pump stops) {'reached ' if eos.passed else ''}"
                f"{clock.date(eos.when_s) if eos.when_s else ''}"
                if eos is not None
                else ""
            )
            + ": replace the pump."
        )
    blocks: list[Any] = [Callout("At a glance", glance)]
    blocks.append(
        Table(
            "Pump status at interrogation",
            [Column("", 0.22), Column("", 0.78)],
            _status_rows(log, clock, plan),
            header=False,
        )
    )
    blocks.append(_planning_table(plan, clock))
    if plan.notes:
        blocks.append(Bullets(list(plan.notes), "note"))
    blocks += [Heading("Withdrawal and overdose risk"), _risk_pair(a)]
    blocks += _action_tables(a)
    blocks.append(_findings_table(a, clock, now))
    steps = dose_steps(log)
    tl = a.reconstruction
    first = int(to_seconds(tl.index)[0]) if not tl.empty else (w0 or now - 30 * DAY)
    res = reservoir_panel(log, a, r, now, [], plan, clock)
    blocks.append(
        Plot(
            "history",
            f"The whole history in the log: {clock.date(first)} to {clock.date(now)}",
            "Top: the prescribed daily dose (program changes marked). Middle: the reservoir, the pump's "
            "estimate, with the low-reservoir alarm level (dashed)"
            + (
                f" and the projection at the programmed rate to empty (dotted): {res.note.split(': ', 1)[-1]}"
                if res.projection
                else ""
            )
            + ". Bottom: the events.",
            (first, now + max(DAY, int(0.12 * (now - first)))),
            [_dose_panel(steps, a, now), res, event_panel(log, a, now, [])],
            clock.zone,
            label,
        )
    )
    m0 = max(first, now - 30 * DAY)
    blocks.append(
        Plot(
            "month",
            f"Delivery in the last 30 days: {clock.date(m0)} to {clock.date(now)}",
            "Delivery in 3-hour averages. Hatched red: motor stalled; hatched grey: no history in the log. "
            "'Rotor-confirmed' is what the pump counted its rotor delivering; telemetry cannot show whether "
            "it reached the spinal fluid.",
            (m0, now + 2 * DAY),
            [delivery_panel(a, [], now, m0, bin_h=3), event_panel(log, a, now, [])],
            clock.zone,
            label,
        )
    )
    blocks.append(PageBreak())
    blocks.append(_dose_table(steps, clock))
    blocks += [Heading("What the pump's telemetry cannot show"), Bullets(list(a.limitations), "small")]
    blocks += _problems(log)
    running = (
        f"ITB pump interrogation report | pump {log.header.serial or 'unknown'} | interrogated "
        f"{clock.time(now)}"
    )
    return Report(
        "interrogation",
        "ITB pump interrogation report",
        lines,
        running,
        blocks,
        a.disclaimer,
        _generated(clock),
    )


def _lower1(s: str) -> str:
    return s[:1].lower() + s[1:]


def _dose_panel(steps: list[DoseStep], a: Assessment, now_s: int) -> DosePanel:
    if steps:
        t = np.array([s.time_s for s in steps] + [now_s], dtype=np.int64)
        d = np.array([s.daily_dose_mcg for s in steps] + [steps[-1].daily_dose_mcg])
        return DosePanel(t, d, [s.time_s for s in steps[1:]], now_s)
    tl = a.reconstruction
    if tl.empty:
        return DosePanel(np.zeros(0, np.int64), np.zeros(0), [], now_s, inferred=True)
    daily = (tl["prescribed_basal_mcg_h"] * 24).resample("1D").mean()
    return DosePanel(to_seconds(daily.index), daily.to_numpy(dtype=float), [], now_s, inferred=True)
