"""Programming: titration rules of the guideline (step size, spacing, maximum, unit errors),
programmed concentration against the drug in the reservoir (and concentration changes
without a bridge bolus), and restarting at the full dose after a long stop."""

from __future__ import annotations

from itertools import pairwise

from clinical.titration import TitrationLimits, in_hospital_window_end_s, judge_step

from ..context import Context
from ..episodes import Program
from ..findings import Direction, Finding, FindingDetails
from ..piecewise import Piecewise
from ..timeutil import DAY, HOUR, hours


def detect(ctx: Context) -> list[Finding]:
    """titration_violation, dose_decrease, concentration_mismatch, restart_full_dose."""
    return _titration(ctx) + _concentration(ctx)


def _titration(ctx: Context) -> list[Finding]:
    """Each program change judged by the one titration judgement (:mod:`clinical.titration`),
    shared with the programmer and the research tables.  In hospital after the implant is
    assumed for the implant day and the ``inpatient_days`` after it (4.1.3)."""
    limits = TitrationLimits.from_rules(ctx.rules)
    max_dose = limits.upper_limit_mcg_day
    inpatient_end = in_hospital_window_end_s(ctx.log.header.implant_date, limits)
    # an inferred program (from the rows, before the first record) is compared for a large
    # cut only: its dose is an estimate, too rough to judge a titration step
    spans = [ps for ps in ctx.rec.program_spans if ps.program.source in ("log", "inferred")]
    out: list[Finding] = []
    prev: Program | None = None
    last_increase: int | None = None
    stop_start: int | None = None
    for k, ps in enumerate(spans):
        p = ps.program
        end = spans[k + 1].start_s if k + 1 < len(spans) else None
        if p.source == "inferred":
            prev = p if p.mode != "stopped" else prev
            continue
        if prev is not None and prev.source == "inferred":
            if p.mode != "stopped" and judge_step(prev.daily_dose_mcg, p.daily_dose_mcg, limits).large_cut:
                out.append(_cut(p, prev, end, ctx))
            prev = p
            continue
        if p.mode == "stopped":
            stop_start = p.start_s if stop_start is None else stop_start
            continue
        new = p.daily_dose_mcg
        days_in_effect = ((end if end is not None else ctx.now_s) - p.start_s) / DAY
        old = prev.daily_dose_mcg if prev is not None else None
        j = judge_step(
            old, new, limits, in_hospital=p.start_s < inpatient_end,
            days_since_increase=None if last_increase is None else (p.start_s - last_increase) / DAY,
            stopped_h=None if stop_start is None else (p.start_s - stop_start) / HOUR)
        if j.kind == "restart":
            if j.full_dose_restart and stop_start is not None:
                above = (f" {new:g} mcg/day is also above the {max_dose:g} mcg/day upper limit "
                         "(reached only in significant dystonia, guideline 4.1.5)."
                         if not j.max_ok else "")
                out.append(Finding(
                    "restart_full_dose", "critical", p.start_s, end,
                    f"On {ctx.clock.time(p.start_s)} the pump was restarted at {new:g} mcg/day after being "
                    f"stopped for {hours(p.start_s - stop_start)} (since {ctx.clock.time(stop_start)}); "
                    f"before the stop it gave {old:g} mcg/day. After a day or more without "
                    "baclofen, tolerance falls: restarting at the full dose risks overdose. "
                    "Restart lower and re-titrate." + above,
                    ongoing=end is None, evidence=p.offsets[:1], daily_dose_mcg=new,
                    direction="overdose", details=FindingDetails(stop_h=(p.start_s - stop_start) / HOUR,
                                                                 previous_dose_mcg=old, new_dose_mcg=new,
                                                                 above_max=not j.max_ok,
                                                                 max_dose_mcg=max_dose)))
            prev, last_increase, stop_start = p, None, None
            continue
        stop_start = None
        excess = missed = None
        direction: Direction = "overdose"
        if j.unit_error and old is not None:
            if new < old:
                direction, missed = "withdrawal", (old - new) * days_in_effect
            else:
                excess = (new - old) * days_in_effect
        elif j.large_cut and prev is not None:
            out.append(_cut(p, prev, end, ctx))
        elif not j.step_ok and j.allowed_mcg_day is not None:
            excess = (new - j.allowed_mcg_day) * days_in_effect
        if j.kind == "increase":
            last_increase = p.start_s
        if not j.max_ok:
            excess = max(excess or 0.0, (new - max_dose) * days_in_effect)
        if j.problems:
            ov = (" The programmer's titration check was overridden." if p.override else "")
            out.append(Finding(
                "titration_violation", "critical" if j.unit_error else "warning", p.start_s, end,
                f"Program change on {ctx.clock.time(p.start_s)}: " + "; ".join(j.problems) + "." + ov,
                ongoing=end is None, evidence=p.offsets[:1], excess_mcg=excess, missed_mcg=missed,
                daily_dose_mcg=(old if prev else new) or None,
                direction=direction, details=FindingDetails(override=p.override, new_dose_mcg=new,
                                                            above_max=not j.max_ok,
                                                            max_dose_mcg=max_dose,
                                                            unit_error=j.unit_error,
                                                            previous_dose_mcg=old,
                                                            in_hospital=j.in_hospital)))
        prev = p
    return out


