"""The device itself: battery at elective replacement (ERI) or end of service (EOS), and
spans when the pump was stopped (programmed stop, or stopped at EOS)."""

from __future__ import annotations

import numpy as np

from ..context import Context
from ..delivery_state import stall_like_runs
from ..findings import Finding, FindingDetails, StopHow
from ..planning import projected_eos_s
from ..timeutil import DAY, HOUR, hours
from ._util import contiguous, offsets


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
        projected = projected_eos_s(eri_t, r) if eri_t is not None else None
        out.append(Finding(
            "battery_eri", "warning", eri_t, None,
            f"The battery reached its elective replacement indicator (ERI)"
            f"{' on ' + ctx.clock.time(eri_t) if eri_t else ''}. The pump stops about {eos_days:g} days "
            f"after ERI{' (around ' + ctx.clock.time(projected) + ')' if projected else ''}: arrange pump "
            "replacement before then, or the child will go into withdrawal.",
            ongoing=True, evidence=eri_ev, direction="withdrawal",
            details=FindingDetails(projected_eos_utc=ctx.clock.time(projected) if projected else None,
                                   projected_eos_s=projected)))
    eos_logged = eos_t is not None
    if eos_t is None and state == "eos":  # only the status says so: stopped since the last row, at the latest
        eos_t = _last_delivery_s(ctx)
    if eos_t is not None or state == "eos":
        when = (f" on {ctx.clock.time(eos_t)}" if eos_logged and eos_t else
                f" (the status says so; the log has no record: since the last delivery row, "
                f"{ctx.clock.time(eos_t)}, at the latest)" if eos_t else "")
        out.append(Finding(
            "battery_eos", "critical", eos_t, None,
            f"The battery reached end of service (EOS){when}: "
            "the pump has stopped and delivers no baclofen. Treat as baclofen withdrawal risk "
            "and replace the pump urgently.",
            ongoing=True, evidence=eos_ev, direction="withdrawal",
            details=FindingDetails(source=None if eos_logged else "status")))
    out.extend(_stopped(ctx, eos_t))
    if ctx.log.status_ok and ctx.log.status.mode == "stopped" and state != "eos" and not any(
            f.kind == "pump_stopped" and f.end_s is None for f in out):
        out.append(_stopped_by_status(ctx))
    return out


def _last_delivery_s(ctx: Context) -> int:
    """The end of the last delivery row (the last time the history shows the pump at work),
    or the interrogation when there are no rows."""
    rows = ctx.rows
    return int(rows["end_s"].max()) if len(rows) else ctx.now_s


def _stopped_by_status(ctx: Context) -> Finding:
    """The status snapshot (CRC good) says the pump is stopped now, and no record or row shows
    the stop: it came after the last row, or the sources disagree.  Either way no drug is
    being delivered now (docs/log-format.md 12.12): an ongoing stop from the last row."""
    s = _last_delivery_s(ctx)
    before = ctx.rec.daily_dose_at(s - 1)
    missed = float(ctx.rec.prescribed_mcg.integral(s, ctx.now_s)) if ctx.now_s > s else 0.0
    return Finding(
        "pump_stopped", "critical", s, None,
        f"The pump's status says it is STOPPED now; no stop record or delivery row shows it (it "
        f"stopped after the last row, {ctx.clock.time(s)}, or the sources disagree). No drug is "
        f"being delivered: about {missed:.0f} mcg of {before:g} mcg/day not given since then.",
        ongoing=True, missed_mcg=missed, daily_dose_mcg=before or None, direction="withdrawal",
        details=FindingDetails(how="status", duration_h=(ctx.now_s - s) / HOUR))


