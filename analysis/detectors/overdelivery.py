"""Volumes that disagree: the rotor turning more than commanded, the pump commanding more
than prescribed (beyond labeled accuracy), and the rotor confirming less than commanded
outside a stall (sustained).

Volumes are compared in mL, so a wrong concentration (a separate finding) does not show up
here.  Rotor strokes are discrete, so rows are summed over a few neighbours before comparing
and differences below ``[delivery] min_excess_ml`` are ignored.
"""

from __future__ import annotations

import numpy as np

from ..context import Context
from ..findings import DetailSource, Finding, FindingDetails
from ..timeutil import HOUR, hours
from ._util import centred_sum, contiguous, flagged_runs, offsets, pct


def detect(ctx: Context) -> list[Finding]:
    """over_delivery and rotor_shortfall."""
    rows = ctx.rows
    if rows.empty:
        return []
    return _over(ctx) + _shortfall(ctx)


def _trim(run: tuple[int, int], own: np.ndarray) -> tuple[int, int] | None:
    a, b = run
    idx = [i for i in range(a, b + 1) if own[i]]
    return (idx[0], idx[-1]) if idx else None


def _over(ctx: Context) -> list[Finding]:
    rows, r = ctx.rows, ctx.rules
    acc = r.number("pump", "flow_accuracy_fraction")
    min_ml = r.number("delivery", "min_excess_ml")
    width = int(r.number("delivery", "smoothing_rows"))
    min_h = r.number("delivery", "over_delivery_min_h")
    min_share = r.number("delivery", "over_delivery_min_share")
    joined = contiguous(rows)
    cmd = rows["commanded_ml"].to_numpy(dtype=float)
    rot = rows["rotor_ml"].to_numpy(dtype=float)
    presc = rows["prescribed_ml"].to_numpy(dtype=float)
    conc = rows["concentration_mcg_ml"].to_numpy(dtype=float)
    usable = (~rows["prescription_inferred"].to_numpy(dtype=bool)
              & ~rows["time_uncertain"].to_numpy(dtype=bool))
    c3, r3, p3 = (centred_sum(x, width, joined) for x in (cmd, rot, presc))
    # rotor turning more than commanded: never normal (heat, diathermy, motor fault)
    rotor_flag = (r3 - c3 > np.maximum(acc * c3, min_ml)) & (rot > cmd)
    # pump commanding more than prescribed
    cmd_flag = usable & (c3 - p3 > np.maximum(acc * p3, min_ml)) & (cmd > presc)
    out = []
    sources: tuple[tuple[np.ndarray, np.ndarray, DetailSource], ...] = (
        (rotor_flag, rot - cmd > min_ml, "rotor"), (cmd_flag, cmd - presc > min_ml, "commanded"))
    for flags, own, what in sources:
        for run in flagged_runs(flags, joined, max_gap_rows=1):
            t = _trim(run, own)
            if t is None:
                continue
            a, b = t
            sl = slice(a, b + 1)
            ref = cmd[sl] if what == "rotor" else presc[sl]
            got = np.maximum(rot[sl], cmd[sl]) if what == "commanded" else rot[sl]
            base = presc[sl] if what == "commanded" else ref
            excess_ml = np.clip(got - np.maximum(base, 0), 0, None)
            excess = float((excess_ml * conc[sl]).sum())
            s, e = int(rows["start_s"].iat[a]), int(rows["end_s"].iat[b])
            dose = ctx.rec.daily_dose_at(s)
            share = excess / dose if dose else None
            dur_h = (e - s) / HOUR
            proc = next((p for p in ctx.procedures if p.start_s - HOUR <= e and s <= p.end_s + HOUR), None)
            # short and small is inaccuracy, except in or after a procedure that can change
            # delivery (diathermy heats the pump): there any delivery beyond accuracy counts
            if what == "commanded" and proc is None and dur_h < min_h \
                    and (share is None or share < min_share):
                continue
            ratio = got.sum() / ref.sum() if ref.sum() > 0 else float("inf")
            if what == "rotor":
                why = (f"The rotor turned more than the pump commanded ({ratio:.2f} times) from "
                       f"{ctx.clock.time(s)} to {ctx.clock.time(e)} ({hours(e - s)})")
                why += (f", during the {proc.kind.upper()} of {ctx.clock.time(proc.start_s)}: heating near "
                        "the pump (monopolar diathermy) can change delivery" if proc else "")
            else:
                why = (f"The pump commanded more than the prescription ({ratio:.2f} times, beyond "
                       f"the {100 * acc:.1f}% labeled accuracy) from {ctx.clock.time(s)} to "
                       f"{ctx.clock.time(e)} ({hours(e - s)})")
            out.append(Finding(
                "over_delivery", "critical" if share is not None and share >= min_share else "warning",
                s, e,
                f"{why}. About {excess:.0f} mcg more than prescribed was delivered "
                f"({pct(share)} of the {dose:g} mcg daily dose). Watch for overdose signs "
                "(guideline 5.2.2).",
                evidence=offsets(rows, list(range(a, b + 1))), excess_mcg=excess,
                daily_dose_mcg=dose or None, direction="overdose",
                details=FindingDetails(source=what, ratio=ratio,
                                       procedure=proc.kind if proc else None)))
    return out


