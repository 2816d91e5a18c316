"""Motor stalls: each stall (cause, duration, drug missed), stalls still going at
interrogation, recoveries the log does not show as it should, repeated stalls (a failing
motor) and stalls long enough to be a risk factor for later over-infusion.

A stall is seen two ways: MOTOR_STALL / MOTOR_STALL_RECOVERY records, and delivery rows
with ``stalled_s`` > 0 and the rotor short of the commanded volume.  The rows say when the
rotor really turned again; the records can be logged late (at the next interrogation) or
even say "recovered" while the rotor stays still (telemetry mode while alarming), so both
are read and compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..context import Context, Procedure
from ..delivery_state import stall_like_runs
from ..episodes import Mark
from ..findings import Finding, FindingDetails
from ..timeutil import HOUR, Clock, hours
from ._util import contiguous, offsets, pct


@dataclass
class StallEpisode:
    """One stall, from the records and the rows together."""

    start_s: int
    rotor_end_s: int | None = None  # rotor seen turning again in the rows
    last_stalled_row_end_s: int | None = None
    record: Mark | None = None
    recovery: Mark | None = None
    rows: list[int] = field(default_factory=list)
    end_s: int | None = None
    ongoing: bool = False
    missed_mcg: float = 0.0
    missed_known: bool = True
    procedure: Procedure | None = None
    restarted_by_interrogation: bool = False
    notes: list[str] = field(default_factory=list)


def _row_runs(ctx: Context) -> list[tuple[int, int]]:
    """Runs of rows that show one stall each: logged stalled seconds, or the rotor short of
    what was commanded (docs/log-format.md 12.12), record or not.  Rows that commanded
    nothing are stops, not stalls."""
    rows = ctx.rows
    if rows.empty:
        return []
    st = ctx.state
    short = np.where(st.mostly_stopped, 0.0, st.stalled_s)
    forced = rows["stalled_s"].to_numpy() > 0
    s_arr, e_arr = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
    for m in ctx.ep.stalls:  # a row holding a stall record shows that stall, however short
        forced |= (s_arr <= m.time_s) & (m.time_s < e_arr) & (short > 0)
    min_s = ctx.rules.number("delivery", "unrecorded_stall_min_min") * 60
    return stall_like_runs(short, st.mostly_still & ~st.mostly_stopped, contiguous(rows), forced, min_s)


def _like_the_rest(stalled: np.ndarray, interval: np.ndarray, a: int, b: int, margin: float) -> bool:
    """Whether row ``b``, the run's last, stood still for at least the share of its interval
    that the run's earlier rows did (their median), less ``margin`` (``[delivery]
    last_row_recovery_margin``): no sign the rotor picked up."""
    share = stalled[a:b + 1] / np.maximum(interval[a:b + 1], 1)
    return bool(share[-1] >= float(np.median(share[:-1])) - margin)


def episodes(ctx: Context) -> list[StallEpisode]:
    """All stalls, merging record-based and row-based evidence."""
    rows = ctx.rows
    tol = ctx.interval_s + ctx.rules.number("stalls", "recovery_log_tolerance_h") * HOUR
    joined = contiguous(rows)
    # record episodes: a stall record opens, the next recovery record closes
    rec_eps: list[StallEpisode] = []
    orphans: list[Mark] = []
    stream = sorted([(m.time_s, 0, m) for m in ctx.ep.stalls]
                    + [(m.time_s, 1, m) for m in ctx.ep.recoveries], key=lambda x: (x[0], x[1]))
    open_ep: StallEpisode | None = None
    for _, kind, m in stream:
        if kind == 0:
            if open_ep is None:
                open_ep = StallEpisode(m.time_s, record=m)
                rec_eps.append(open_ep)
        elif open_ep is not None:
            open_ep.recovery = m
            open_ep = None
        else:
            orphans.append(m)
    # row runs
    out: list[StallEpisode] = []
    used: set[int] = set()
    s_arr = rows["start_s"].to_numpy() if len(rows) else np.zeros(0)
    e_arr = rows["end_s"].to_numpy() if len(rows) else np.zeros(0)
    st_arr = ctx.state.stalled_s
    iv_arr = rows["interval_s"].to_numpy() if len(rows) else np.zeros(0)
    margin = ctx.rules.number("delivery", "last_row_recovery_margin")
    for a, b in _row_runs(ctx):
        start = int(e_arr[a] - st_arr[a])
        partial_last = st_arr[b] < iv_arr[b] - 1
        at_history_end = not (b + 1 < len(rows) and joined[b + 1])
        if partial_last and b > a and at_history_end and _like_the_rest(st_arr, iv_arr, a, b, margin):
            # the last row of the history falls as short as the rows before it: a rotor turning
            # slowly to the end, not a recovery inside that row (the end of the history is not
            # a recovery, docs/log-format.md 12.12)
            rotor_end = None
        elif partial_last:
            rotor_end = int(s_arr[b] + st_arr[b]) if b > a else None
        elif b + 1 < len(rows) and joined[b + 1]:
            rotor_end = int(e_arr[b])
        else:
            rotor_end = None
        ep = None
        for j, r in enumerate(rec_eps):
            if j in used:
                continue
            hi = (rotor_end if rotor_end is not None else e_arr[b]) + tol
            if start - tol <= r.start_s <= hi:
                ep = r
                used.add(j)
                break
        if ep is None:
            ep = StallEpisode(start)
            ep.notes.append("the log has no motor-stall record for it (seen only in the delivery rows)")
            for m in orphans:
                if start - tol <= m.time_s:
                    ep.recovery = m
                    orphans.remove(m)
                    break
        if b == a and partial_last:
            # one row: the stall lies from its start (the record, else the row's end minus the
            # stalled seconds) for stalled_s; reaching the row's end is not a recovery unless
            # a later row shows the rotor turning (docs/log-format.md section 12)
            stop = int(max(ep.start_s, s_arr[b]) + st_arr[b])
            if stop < e_arr[b] - 60:
                rotor_end = stop
            elif b + 1 < len(rows) and joined[b + 1]:
                rotor_end = int(e_arr[b])
            else:
                rotor_end = None
        ep.rotor_end_s = rotor_end
        ep.last_stalled_row_end_s = int(e_arr[b])
        ep.rows = list(range(a, b + 1))
        out.append(ep)
    for j, r in enumerate(rec_eps):
        if j not in used:
            r.notes.append("no delivery rows cover it: rotor behaviour unknown")
            r.missed_known = False
            out.append(r)
    out.sort(key=lambda e: e.start_s)
    _finish(ctx, out)
    return out


def _finish(ctx: Context, eps: list[StallEpisode]) -> None:
    rows, now, status = ctx.rows, ctx.now_s, ctx.status
    margin = ctx.rules.number("stalls", "procedure_margin_h") * HOUR
    tol = ctx.interval_s + ctx.rules.number("stalls", "recovery_log_tolerance_h") * HOUR
    last = eps[-1] if eps else None
    n = len(rows)
    for ep in eps:
        if ep.rotor_end_s is not None:
            ep.end_s = ep.rotor_end_s
        elif ep.rows and ep.last_stalled_row_end_s is not None:  # stalled to the last row of its run
            reaches_end = ep.rows[-1] == n - 1
            rec_after = (ep.recovery is not None
                         and ep.recovery.time_s >= ep.last_stalled_row_end_s - ctx.interval_s)
            if reaches_end and status.motor_stalled:
                ep.ongoing = True
            elif rec_after and ep.recovery is not None:
                ep.end_s = ep.recovery.time_s
                if ep.recovery.time_s >= now - tol and ep.recovery.time_s >= ep.last_stalled_row_end_s:
                    ep.restarted_by_interrogation = _at_interrogation(ctx, ep.recovery.time_s)
            elif reaches_end and not status.known:
                ep.ongoing = True
                ep.notes.append("status snapshot damaged: cannot tell if the rotor turns now")
            elif reaches_end:
                ep.ongoing = True
                ep.notes.append(
                    f"the status reports the motor running, but no delivery and no recovery is "
                    f"recorded after {ctx.clock.time(ep.last_stalled_row_end_s)}: the sources disagree and "
                    "the more dangerous reading is taken")
            else:
                ep.end_s = ep.last_stalled_row_end_s
                ep.notes.append("the history after it is missing: its end is not known")
        else:  # record only
            after = _delivering_after(ctx, ep.start_s)
            if ep.recovery is not None:
                ep.end_s = ep.recovery.time_s
            elif after is not None:
                ep.end_s = after
                ep.notes.append(f"no recovery is logged; the rows show delivery from {ctx.clock.time(after)}")
            elif ep is last:
                ep.ongoing = True
                if status.known and not status.motor_stalled:
                    ep.notes.append("no recovery is logged and no delivery is recorded after it, "
                                    "though the status reports the motor running: the sources "
                                    "disagree and the more dangerous reading is taken")
        if ep.ongoing:
            ep.end_s = None
        _missed(ctx, ep)
        for p in ctx.procedures:
            if p.start_s - margin <= ep.start_s <= p.end_s + margin:
                ep.procedure = p
                break
    if status.motor_stalled and not any(e.ongoing for e in eps):
        eps.append(_from_status(ctx))


def _missed(ctx: Context, ep: StallEpisode) -> None:
    """Drug not delivered: the rows' shortfall, then the program's dose beyond the rows."""
    missed = 0.0
    if ep.rows:
        r = ctx.rows.iloc[ep.rows]
        missed = float(np.clip(r["commanded_mcg"] - r["rotor_mcg"], 0, None).sum())
    end_rows = ep.last_stalled_row_end_s or ep.start_s
    tail_end = ctx.now_s if ep.ongoing else (ep.end_s or end_rows)
    if tail_end > end_rows:  # beyond the rows: what the program asked for
        missed += float(ctx.rec.prescribed_mcg.integral(max(end_rows, ep.start_s), tail_end))
    ep.missed_mcg = missed


def _at_interrogation(ctx: Context, t: int) -> bool:
    """True if ``t`` is at this interrogation: in its programmer session, or within minutes of
    the interrogation time (the recovery was made by the interrogation itself, as when a pump
    left in telemetry mode resumes only when it is read)."""
    tol = ctx.rules.number("stalls", "recovery_log_tolerance_h") * HOUR
    if t >= ctx.now_s - 600:
        return True
    starts = [s.start_s for s in ctx.ep.sessions if s.start_s <= t + 60]
    return bool(starts) and max(starts) >= ctx.now_s - tol and t >= max(starts) - 60


def _delivering_after(ctx: Context, t: int) -> int | None:
    """Start of the first row after ``t`` in which the rotor turned (None if none)."""
    rows = ctx.rows
    if rows.empty:
        return None
    s = rows["start_s"].to_numpy()
    ok = ~ctx.state.not_delivering & (s >= t - 60)
    idx = np.flatnonzero(ok)
    return int(s[idx[0]]) if len(idx) else None


def _from_status(ctx: Context) -> StallEpisode:
    """A stall the pump reports now that the history does not show (damaged, missing or
    simply not yet written): from the last time delivery was seen, to the interrogation."""
    rows = ctx.rows
    delivering = np.flatnonzero(~ctx.state.not_delivering) if len(rows) else np.zeros(0, int)
    start = int(rows["end_s"].iat[int(delivering[-1])]) if len(delivering) else ctx.rec.window[0]
    stalls_after = [m for m in ctx.ep.stalls if m.time_s >= start]
    ep = StallEpisode(start, record=stalls_after[-1] if stalls_after else None)
    if stalls_after:
        ep.start_s = stalls_after[-1].time_s
    ep.ongoing = True
    ep.notes.append(
        "the pump's status reports the motor STALLED now; the history does not show the stall "
        + (f"(delivery last seen up to {ctx.clock.time(start)})" if len(delivering) else
           "(no delivery is recorded at all)")
        + (": part of the history is missing or damaged" if ctx.rec.missing else ""))
    _missed(ctx, ep)
    for p in ctx.procedures:
        margin = ctx.rules.number("stalls", "procedure_margin_h") * HOUR
        if p.start_s - margin <= ctx.now_s and ep.start_s <= p.end_s + margin:
            ep.procedure = p
            break
    return ep


def _explain(ep: StallEpisode, dose: float, now: int, mri_max_h: float, clock: Clock) -> str:
    dur = (ep.end_s if ep.end_s is not None else now) - ep.start_s
    cause = (f"during/after the {ep.procedure.kind.upper()} of {clock.time(ep.procedure.start_s)}"
             if ep.procedure else "with no procedure to explain it (spontaneous)")
    state = ("and is STILL STALLED at interrogation: no drug is being delivered"
             if ep.ongoing else f"until {clock.time(ep.end_s)}")
    text = (f"Motor stall from {clock.time(ep.start_s)} {state} ({hours(dur)}), {cause}. "
            f"About {ep.missed_mcg:.0f} mcg of baclofen was not delivered "
            f"({pct(ep.missed_mcg / dose if dose else None)} of the {dose:g} mcg daily dose).")
    if ep.procedure is not None and ep.procedure.kind == "mri":
        after = ((ep.end_s if ep.end_s is not None else now) - ep.procedure.end_s) / HOUR
        if after > mri_max_h:
            text += (f" The rotor stayed stalled {after:.0f} h after the scan, longer than the "
                     f"delays of up to {mri_max_h:g} h reported after MRI: the motor may not "
                     "recover on its own; contact the manufacturer.")
        elif ep.ongoing:
            text += (f" Delays of up to {mri_max_h:g} h have been reported after MRI, but a stall "
                     "still going is not normal: interrogate again to confirm recovery, and "
                     "contact the manufacturer.")
    if ep.restarted_by_interrogation:
        text += (" Delivery restarted only at this interrogation: confirm with the programmer "
                 "that the motor runs, and interrogate again.")
    if ep.notes:
        text += " Note: " + "; ".join(ep.notes) + "."
    return text


def _evidence(ctx: Context, ep: StallEpisode) -> tuple[int, ...]:
    ev = [m.offset for m in (ep.record, ep.recovery) if m is not None]
    return tuple(sorted(set(ev + list(offsets(ctx.rows, ep.rows)))))


def detect(ctx: Context) -> list[Finding]:
    """motor_stall, stall_ongoing, stall_recovery_unlogged, long_stall, intermittent_stalls."""
    eps = episodes(ctx)
    now = ctx.now_s
    r = ctx.rules
    tol = ctx.interval_s + r.number("stalls", "recovery_log_tolerance_h") * HOUR
    long_h = r.number("pump", "stall_over_infusion_risk_h")
    out: list[Finding] = []
    for ep in eps:
        dose = ctx.rec.daily_dose_at(ep.start_s)
        ev = _evidence(ctx, ep)
        latency = None
        if ep.procedure is not None and ep.end_s is not None:
            latency = (ep.end_s - ep.procedure.end_s) / HOUR
        details = FindingDetails(cause="procedure" if ep.procedure else "spontaneous",
                                 procedure=ep.procedure.kind if ep.procedure else None,
                                 recovery_latency_h=latency, notes=list(ep.notes),
                                 restarted_by_interrogation=ep.restarted_by_interrogation,
                                 logged=ep.record is not None)
        out.append(Finding(
            "motor_stall", "critical" if ep.ongoing else "warning", ep.start_s, ep.end_s,
            _explain(ep, dose, now, r.number("stalls", "reported_mri_recovery_delay_h"), ctx.clock),
            ongoing=ep.ongoing, evidence=ev,
            missed_mcg=ep.missed_mcg if ep.missed_known else None, daily_dose_mcg=dose or None,
            direction="withdrawal", details=details))
        if ep.ongoing:
            out.append(Finding(
                "stall_ongoing", "critical", ep.start_s, None,
                f"The rotor has been stalled since {ctx.clock.time(ep.start_s)} and was still stalled at "
                f"interrogation ({hours(now - ep.start_s)}): the pump is not delivering baclofen. "
                "Withdrawal is likely unless the stall is resolved."
                + (" Note: " + "; ".join(ep.notes) + "." if ep.notes else ""),
                ongoing=True, evidence=ev, missed_mcg=ep.missed_mcg, daily_dose_mcg=dose or None,
                direction="withdrawal", details=details))
        dur_h = ((ep.end_s if ep.end_s is not None else now) - ep.start_s) / HOUR
        if dur_h > long_h:
            out.append(Finding(
                "long_stall", "warning", ep.start_s, ep.end_s,
                f"The stall lasted {hours(dur_h * HOUR)}, longer than {long_h:g} h: stalls this "
                "long are a risk factor for later over-infusion (manufacturer update 2016); "
                "watch for overdose after the motor restarts and check the next refill volume.",
                ongoing=ep.ongoing, evidence=ev, daily_dose_mcg=dose or None, direction="overdose",
                details=FindingDetails(duration_h=dur_h)))
        out.extend(_unlogged(ctx, ep, tol, ev, dose))
    out.extend(_intermittent(ctx, eps))
    return out


def _unlogged(ctx: Context, ep: StallEpisode, tol: float, ev: tuple[int, ...],
              dose: float) -> list[Finding]:
    """The recovery record disagrees with the rotor, and still did at interrogation."""
    now = ctx.now_s
    if ep.record is None:
        return []
    rec = ep.recovery
    late = rec is None or rec.time_s >= now - tol  # not logged before this interrogation
    if ep.rotor_end_s is not None and late and (rec is None or rec.time_s - ep.rotor_end_s > tol):
        when = ("was never logged" if rec is None
                else f"was only logged at this interrogation ({ctx.clock.time(rec.time_s)})")
        return [Finding(
            "stall_recovery_unlogged", "warning", ep.rotor_end_s, None if rec is None else rec.time_s,
            f"The delivery rows show the rotor turning again from {ctx.clock.time(ep.rotor_end_s)}, but "
            f"the motor-stall recovery {when}. The pump's own alarm state may be stale; "
            "confirm the motor is running with the programmer and re-interrogate later.",
            ongoing=rec is None, evidence=ev, daily_dose_mcg=dose or None, direction="unknown",
            details=FindingDetails(type="rotor_turning_no_record"))]
    still = [i for i in ep.rows if ctx.rows["start_s"].iat[i] >= rec.time_s + tol] if rec else []
    if rec is not None and still and (ep.rotor_end_s is None or ep.rotor_end_s >= now - tol):
        after = [i for i in ep.rows if ctx.rows["start_s"].iat[i] >= rec.time_s]
        missed = float(np.clip(ctx.rows["commanded_mcg"].iloc[after]
                               - ctx.rows["rotor_mcg"].iloc[after], 0, None).sum())
        return [Finding(
            "stall_recovery_unlogged", "critical", rec.time_s, ep.end_s,
            f"A motor-stall recovery was logged at {ctx.clock.time(rec.time_s)}, but the delivery rows "
            "show the rotor still not turning after it (as when the pump is left in telemetry "
            "mode while alarming). Delivery resumes only when the pump is interrogated.",
            ongoing=ep.ongoing, evidence=ev, missed_mcg=missed, daily_dose_mcg=dose or None,
            direction="withdrawal", details=FindingDetails(type="record_but_rotor_stalled"))]
    return []


def _intermittent(ctx: Context, eps: list[StallEpisode]) -> list[Finding]:
    n = int(ctx.rules.number("stalls", "intermittent_count"))
    window = ctx.rules.number("stalls", "intermittent_window_days") * 86_400
    spont = [e for e in eps if e.procedure is None]
    clusters: list[list[StallEpisode]] = []
    for i in range(len(spont)):
        group = [e for e in spont[i:] if e.start_s - spont[i].start_s <= window]
        if len(group) >= n:
            if clusters and any(x is y for x in group for y in clusters[-1]):
                clusters[-1] = sorted({id(x): x for x in clusters[-1] + group}.values(),
                                      key=lambda x: x.start_s)
            else:
                clusters.append(group)
    out = []
    for c in clusters:
        last = c[-1]
        missed = sum(e.missed_mcg for e in c)
        dose = ctx.rec.daily_dose_at(c[0].start_s)
        ev = tuple(sorted({o for e in c for o in _evidence(ctx, e)[:2]}))
        out.append(Finding(
            "intermittent_stalls", "critical" if last.ongoing else "warning", c[0].start_s,
            last.end_s,
            f"{len(c)} separate motor stalls between {ctx.clock.time(c[0].start_s)} and "
            f"{ctx.clock.time(last.end_s if last.end_s is not None else last.start_s)} with no procedure to "
            "explain them: repeated stalls are a sign of motor failure (shaft wear, gear "
            "corrosion). Contact the manufacturer; pump replacement may be needed.",
            ongoing=last.ongoing, evidence=ev, missed_mcg=missed, daily_dose_mcg=dose or None,
            direction="withdrawal", details=FindingDetails(count=len(c))))
    return out