def stopped_spans(ctx: Context) -> list[tuple[int, int | None, tuple[int, ...], StopHow, float | None]]:
    """(start, end or None if still stopped, evidence, how, missed mcg or None) for every
    stopped span: programmed stops, and stops the rows show (a ``stopped`` mode, or the pump
    commanding less than its program asks for), placed inside their rows by the volume that
    was not commanded."""
    spans: list[tuple[int, int | None, tuple[int, ...], StopHow, float | None]] = []
    rows = ctx.rows
    for ps in ctx.rec.program_spans:
        if ps.program.mode == "stopped" and ps.program.source == "log":
            last = ps is ctx.rec.program_spans[-1]
            spans.append((ps.start_s, None if last else ps.end_s, ps.program.offsets[:1],
                          "programmed", None))
    if not len(rows):
        return sorted(spans, key=lambda x: x[0])
    st = ctx.state
    s_arr, e_arr = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
    iv = st.interval_s
    min_s = ctx.rules.number("delivery", "unrecorded_stall_min_min") * 60
    forced = st.stopped_mode & (st.stopped_s > 0)
    missing = np.clip(rows["prescribed_mcg"].to_numpy(dtype=float)
                      - rows["rotor_mcg"].to_numpy(dtype=float), 0, None)
    for a, b in stall_like_runs(st.stopped_s, st.mostly_stopped, contiguous(rows), forced, min_s):
        start = int(e_arr[a] - st.stopped_s[a]) if st.stopped_s[a] < iv[a] - 60 else int(s_arr[a])
        if any(x[0] <= start + ctx.interval_s and (x[1] is None or x[1] >= e_arr[b] - ctx.interval_s)
               for x in spans):
            continue
        how: StopHow = "delivery rows" if st.stopped_mode[a:b + 1].all() else "commanded nothing"
        if b > a and st.stopped_s[b] < iv[b] - 60:
            end: int | None = int(s_arr[b] + st.stopped_s[b])  # restarted inside its last row
        elif b + 1 < len(rows):
            end = int(e_arr[b])
        else:
            # the end of the history is not a restart: still stopped unless a later program
            # record restarts it
            restarted = next((ps.start_s for ps in ctx.rec.program_spans
                              if ps.start_s >= e_arr[b] - ctx.interval_s and ps.program.source == "log"
                              and ps.program.mode != "stopped"), None)
            end = None if restarted is None else int(restarted)
        missed = float(missing[a:b + 1].sum())
        tail_to = ctx.now_s if end is None else end
        if tail_to > e_arr[b]:
            missed += float(ctx.rec.prescribed_mcg.integral(int(e_arr[b]), tail_to))
        spans.append((start, end, offsets(rows, [a, b]), how, missed))
    return sorted(spans, key=lambda x: x[0])


def _stopped(ctx: Context, eos_t: int | None) -> list[Finding]:
    out = []
    now = ctx.now_s
    for s, e, ev, how, row_missed in stopped_spans(ctx):
        before = ctx.rec.daily_dose_at(s - 1)
        dur = (e if e is not None else now) - s
        missed = row_missed if row_missed is not None else (before * dur / DAY if before else None)
        at_eos = eos_t is not None and abs(s - eos_t) <= 2 * ctx.interval_s
        if at_eos and eos_t is not None and how != "programmed":
            s = eos_t  # the rows only show the interval it happened in
        why = ("at battery end of service" if at_eos
               else "by a programmed stop" if how == "programmed"
               else "(seen in the delivery rows: the pump commanded no drug although its program "
                    "asks for it, and no stop is logged)" if how == "commanded nothing"
               else "(seen in the delivery rows)")
        state = "and was still stopped at interrogation" if e is None else f"until {ctx.clock.time(e)}"
        out.append(Finding(
            "pump_stopped", "critical" if e is None else "warning", s, e,
            f"The pump stopped {why} on {ctx.clock.time(s)} {state} ({hours(dur)}). About "
            f"{(missed or 0):.0f} mcg of the previous {before:g} mcg/day was not given. "
            + (_disagree(ctx) if e is None and how != "programmed" else "")
            + ("Programming a stop before MRI is not recommended (it hides a stall)."
               if how == "programmed" else ""),
            ongoing=e is None, evidence=ev, missed_mcg=missed, daily_dose_mcg=before or None,
            direction="withdrawal", details=FindingDetails(how="eos" if at_eos else how,
                                                           duration_h=dur / HOUR)))
    return out



def _disagree(ctx: Context) -> str:
    """Say so when the status reports the pump delivering while the rows say it is not."""
    st = ctx.status
    if st.known and not st.stopped and not st.motor_stalled:
        return ("The status reports the pump running, but no delivery is recorded since: the "
                "sources disagree and the more dangerous reading is taken; confirm with the "
                "programmer. ")
    return ""