def _shortfall(ctx: Context) -> list[Finding]:
    rows, r = ctx.rows, ctx.rules
    frac = r.number("delivery", "rotor_shortfall_fraction")
    min_ml = r.number("delivery", "min_excess_ml")
    width = int(r.number("delivery", "smoothing_rows"))
    min_h = r.number("delivery", "rotor_shortfall_min_h")
    joined = contiguous(rows) & (rows["stalled_s"].to_numpy() == 0)
    stalled = rows["stalled_s"].to_numpy() > 0
    cmd = np.where(stalled, 0.0, rows["commanded_ml"].to_numpy(dtype=float))
    rot = np.where(stalled, 0.0, rows["rotor_ml"].to_numpy(dtype=float))
    conc = rows["concentration_mcg_ml"].to_numpy(dtype=float)
    c3, r3 = centred_sum(cmd, width, joined), centred_sum(rot, width, joined)
    flags = ~stalled & (c3 - r3 > np.maximum(frac * c3, min_ml))
    out = []
    for run in flagged_runs(flags, joined, max_gap_rows=1):
        t = _trim(run, cmd - rot > min_ml)
        if t is None:
            continue
        a, b = t
        s, e = int(rows["start_s"].iat[a]), int(rows["end_s"].iat[b])
        if (e - s) / HOUR < min_h:
            continue
        sl = slice(a, b + 1)
        missed = float((np.clip(cmd[sl] - rot[sl], 0, None) * conc[sl]).sum())
        ratio = rot[sl].sum() / cmd[sl].sum() if cmd[sl].sum() > 0 else 0.0
        dose = ctx.rec.daily_dose_at(s)
        ongoing = b == len(rows) - 1 and ctx.now_s - e <= 2 * ctx.interval_s
        out.append(Finding(
            "rotor_shortfall", "warning", s, None if ongoing else e,
            f"Outside any stall, the rotor confirmed only {100 * ratio:.0f}% of the commanded "
            f"volume from {ctx.clock.time(s)} to {ctx.clock.time(e)} ({hours(e - s)}); "
            f"about {missed:.0f} mcg "
            f"({pct(missed / dose if dose else None)} of a daily dose) was not delivered. "
            "A failing motor or gear can do this; check at the next refill.",
            ongoing=ongoing, evidence=offsets(rows, list(range(a, b + 1))), missed_mcg=missed,
            daily_dose_mcg=dose or None, direction="withdrawal", details=FindingDetails(ratio=ratio)))
    return out
