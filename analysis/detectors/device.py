"""The device itself: battery at elective replacement (ERI) or end of service (EOS), and
spans when the pump was stopped (programmed stop, or stopped at EOS)."""

from __future__ import annotations

from ..context import Context
from ..findings import Finding
from ..timeutil import DAY, HOUR, fmt, hours
from ._util import contiguous, flagged_runs, offsets


def _pump_clock_to_utc(ctx: Context, clock: int) -> int:
    """A pump-clock stamp from the status (seconds since 2000) as Unix UTC seconds."""
    return ctx.log.header.pump_clock_to_unix(clock)


def _alarm_start(ctx: Context, name: str) -> tuple[int | None, tuple[int, ...]]:
    spans = [a for a in ctx.ep.alarms if a.alarm == name]
    if not spans:
        return None, ()
    return spans[0].raised_s, spans[0].offsets[:1]


def detect(ctx: Context) -> list[Finding]:
    """battery_eri, battery_eos, pump_stopped."""
    st = ctx.log.status
    r = ctx.rules
    out: list[Finding] = []
    eos_days = r.number("pump", "eri_to_eos_days")
    eri_t, eri_ev = _alarm_start(ctx, "eri")
    eos_t, eos_ev = _alarm_start(ctx, "eos")
    state = st.battery_state if ctx.log.status_ok else "unknown"
    if eri_t is None and st.eri_clock and state in ("eri", "eos"):
        eri_t = _pump_clock_to_utc(ctx, st.eri_clock)
    if eri_t is not None or state == "eri":
        projected = eri_t + int(eos_days * DAY) if eri_t is not None else None
        out.append(Finding(
            "battery_eri", "warning", eri_t, None,
            f"The battery reached its elective replacement indicator (ERI)"
            f"{' on ' + fmt(eri_t) if eri_t else ''}. The pump stops about {eos_days:g} days "
            f"after ERI{' (around ' + fmt(projected) + ')' if projected else ''}: arrange pump "
            "replacement before then, or the child will go into withdrawal.",
            ongoing=True, evidence=eri_ev, direction="withdrawal",
            details={"projected_eos_utc": fmt(projected) if projected else None,
                     "projected_eos_s": projected}))
    if eos_t is not None or state == "eos":
        out.append(Finding(
            "battery_eos", "critical", eos_t, None,
            f"The battery reached end of service (EOS){' on ' + fmt(eos_t) if eos_t else ''}: "
            "the pump has stopped and delivers no baclofen. Treat as baclofen withdrawal risk "
            "and replace the pump urgently.",
            ongoing=True, evidence=eos_ev, direction="withdrawal"))
    out.extend(_stopped(ctx, eos_t))
    return out


def stopped_spans(ctx: Context) -> list[tuple[int, int | None, tuple[int, ...], str]]:
    """(start, end or None if still stopped, evidence, how) for every stopped span."""
    spans: list[tuple[int, int | None, tuple[int, ...], str]] = []
    rows = ctx.rows
    for ps in ctx.rec.program_spans:
        if ps.program.mode == "stopped" and ps.program.source == "log":
            last = ps is ctx.rec.program_spans[-1]
            spans.append((ps.start_s, None if last else ps.end_s, ps.program.offsets[:1],
                          "programmed"))
    if len(rows):
        # a stop written as the mode, or a pump that commanded nothing while its program asked
        # for drug (no stop record needed: docs/log-format.md section 12)
        flags = ctx.state.stopped_mode | ctx.state.commanded_none
        for a, b in flagged_runs(flags, contiguous(rows)):
            s, e = int(rows["start_s"].iat[a]), int(rows["end_s"].iat[b])
            if any(x[0] <= s + ctx.interval_s and (x[1] is None or x[1] >= e - ctx.interval_s)
                   for x in spans):
                continue
            how = "delivery rows" if ctx.state.stopped_mode[a:b + 1].all() else "commanded nothing"
            # the end of the history is not a restart: still stopped unless a later program
            # record restarts it
            restarted = any(ps.start_s >= s and ps.program.mode != "stopped"
                            and ps.program.source == "log" for ps in ctx.rec.program_spans
                            if ps.start_s >= e - ctx.interval_s)
            ongoing = b == len(rows) - 1 and not restarted
            spans.append((s, None if ongoing else e, offsets(rows, [a, b]), how))
    return sorted(spans, key=lambda x: x[0])


def _stopped(ctx: Context, eos_t: int | None) -> list[Finding]:
    out = []
    now = ctx.now_s
    for s, e, ev, how in stopped_spans(ctx):
        before = ctx.rec.daily_dose_at(s - 1)
        dur = (e if e is not None else now) - s
        missed = before * dur / DAY if before else None
        at_eos = eos_t is not None and abs(s - eos_t) <= 2 * ctx.interval_s
        if at_eos and how != "programmed":
            s = eos_t  # the rows only show the interval it happened in
        why = ("at battery end of service" if at_eos
               else "by a programmed stop" if how == "programmed"
               else "(seen in the delivery rows: the pump commanded no drug although its program "
                    "asks for it, and no stop is logged)" if how == "commanded nothing"
               else "(seen in the delivery rows)")
        state = "and was still stopped at interrogation" if e is None else f"until {fmt(e)}"
        out.append(Finding(
            "pump_stopped", "critical" if e is None else "warning", s, e,
            f"The pump stopped {why} on {fmt(s)} {state} ({hours(dur)}). About "
            f"{(missed or 0):.0f} mcg of the previous {before:g} mcg/day was not given. "
            + (_disagree(ctx) if e is None and how != "programmed" else "")
            + ("Programming a stop before MRI is not recommended (it hides a stall)."
               if how == "programmed" else ""),
            ongoing=e is None, evidence=ev, missed_mcg=missed, daily_dose_mcg=before or None,
            direction="withdrawal", details={"how": "eos" if at_eos else how,
                                             "duration_h": dur / HOUR}))
    return out



def _disagree(ctx: Context) -> str:
    """Say so when the status reports the pump delivering while the rows say it is not."""
    st = ctx.status
    if st.known and not st.stopped and not st.motor_stalled:
        return ("The status reports the pump running, but no delivery is recorded since: the "
                "sources disagree and the more dangerous reading is taken; confirm with the "
                "programmer. ")
    return ""