def _cut(p: Program, prev: Program, end: int | None, ctx: Context) -> Finding:
    """dose_decrease: a large cut is a reprogramming error or a fast wean (5.1.1.3, 5.1.1.8)."""
    old, new = prev.daily_dose_mcg, p.daily_dose_mcg
    days = ((end if end is not None else ctx.now_s) - p.start_s) / DAY
    inferred = (" (the earlier dose is inferred from the delivery history: no program record "
                "for it survives in the log)" if prev.source == "inferred" else "")
    return Finding(
        "dose_decrease", "warning", p.start_s, end,
        f"On {ctx.clock.time(p.start_s)} the daily dose was cut by {100 * (1 - new / old):.0f}% in one step "
        f"({old:.0f} to {new:g} mcg/day){inferred}. A large decrease is a withdrawal risk: a "
        "reprogramming error, or weaning too fast (guideline 5.1.1.3 and 5.1.1.8). Confirm the "
        "new dose was intended; watch for withdrawal signs (5.1.2).",
        ongoing=end is None, evidence=p.offsets[:1], missed_mcg=(old - new) * days,
        daily_dose_mcg=old, direction="withdrawal",
        details=FindingDetails(previous_dose_mcg=old, new_dose_mcg=new, decrease_fraction=1 - new / old,
                               override=p.override, previous_inferred=prev.source == "inferred"))


