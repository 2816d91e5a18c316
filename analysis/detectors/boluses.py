"""Boluses: any bolus with nothing behind it (a clinician, priming or bridge bolus outside a
programmer session, a patient bolus with no granted myPTM request), and patient boluses
beyond the programmed myPTM limits (daily maximum, lockout, dose)."""

from __future__ import annotations

from itertools import pairwise

from ..context import Context
from ..episodes import Bolus, Mark
from ..findings import Finding, FindingDetails
from ..timeutil import DAY


def detect(ctx: Context) -> list[Finding]:
    """unexpected_bolus and ptm_over_limit."""
    return _unexpected(ctx) + _ptm_limits(ctx)


def _mcg(ctx: Context, b: Bolus) -> float:
    """Drug actually given: volume times the concentration really in the reservoir."""
    return b.volume_given_ml * ctx.rec.drug_concentration_at(b.start_s) if b.volume_given_ml \
        else b.dose_given_mcg


def _unexpected(ctx: Context) -> list[Finding]:
    r = ctx.rules
    margin = r.number("boluses", "session_margin_min") * 60
    match = r.number("boluses", "ptm_request_match_min") * 60
    requests: list[Mark] = [m for m in ctx.ep.ptm_requests if m.values.get("granted") == 1]
    used: set[int] = set()
    out = []
    for b in ctx.ep.boluses:
        why = None
        if b.kind in ("clinician", "priming", "bridge"):
            if not ctx.ep.in_session(b.start_s, int(margin), open_until=ctx.now_s):
                why = (f"a {b.kind} bolus outside any programmer session (a clinician bolus "
                       "needs a telemetry session)")
        elif b.kind == "patient":
            req = next((m for m in requests if id(m) not in used
                        and b.start_s - match <= m.time_s <= b.start_s + 60), None)
            if req is None:
                why = "a patient bolus with no granted myPTM request before it"
            else:
                used.add(id(req))
        else:
            why = f"a bolus of unknown kind ({b.kind})"
        if why is None:
            continue
        mcg = _mcg(ctx, b)
        dose = ctx.rec.daily_dose_at(b.start_s)
        share = f" ({100 * mcg / dose:.0f}% of the daily dose)" if dose else ""
        out.append(Finding(
            "unexpected_bolus", "critical", b.start_s, b.planned_end_s,
            f"On {ctx.clock.time(b.start_s)} the pump gave {why}: about {mcg:.0f} mcg{share}. Nothing in "
            "the log explains it: watch for overdose and report the pump.",
            evidence=b.offsets, excess_mcg=mcg, daily_dose_mcg=dose or None,
            direction="overdose", details=FindingDetails(bolus_kind=b.kind, bolus_id=b.bolus_id)))
    return out


def _ptm_limits(ctx: Context) -> list[Finding]:
    st = ctx.log.status
    r = ctx.rules
    dose_tol = r.number("boluses", "ptm_dose_tolerance")
    patient = [b for b in ctx.ep.boluses if b.kind == "patient"]
    out = []
    problems: list[tuple[Bolus | Mark, str, float]] = []
    if ctx.log.status_ok and patient:
        if not st.ptm_enabled:
            problems += [(b, "myPTM is disabled in the pump's settings", _mcg(ctx, b)) for b in patient]
        else:
            by_day: dict[int, list[Bolus]] = {}
            for b in patient:
                by_day.setdefault(b.start_s // DAY, []).append(b)
            if st.ptm_max_per_day > 0:
                for day_list in by_day.values():
                    for b in day_list[st.ptm_max_per_day:]:
                        problems.append((b, f"more than the {st.ptm_max_per_day} patient boluses "
                                            "allowed per day", _mcg(ctx, b)))
            if st.ptm_lockout_min > 0:
                for a, b in pairwise(patient):
                    gap = (b.start_s - a.start_s) / 60
                    if gap < st.ptm_lockout_min:
                        problems.append((b, f"{gap:.0f} min after the previous patient bolus "
                                            f"(lockout {st.ptm_lockout_min} min)", _mcg(ctx, b)))
            if st.ptm_dose_mcg > 0:
                for b in patient:
                    if b.dose_mcg > st.ptm_dose_mcg * (1 + dose_tol):
                        problems.append((b, f"{b.dose_mcg:g} mcg, above the programmed "
                                            f"{st.ptm_dose_mcg:g} mcg", b.dose_mcg - st.ptm_dose_mcg))
    for m in ctx.ep.ptm_requests:
        reason = str(m.values.get("reason"))
        if m.values.get("granted") == 1 and reason not in ("granted", "None"):
            problems.append((m, f"a myPTM request granted although its reason is {reason}", 0.0))
    seen: set[int] = set()
    for item, why, mcg in sorted(problems, key=lambda x: _t(x[0])):
        key = id(item)
        if key in seen:
            continue
        seen.add(key)
        t = _t(item)
        dose = ctx.rec.daily_dose_at(t)
        ev = item.offsets if isinstance(item, Bolus) else (item.offset,)
        end = item.planned_end_s if isinstance(item, Bolus) else t
        out.append(Finding(
            "ptm_over_limit", "warning", t, end,
            f"Patient bolus on {ctx.clock.time(t)}: {why}. The myPTM limits exist to stop accumulation; "
            "check the settings and the device, and watch for overdose.",
            evidence=ev, excess_mcg=mcg or None, daily_dose_mcg=dose or None,
            direction="overdose"))
    return out


def _t(item: Bolus | Mark) -> int:
    return item.start_s if isinstance(item, Bolus) else item.time_s
