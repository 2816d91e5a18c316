"""Programming: titration rules of the guideline (step size, spacing, maximum, unit errors),
programmed concentration against the drug in the reservoir (and concentration changes
without a bridge bolus), and restarting at the full dose after a long stop."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

from ..context import Context
from ..episodes import Program
from ..findings import Finding
from ..piecewise import Piecewise
from ..timeutil import DAY, HOUR, fmt, hours


def detect(ctx: Context) -> list[Finding]:
    """titration_violation, dose_decrease, concentration_mismatch, restart_full_dose."""
    return _titration(ctx) + _concentration(ctx)


def _implant_s(ctx: Context) -> int:
    d = ctx.log.header.implant_date
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp())


def _titration(ctx: Context) -> list[Finding]:
    r = ctx.rules
    step_frac = r.number("titration", "max_step_fraction")
    min_gap = r.number("titration", "min_step_interval_days") * DAY
    max_dose = r.number("titration", "max_daily_dose_mcg")
    inpatient_step = r.number("titration", "inpatient_step_mcg_day")
    inpatient_end = _implant_s(ctx) + (r.number("titration_checks", "inpatient_days") + 1) * DAY
    unit_ratio = r.number("titration_checks", "unit_error_ratio")
    tol = r.number("titration_checks", "dose_change_tolerance")
    big_cut = r.number("titration_checks", "large_decrease_fraction")
    restart_h = r.number("titration", "restart_after_stop_hours")
    restart_frac = r.number("titration_checks", "restart_full_dose_fraction")
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
            if p.mode != "stopped" and prev.daily_dose_mcg > 0 \
                    and p.daily_dose_mcg / prev.daily_dose_mcg < 1 - big_cut:
                out.append(_cut(p, prev, end, ctx))
            prev = p
            continue
        if p.mode == "stopped":
            stop_start = p.start_s if stop_start is None else stop_start
            continue
        new = p.daily_dose_mcg
        days_in_effect = ((end if end is not None else ctx.now_s) - p.start_s) / DAY
        problems: list[str] = []
        excess = missed = None
        direction = "overdose"
        severity = "warning"
        after_stop = stop_start is not None and p.start_s - stop_start >= restart_h * HOUR
        if after_stop and prev is not None and prev.daily_dose_mcg > 0:
            old = prev.daily_dose_mcg
            if new >= restart_frac * old:
                above = (f" {new:g} mcg/day is also above the {max_dose:g} mcg/day upper limit "
                         "(reached only in significant dystonia, guideline 4.1.5)."
                         if new > max_dose else "")
                out.append(Finding(
                    "restart_full_dose", "critical", p.start_s, end,
                    f"On {fmt(p.start_s)} the pump was restarted at {new:g} mcg/day after being "
                    f"stopped for {hours(p.start_s - stop_start)} (since {fmt(stop_start)}); "
                    f"before the stop it gave {old:g} mcg/day. After a day or more without "
                    "baclofen, tolerance falls: restarting at the full dose risks overdose. "
                    "Restart lower and re-titrate." + above,
                    ongoing=end is None, evidence=p.offsets[:1], daily_dose_mcg=new,
                    direction="overdose", details={"stop_h": (p.start_s - stop_start) / HOUR,
                                                   "previous_dose_mcg": old, "new_dose_mcg": new,
                                                   "above_max": new > max_dose,
                                                   "max_dose_mcg": max_dose}))
            prev, last_increase, stop_start = p, None, None
            continue
        stop_start = None
        if prev is not None and prev.daily_dose_mcg > 0 and new > 0:
            old = prev.daily_dose_mcg
            ratio = new / old
            if ratio >= unit_ratio or ratio <= 1 / unit_ratio:
                problems.append(f"the dose changed {ratio:g}-fold ({old:g} to {new:g} mcg/day): "
                                "a dose entered in the wrong unit (mg for mcg)")
                severity = "critical"
                if ratio < 1:
                    direction = "withdrawal"
                    missed = (old - new) * days_in_effect
                else:
                    excess = (new - old) * days_in_effect
            elif ratio < 1 - big_cut:
                out.append(_cut(p, prev, end, ctx))
            elif ratio > 1 + tol:
                allowed = old * (1 + step_frac)
                inpatient = p.start_s < inpatient_end
                if inpatient:
                    allowed = max(allowed, old + inpatient_step)
                if new > allowed * (1 + 1e-9):
                    extra = (f" or +{inpatient_step:g} mcg/day in hospital (4.1.3)"
                             if inpatient else "")
                    problems.append(f"+{100 * (ratio - 1):.0f}% in one step ({old:g} to {new:g} "
                                    f"mcg/day); the guideline allows +{100 * step_frac:.0f}% "
                                    f"(4.1.4){extra}")
                    excess = (new - allowed) * days_in_effect
                if last_increase is not None and p.start_s - last_increase < min_gap and not inpatient:
                    problems.append(f"only {(p.start_s - last_increase) / DAY:.1f} days after the "
                                    f"previous increase; the guideline spaces steps at least "
                                    f"{min_gap / DAY:g} days apart (4.1.4)")
                last_increase = p.start_s
        if new > max_dose:
            problems.append(f"{new:g} mcg/day is above the {max_dose:g} mcg/day maximum (4.1.5)")
            excess = max(excess or 0.0, (new - max_dose) * days_in_effect)
        if problems:
            ov = (" The programmer's titration check was overridden." if p.override else "")
            out.append(Finding(
                "titration_violation", severity, p.start_s, end,
                f"Program change on {fmt(p.start_s)}: " + "; ".join(problems) + "." + ov,
                ongoing=end is None, evidence=p.offsets[:1], excess_mcg=excess, missed_mcg=missed,
                daily_dose_mcg=(prev.daily_dose_mcg if prev else new) or None,
                direction=direction, details={"override": p.override, "new_dose_mcg": new,
                                              "above_max": new > max_dose,
                                              "max_dose_mcg": max_dose,
                                              "unit_error": severity == "critical",
                                              "previous_dose_mcg": prev.daily_dose_mcg if prev else None}))
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
        f"On {fmt(p.start_s)} the daily dose was cut by {100 * (1 - new / old):.0f}% in one step "
        f"({old:.0f} to {new:g} mcg/day){inferred}. A large decrease is a withdrawal risk: a "
        "reprogramming error, or weaning too fast (guideline 5.1.1.3 and 5.1.1.8). Confirm the "
        "new dose was intended; watch for withdrawal signs (5.1.2).",
        ongoing=end is None, evidence=p.offsets[:1], missed_mcg=(old - new) * days,
        daily_dose_mcg=old, direction="withdrawal",
        details={"previous_dose_mcg": old, "new_dose_mcg": new, "decrease_fraction": 1 - new / old,
                 "override": p.override, "previous_inferred": prev.source == "inferred"})


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
            f"From {fmt(a)}{' (still at interrogation)' if ongoing else ' to ' + fmt(b)} the pump "
            f"was programmed for {entered:g} mcg/mL but the reservoir held {drug:g} mcg/mL: it "
            f"delivered {factor:.2f} times the prescribed {dose:g} mcg/day"
            + (f", about {abs(delta):.0f} mcg {'too much' if delta > 0 else 'too little'}" if ml else "")
            + ". Reprogram with the concentration of the drug in the reservoir "
            + ("(overdose risk, guideline 5.2.1)." if delta > 0 else "(withdrawal risk).") + note,
            ongoing=ongoing, evidence=ev, excess_mcg=delta if delta > 0 else None,
            missed_mcg=-delta if delta < 0 else None, daily_dose_mcg=dose or None,
            direction="overdose" if factor > 1 else "withdrawal",
            details={"entered_mcg_ml": entered, "reservoir_mcg_ml": drug, "factor": factor}))
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
            f"The refill on {fmt(rf.time_s)} changed the drug from {old:g} to {new:g} mcg/mL "
            "with no bridge bolus: the pump and catheter still held the old drug, delivered at "
            f"the new program's rate (about {abs(delta):.0f} mcg "
            f"{'too much' if delta > 0 else 'too little'} over the next days).",
            evidence=(rf.offset,), excess_mcg=delta if delta > 0 else None,
            missed_mcg=-delta if delta < 0 else None,
            daily_dose_mcg=rec.daily_dose_at(rf.time_s) or None,
            direction="overdose" if delta > 0 else "withdrawal",
            details={"old_mcg_ml": old, "new_mcg_ml": new, "bridge_bolus": False}))
    return out

