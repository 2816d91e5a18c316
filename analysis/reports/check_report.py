"""The two-hour check report after an MRI or surgery with diathermy (:func:`build_check`): page 1
with the verdict, its reasons and the guideline's actions, then the delivery around the procedure,
the last 30 days, the drug missed or in excess, the evidence, the findings and the pump's status."""

from __future__ import annotations

from typing import Any

import numpy as np

from clinical.rules import RulesLike
from parsers import InterrogationLog

from ..assessment import Assessment
from ..check import CheckResult
from ..timeutil import DAY, HOUR, to_seconds
from .blocks import Banner, Bullets, Column, Heading, PageBreak, Plot, Report, Span, Table
from .panels import delivery_panel, event_panel, reservoir_panel
from .sections import (
    action_tables,
    damage_blocks,
    findings_table,
    generated_at,
    month_plot,
    pump_lines,
    risk_pair,
    status_rows,
)

VERDICT_HEADLINES = {
    "URGENT": "Act now: read the reasons and the guideline's actions below.",
    "REVIEW": "A clinician must review this: read the reasons below before deciding.",
    "OK": "The log covers the procedure and shows nothing that needs action. Watch the child as "
    "usual: telemetry cannot show catheter problems.",
}


def _num(x: float | None, unit: str = "", nd: int = 0) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "unknown"
    return f"{x:,.{nd}f}{(' ' + unit) if unit else ''}"


def build_check(result: CheckResult, log: InterrogationLog, rules: RulesLike = None) -> Report:
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
    assumed = "  (start assumed)" if result.assumed_start else ""
    lines = [
        *pump_lines(log, result.weight_kg),
        f"{name}: {clock.time(p.start_s)} to {clock.time(p.end_s)}{assumed}",
        f"Interrogated: {clock.time(now)} ({result.hours_after_end:.1f} h after the end of the {short})",
        f"All times are in {label} unless marked UTC.",
    ]
    blocks: list[Any] = [Banner(result.verdict, VERDICT_HEADLINES[result.verdict])]
    blocks.append(Bullets(list(result.reasons) or ["nothing in the log needs action"], "strong"))
    if result.notes:
        blocks.append(Bullets([f"Note: {n}" for n in result.notes], "note"))
    blocks += [Heading("What happened"), Bullets(list(result.summary))]
    blocks += [Heading("Withdrawal and overdose risk"), risk_pair(a)]
    blocks += action_tables(a)
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
    blocks.append(
        month_plot(
            a,
            clock,
            now,
            first,
            procs,
            [reservoir_panel(log, a, r, now, procs), ep],
            "The last 30 days",
            "Delivery in 3-hour averages (a short stall shows as a dip and as red hatching). The reservoir "
            "is the pump's estimate from counted rotor strokes, not a measurement; the dashed line is the "
            "low-reservoir alarm level.",
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
    blocks.append(findings_table(a, clock, now))
    blocks.append(
        Table(
            "Pump status at interrogation",
            [Column("", 0.22), Column("", 0.78)],
            status_rows(log, clock, None),
            header=False,
        )
    )
    blocks += damage_blocks(log)
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
        generated_at(clock),
        result.verdict,
    )
