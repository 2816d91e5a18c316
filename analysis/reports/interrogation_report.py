"""The general interrogation report (:func:`build_interrogation`): at a glance, the pump's
status, refill and battery planning, the risks and findings, the whole history and the last 30
days as plots, and the program changes."""

from __future__ import annotations

from typing import Any

from parsers import InterrogationLog

from ..assessment import Assessment
from ..planning import DoseStep, RefillPlan, dose_steps
from ..timeutil import DAY, Clock, to_seconds
from .blocks import Bullets, Callout, Column, Heading, PageBreak, Plot, Report, Table
from .panels import dose_panel, event_panel, reservoir_panel
from .sections import (
    MODE_NAMES,
    action_tables,
    damage_blocks,
    findings_table,
    generated_at,
    level_word,
    lower_first,
    month_plot,
    pump_lines,
    risk_pair,
    short_num,
    status_rows,
)


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
        what = MODE_NAMES.get(s.mode, s.mode) + (
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
                f"{short_num(s.concentration_mcg_ml)} mcg/mL",
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
    now = a.now_s
    clock = a.clock
    label = clock.label_at(now)
    w0, w1 = a.window_s
    lines = [
        *pump_lines(log, a.weight_kg),
        f"Interrogated: {clock.time(now)}   |   History in the log: {clock.time(w0)} to {clock.time(w1)}",
        f"All times are in {label} unless marked UTC.",
    ]
    nxt = plan.next_refill
    if nxt is None:
        due = "Next refill due by: cannot be worked out (see the planning table)."
    elif nxt.passed or (nxt.days is not None and nxt.days <= 0):
        due = f"Next refill due: NOW ({lower_first(nxt.label)} already reached)."
    else:
        due = (f"Next refill due by: {clock.date(nxt.when_s)} ({lower_first(nxt.label)}, "
               f"in {nxt.days:,.0f} days).")
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
            status_rows(log, clock, plan),
            header=False,
        )
    )
    blocks.append(_planning_table(plan, clock))
    if plan.notes:
        blocks.append(Bullets(list(plan.notes), "note"))
    blocks += [Heading("Withdrawal and overdose risk"), risk_pair(a)]
    blocks += action_tables(a)
    blocks.append(findings_table(a, clock, now))
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
            [dose_panel(steps, a, now), res, event_panel(log, a, now, [])],
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
            [],
            [event_panel(log, a, now, [])],
            "Delivery in the last 30 days",
            "Delivery in 3-hour averages. Hatched red: motor stalled; hatched grey: no history in the log. "
            "'Rotor-confirmed' is what the pump counted its rotor delivering; telemetry cannot show whether "
            "it reached the spinal fluid.",
        )
    )
    blocks.append(PageBreak())
    blocks.append(_dose_table(steps, clock))
    blocks += [Heading("What the pump's telemetry cannot show"), Bullets(list(a.limitations), "small")]
    blocks += damage_blocks(log)
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
        generated_at(clock),
    )
