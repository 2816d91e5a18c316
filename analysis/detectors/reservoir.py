"""The reservoir: refill discrepancies (measured against expected residual), running empty,
running low before the next refill, and refills later than the drug's stability allows.

The pump's reservoir volume is an estimate from counted rotor strokes, never measured; only
the residual a clinician withdraws at a refill is measured.  Measured above expected beyond
the limits means the pump delivered less than it thinks; below means it over-infused (and
its low/empty alarms, computed from the estimate, come too late or never).
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise

from ..context import Context
from ..findings import Finding, FindingDetails
from ..piecewise import merge_spans
from ..timeutil import DAY
from ._util import contiguous, flagged_runs, offsets, pct
from .device import _pump_clock_to_utc


def detect(ctx: Context) -> list[Finding]:
    """refill_under_delivery, refill_over_infusion, empty_reservoir,
    reservoir_low_before_refill, refill_overdue."""
    out = _refill_discrepancies(ctx)
    empties = _empty(ctx)
    out.extend(empties)
    if not any(f.ongoing for f in empties):
        out.extend(_low_projection(ctx))
    out.extend(_overdue(ctx))
    return out


def _refill_discrepancies(ctx: Context) -> list[Finding]:
    r = ctx.rules
    acc = r.number("pump", "flow_accuracy_fraction")
    limit = r.refill_discrepancy_ml(ctx.log.header.model_ml)
    empty_ml = r.number("pump", "empty_reservoir_ml")
    implausible = r.number("refill", "implausible_ratio")
    out = []
    prev = None
    for rf in sorted(ctx.ep.refills, key=lambda x: x.time_s):
        if rf.measured_residual_ml > ctx.log.header.model_ml:  # not measured (log-format 12.8)
            prev = rf
            continue
        used = prev.reservoir_ml - rf.expected_residual_ml if prev is not None else None
        tol = max(limit, acc * used) if used is not None and used > 0 else limit
        diff = rf.measured_residual_ml - rf.expected_residual_ml
        conc = ctx.rec.drug_concentration_at(rf.time_s - 1)
        dose = ctx.rec.daily_dose_at(rf.time_s - 1)
        start = prev.time_s if prev is not None else ctx.rec.window[0]
        ratio = (used - diff) / used if used else None  # drug gone / drug the pump counted
        basis = (f"expected residual {rf.expected_residual_ml:.2f} mL, measured "
                 f"{rf.measured_residual_ml:.2f} mL (difference {diff:+.2f} mL; limit "
                 f"{tol:.2f} mL = the larger of {limit:g} mL for a {ctx.log.header.model_ml} mL "
                 f"pump and {100 * acc:.1f}% labeled accuracy"
                 + (f" of the {used:.2f} mL the pump counted since the last refill" if used else "")
                 + ")")
        details = partial(FindingDetails, expected_ml=rf.expected_residual_ml,
                          measured_ml=rf.measured_residual_ml, difference_ml=diff, limit_ml=tol,
                          used_ml=used, actual_over_expected=ratio)
        if diff > tol:
            mcg = diff * conc
            out.append(Finding(
                "refill_under_delivery", "warning", start, rf.time_s,
                f"At the refill on {ctx.clock.time(rf.time_s)} more drug was left than the pump expected: "
                f"{basis}. The pump delivered less than it thinks, about {mcg:.0f} mcg "
                f"({pct(mcg / dose if dose else None)} of a daily dose) less since "
                f"{ctx.clock.time(start)}. Possible causes: rotor not turning as counted, catheter "
                "occlusion or kink (not visible in telemetry). Withdrawal risk; if it recurs, "
                "investigate the pump and catheter.",
                evidence=(rf.offset,), missed_mcg=mcg, daily_dose_mcg=dose or None,
                direction="withdrawal", details=details()))
        elif -diff > tol and ratio is not None and ratio > implausible:
            missed = float(ctx.rec.prescribed_mcg.integral(start, rf.time_s))
            out.append(Finding(
                "refill_over_infusion", "critical", start, rf.time_s,
                f"At the refill on {ctx.clock.time(rf.time_s)} the reservoir was nearly empty: {basis}. "
                f"{ratio:.0f} times the volume the pump counted is gone, far more than any pump "
                "over-infusion: the drug most likely never reached the reservoir at the previous "
                f"refill ({ctx.clock.time(start)}): a pocket fill (overdose from the pocket in the first "
                "hours, then withdrawal), or it leaked. Up to "
                f"{missed:.0f} mcg ({pct(missed / dose if dose else None)} of a daily dose) "
                "may not have been delivered. Treat as withdrawal (guideline 5.1); examine the "
                "pump site.",
                evidence=(rf.offset,), missed_mcg=missed, daily_dose_mcg=dose or None,
                direction="withdrawal", details=details(drug_missing=True)))
        elif -diff > tol:
            mcg = -diff * conc
            dry = rf.measured_residual_ml <= empty_ml < rf.expected_residual_ml
            text = (f"At the refill on {ctx.clock.time(rf.time_s)} less drug was left than the pump "
                    f"expected: {basis}. The pump over-infused about {mcg:.0f} mcg "
                    f"({pct(mcg / dose if dose else None)} of a daily dose) more than "
                    f"programmed since {ctx.clock.time(start)}. Its low- and empty-reservoir alarms are "
                    "computed from the programmed rate, so they come late or never.")
            if dry:
                text += (" The measured residual is at or below the empty level: the reservoir "
                         "probably ran dry before the refill with no alarm (withdrawal).")
            text += " Report to the manufacturer; shorten the refill interval until resolved."
            out.append(Finding(
                "refill_over_infusion", "critical" if dry else "warning", start, rf.time_s, text,
                evidence=(rf.offset,), excess_mcg=mcg, daily_dose_mcg=dose or None,
                direction="both" if dry else "overdose", details=details(may_have_run_dry=dry)))
        prev = rf
    return out


def _empty(ctx: Context) -> list[Finding]:
    r = ctx.rules
    empty_ml = r.number("pump", "empty_reservoir_ml")
    st = ctx.log.status
    now = ctx.now_s
    refills = sorted(rf.time_s for rf in ctx.ep.refills)
    spans: list[tuple[float, float]] = []
    ev: dict[float, list[int]] = {}

    def end_after(t: float) -> float:
        nxt = [x for x in refills if x > t]
        return float(nxt[0]) if nxt else float("inf")

    for a in ctx.ep.alarms:
        if a.alarm == "empty_reservoir":
            cleared = a.cleared_s if a.cleared_s is not None else end_after(a.raised_s)
            spans.append((a.raised_s, cleared))
            ev.setdefault(a.raised_s, []).extend(a.offsets)
    rows = ctx.rows
    if len(rows):
        low = rows["reservoir_ml"].to_numpy() <= empty_ml
        for i, j in flagged_runs(low, contiguous(rows)):
            s = float(rows["end_s"].iat[i])
            e = float(rows["end_s"].iat[j]) if j + 1 < len(rows) else end_after(s)
            e = min(e, end_after(s)) if j + 1 < len(rows) else e
            spans.append((s, e))
            ev.setdefault(s, []).extend(offsets(rows, [i, j]))
    status_empty = ctx.log.status_ok and (st.reservoir_ml <= empty_ml
                                          or "empty_reservoir" in st.active_alarms)
    if status_empty and not spans:
        spans.append((float(now), float("inf")))
    out = []
    for s, e in merge_spans(spans):
        ongoing = e == float("inf") or (e >= now and status_empty)
        if e == float("inf") and not status_empty:
            ongoing = False
            e = float(now)
        end = None if ongoing else int(e)
        missed = float(ctx.rec.prescribed_mcg.integral(s, now if ongoing else e))
        dose = ctx.rec.daily_dose_at(s)
        evid = tuple(sorted({o for k, v in ev.items() if s <= k <= (e if e != float('inf') else now)
                             for o in v}))
        state = ("and is STILL EMPTY at interrogation" if ongoing else f"until {ctx.clock.time(end)}")
        out.append(Finding(
            "empty_reservoir", "critical" if ongoing else "warning", int(s), end,
            f"The reservoir was empty by the pump's estimate from {ctx.clock.time(s)} {state}: no "
            f"baclofen was delivered, about {missed:.0f} mcg "
            f"({pct(missed / dose if dose else None)} of a daily dose) missed. Refill urgently "
            "and treat as withdrawal risk (guideline 5.1).",
            ongoing=ongoing, evidence=evid, missed_mcg=missed, daily_dose_mcg=dose or None,
            direction="withdrawal"))
    return out


def _last_refill(ctx: Context) -> tuple[int | None, float | None, tuple[int, ...]]:
    if ctx.ep.refills:
        rf = max(ctx.ep.refills, key=lambda x: x.time_s)
        return rf.time_s, rf.reservoir_ml, (rf.offset,)
    st = ctx.log.status
    if ctx.log.status_ok and st.last_refill_clock:
        return _pump_clock_to_utc(ctx, st.last_refill_clock), None, ()
    return None, None, ()


def _low_projection(ctx: Context) -> list[Finding]:
    r = ctx.rules
    st = ctx.log.status
    if not ctx.log.status_ok or st.mode == "stopped":
        return []
    rate = st.rate_ml_day
    if rate <= 0:
        return []
    acc = r.number("pump", "flow_accuracy_fraction")
    safe = r.number("reservoir", "safe_residual_ml")
    horizon = r.number("reservoir", "projection_horizon_days")
    _, fill_ml, ev = _last_refill(ctx)
    est = st.reservoir_ml
    used = max(0.0, fill_ml - est) if fill_ml is not None else 0.0
    worst_now = est - acc * used
    days = (worst_now - safe) / (rate * (1 + acc))
    if days >= horizon:
        return []
    now = ctx.now_s
    when = "already" if days <= 0 else f"within {days:.1f} days (by {ctx.clock.time(now + days * DAY)})"
    empty_days = max(0.0, worst_now / (rate * (1 + acc)))
    return [Finding(
        "reservoir_low_before_refill", "warning", now, None,
        f"The pump estimates {est:.2f} mL left at {rate:.3f} mL/day. Allowing for the labeled "
        f"accuracy ({100 * acc:.1f}%), the reservoir may be below the safe residual of "
        f"{safe:g} mL {when}, and empty in about {empty_days:.0f} days. Withdrawal can begin "
        "above the low-reservoir alarm level, before the alarm sounds. Bring the refill forward.",
        ongoing=True, evidence=ev, daily_dose_mcg=st.daily_dose_mcg_day or None,
        direction="withdrawal", details=FindingDetails(days_to_safe_residual=days,
                                                       worst_case_residual_ml=worst_now))]


def _overdue(ctx: Context) -> list[Finding]:
    limit = ctx.rules.number("pump", "drug_stability_days") * DAY
    now = ctx.now_s
    out = []
    times = sorted(ctx.ep.refills, key=lambda x: x.time_s)
    for a, b in pairwise(times):
        if b.time_s - a.time_s > limit:
            out.append(Finding(
                "refill_overdue", "warning", int(a.time_s + limit), b.time_s,
                f"The refill on {ctx.clock.time(b.time_s)} came {(b.time_s - a.time_s) / DAY:.0f} days "
                f"after the previous one ({ctx.clock.time(a.time_s)}): the drug is stable in the reservoir "
                f"for {limit / DAY:.0f} days (guideline 4.1.6).",
                evidence=(a.offset, b.offset), direction="withdrawal"))
    t_fill, _, ev = _last_refill(ctx)
    if t_fill is not None and now - t_fill > limit:
        out.append(Finding(
            "refill_overdue", "warning", int(t_fill + limit), None,
            f"The last refill was on {ctx.clock.time(t_fill)}, {(now - t_fill) / DAY:.0f} days before this "
            f"interrogation: more than the {limit / DAY:.0f} days the drug is stable in the "
            "reservoir (guideline 4.1.6). Refill now.",
            ongoing=True, evidence=ev, direction="withdrawal"))
    return out