def _concentration(ctx: Context) -> list[Finding]:
    r = ctx.rules
    tol = r.number("pump", "concentration_label_tolerance")
    grace = r.number("concentration_checks", "mismatch_grace_min") * 60
    rec = ctx.rec
    now = ctx.now_s
    rows = ctx.rows
    cmd = Piecewise.from_intervals(rows["start_s"].to_numpy(), rows["end_s"].to_numpy(),
                                   rows["commanded_ml"].to_numpy(dtype=float))
    refills = sorted(ctx.ep.refills, key=lambda x: x.time_s)
    # sub-intervals where the entered and the real concentration are constant
    cuts = sorted({*(ps.start_s for ps in rec.program_spans), *(rf.time_s for rf in refills),
                   rec.window[1]})
    segs = []
    for a, b in pairwise(cuts):
        prog = rec.program_at(a)
        if prog is None or prog.mode == "stopped" or prog.concentration_mcg_ml <= 0:
            continue
        drug = rec.drug_concentration_at(a)
        if abs(prog.concentration_mcg_ml - drug) > tol * drug:
            segs.append((a, b, prog, drug))
    merged: list[list] = []
    for a, b, prog, drug in segs:
        if merged and merged[-1][1] == a and merged[-1][3] == drug and \
                merged[-1][2].concentration_mcg_ml == prog.concentration_mcg_ml:
            merged[-1][1] = b
        else:
            merged.append([a, b, prog, drug])
    out: list[Finding] = []
    for a, b, prog, drug in merged:
        ongoing = b >= rec.window[1]
        if b - a < grace and not ongoing:
            continue
        entered = prog.concentration_mcg_ml
        ml = float(cmd.integral(a, now if ongoing else b))
        delta = ml * (drug - entered)
        dose = prog.daily_dose_mcg
        factor = drug / entered
        ev = tuple(sorted({*prog.offsets[:1], *(rf.offset for rf in refills if a <= rf.time_s <= b)}))[:3]
        assumed = not rec.conc_from_status and (rec.first_refill_s is None
                                                or a < rec.first_refill_s)
        note = (" (The log holds no refill before this, so the drug in the reservoir is taken "
                "to be what the earliest program entered; check the refill records.)"
                if assumed else "")
        out.append(Finding(
            "concentration_mismatch", "critical", a, None if ongoing else b,
            f"From {ctx.clock.time(a)}"
            f"{' (still at interrogation)' if ongoing else ' to ' + ctx.clock.time(b)} the pump "
            f"was programmed for {entered:g} mcg/mL but the reservoir held {drug:g} mcg/mL: it "
            f"delivered {factor:.2f} times the prescribed {dose:g} mcg/day"
            + (f", about {abs(delta):.0f} mcg {'too much' if delta > 0 else 'too little'}" if ml else "")
            + ". Reprogram with the concentration of the drug in the reservoir "
            + ("(overdose risk, guideline 5.2.1)." if delta > 0 else "(withdrawal risk).") + note,
            ongoing=ongoing, evidence=ev, excess_mcg=delta if delta > 0 else None,
            missed_mcg=-delta if delta < 0 else None, daily_dose_mcg=dose or None,
            direction="overdose" if factor > 1 else "withdrawal",
            details=FindingDetails(entered_mcg_ml=entered, reservoir_mcg_ml=drug, factor=factor)))
    out.extend(_bridge(ctx, refills, tol, out))
    return out


def _bridge(ctx: Context, refills: list, tol: float, mismatches: list[Finding]) -> list[Finding]:
    """A refill that changes the concentration needs a bridge bolus: the pump and catheter
    still hold the old drug, which is otherwise delivered at the new program's rate."""
    r = ctx.rules
    window = r.number("boluses", "bridge_window_h") * HOUR
    margin = r.number("boluses", "session_margin_min") * 60
    dead = r.number("pump", "catheter_dead_space_ml")
    rec = ctx.rec
    out = []
    for rf in refills:
        if rec.first_refill_s is None:
            break
        old = rec.drug_concentration_at(rf.time_s - 1)
        known = rf.time_s > rec.first_refill_s or any(
            ps.program.source == "log" for ps in rec.program_spans if ps.start_s < rf.time_s)
        new = rf.concentration_mcg_ml
        if not known or old <= 0 or abs(new - old) <= tol * old:
            continue
        bridged = any(b.kind == "bridge" and rf.time_s - margin <= b.start_s <= rf.time_s + window
                      for b in ctx.ep.boluses)
        if bridged:
            continue
        if any(f.start_s is not None and abs(f.start_s - rf.time_s) <= 60 for f in mismatches):
            continue  # the mismatch finding starting at this refill already covers it
        delta = dead * (old - new)
        out.append(Finding(
            "concentration_mismatch", "warning", rf.time_s, rf.time_s,
            f"The refill on {ctx.clock.time(rf.time_s)} changed the drug from {old:g} to {new:g} mcg/mL "
            "with no bridge bolus: the pump and catheter still held the old drug, delivered at "
            f"the new program's rate (about {abs(delta):.0f} mcg "
            f"{'too much' if delta > 0 else 'too little'} over the next days).",
            evidence=(rf.offset,), excess_mcg=delta if delta > 0 else None,
            missed_mcg=-delta if delta < 0 else None,
            daily_dose_mcg=rec.daily_dose_at(rf.time_s) or None,
            direction="overdose" if delta > 0 else "withdrawal",
            details=FindingDetails(old_mcg_ml=old, new_mcg_ml=new, bridge_bolus=False)))
    return out

