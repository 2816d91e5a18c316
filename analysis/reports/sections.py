"""The sections both reports share: the pump and drug lines, the risk pair, the guideline's
actions and checklist, the findings table, the status table, the plot of the last 30 days and
the damage found in the log, each as blocks (:mod:`.blocks`) with its times shown by the
analysis' clock."""

from __future__ import annotations

import time
from typing import Any

from parsers import InterrogationLog

from ..assessment import Assessment
from ..findings import Finding
from ..planning import RefillPlan
from ..risk import checklist
from ..timeutil import DAY, Clock
from .blocks import Bullets, Column, Heading, Plot, RiskPair, Span, Table
from .panels import delivery_panel

_LEVEL_WORD = {
    "none": "NONE",
    "cannot_rule_out": "CANNOT RULE OUT",
    "low": "LOW",
    "moderate": "MODERATE",
    "high": "HIGH",
}
MODE_NAMES = {
    "simple_continuous": "simple continuous",
    "flex": "flex (time-of-day steps)",
    "minimum_rate": "minimum rate",
    "stopped": "STOPPED",
}


def level_word(level: str) -> str:
    """A risk level as printed."""
    return _LEVEL_WORD.get(level, level.replace("_", " ").upper())


def short_num(x: float) -> str:
    """A number in its shortest form (``1000``, ``0.5``)."""
    return f"{x:g}"


def pump_lines(log: InterrogationLog, weight_kg: float | None) -> list[str]:
    """The identity lines under the title: the pump, the drug and the child's weight."""
    h, st = log.header, log.status
    drug = (
        f"{st.drug_name or 'drug not named'} {short_num(st.concentration_mcg_ml)} mcg/mL"
        if log.status_ok
        else "unknown (status damaged)"
    )
    weight = f"{weight_kg:g} kg" if weight_kg is not None else "not given"
    return [
        f"Pump: {h.serial or 'serial unknown'} ({h.model_ml} mL model, firmware {h.firmware or '?'}, "
        f"implanted {h.implant_date.isoformat()})",
        f"Drug: {drug}   |   Child's weight: {weight}",
    ]


def risk_pair(a: Assessment) -> RiskPair:
    """Withdrawal and overdose side by side, each with its level and reasons."""
    return RiskPair(
        [
            (f"{k.capitalize()} risk", a.risks[k].level, list(a.risks[k].reasons))
            for k in ("withdrawal", "overdose")
        ]
    )


def action_tables(a: Assessment) -> list[Any]:
    """The guideline's actions for each risk that needs any, then the checklist to collect."""
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
                [["\u2610", c.item, f"{c.section}{': ' + lower_first(c.condition) if c.condition else ''}"]
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


def findings_table(a: Assessment, clock: Clock, now_s: int) -> Table:
    """Every finding with its severity, time span, drug effect and explanation; the last
    column names the zone of the times inside it."""
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


def status_rows(log: InterrogationLog, clock: Clock, plan: RefillPlan | None) -> list[list[str]]:
    """The pump's status at interrogation as (name, value) rows; the last refill only with a plan."""
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
            f"{st.drug_name or 'not named'}, {short_num(st.concentration_mcg_ml)} mcg/mL "
            "(the drug in the reservoir)",
        ]
    )
    rows.append(
        [
            "Program",
            f"{MODE_NAMES.get(st.mode, st.mode)}: {st.daily_dose_mcg_day:,.1f} mcg/day, "
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


def month_plot(
    a: Assessment,
    clock: Clock,
    now_s: int,
    first_s: int,
    procedures: list[Span],
    panels: list[Any],
    title: str,
    caption: str,
) -> Plot:
    """The last 30 days (from ``first_s``, the history's start, if later) to two days after
    ``now_s``: delivery in 3-hour averages above ``panels``; ``title`` is followed by the dates."""
    start = max(first_s, now_s - 30 * DAY)
    return Plot(
        "month",
        f"{title}: {clock.date(start)} to {clock.date(now_s)}",
        caption,
        (start, now_s + 2 * DAY),
        [delivery_panel(a, procedures, now_s, start, bin_h=3), *panels],
        clock.zone,
        clock.label_at(now_s),
    )


def damage_blocks(log: InterrogationLog) -> list[Any]:
    """The damage found while reading the log, as a heading and bullets (nothing if none)."""
    if not log.problems:
        return []
    items = [
        f"[{p.severity}] {p.message}" + (f" (byte {p.offset})" if p.offset is not None else "")
        for p in log.problems
    ]
    return [Heading("Damage found while reading the log"), Bullets(items, "small")]


def generated_at(clock: Clock) -> str:
    """Now, as the report's "generated" time."""
    return clock.time(int(time.time()))


def lower_first(s: str) -> str:
    """``s`` with its first letter in lower case."""
    return s[:1].lower() + s[1:]
