"""The guideline's dose calculators, each citing its section (numbers from the rules file).

Test dose by age, weight and indication (3.1.5); the observations after a test dose (3.4);
starting continuous dose (4.1.2); allowed titration steps (4.1.3-4.1.5); refill interval and
volume (4.1.1, 4.1.6 and the low-reservoir alarm); oral baclofen for withdrawal by weight with
its daily maximum (5.1.4), and bridging when the pump cannot deliver (5.1.3.1).  They support,
and do not replace, clinical judgement.

Every answer carries its warnings (``Calculation.warnings``: printed with the answer and kept in
its JSON).  A value no answer can be given for raises :class:`clinical.rules.InputError` (a
ValueError) whose ``field`` names the argument: a test dose under 4 years, an implausible
weight, a starting dose that would be above the maximum.  The maximum daily dose is the
child's own when given (``max_daily_dose_mcg``), else the upper limit reached in significant
dystonia (4.1.5, ``[titration] max_daily_dose_mcg``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from clinical.rules import InputError, Rules, get_rules


@dataclass(frozen=True)
class Calculation:
    """A calculator's answer: the values, a sentence a clinician can read, and its source."""

    name: str
    section: str
    text: str
    values: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _positive(name: str, value: float, field_name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(field_name, f"{name} must be positive, not {value:g}")


def _maximum(r: Rules, max_daily_dose_mcg: float | None) -> tuple[float, str, list[str]]:
    """The maximum daily dose, how to name it, and a warning for a child's maximum above the
    upper limit."""
    upper = r.number("titration", "max_daily_dose_mcg")
    if max_daily_dose_mcg is None:
        return upper, f"the {upper:g} mcg/day upper limit (reached in significant dystonia, 4.1.5)", []
    _positive("the child's maximum daily dose", max_daily_dose_mcg, "max_daily_dose_mcg")
    warn = ([f"this child's maximum of {max_daily_dose_mcg:g} mcg/day is above the {upper:g} mcg/day "
             "upper limit reached in significant dystonia (4.1.5): a specialist decision"]
            if max_daily_dose_mcg > upper else [])
    return float(max_daily_dose_mcg), f"this child's maximum of {max_daily_dose_mcg:g} mcg/day (4.1.5)", warn


def _test_dose_range(r: Rules) -> tuple[float, float]:
    doses = [float(d) for k, v in r["test_dose"].items() if k.endswith("_mcg") for d in v]
    return min(doses), max(doses)


def _delivery(r: Rules, daily_mcg: float, concentration: float) -> tuple[float, list[str]]:
    """The rate in mL/day and warnings when the pump cannot run it (``[pump]`` rate range)."""
    rate = daily_mcg / concentration
    lo, hi = r.number("pump", "min_rate_ml_day"), r.number("pump", "max_rate_ml_day")
    warnings = []
    if rate < lo:
        warnings.append(f"{daily_mcg:g} mcg/day of {concentration:g} mcg/mL is {rate:.4f} mL/day, below the "
                        f"pump's minimum rate of {lo:g} mL/day: the pump cannot deliver it"
                        + _dilute(r, daily_mcg, concentration))
    elif rate > hi:
        warnings.append(f"{daily_mcg:g} mcg/day of {concentration:g} mcg/mL is {rate:.1f} mL/day, above the "
                        f"pump's maximum rate of {hi:g} mL/day: check the dose and the concentration")
    return rate, warnings


def _ml(rate: float) -> str:
    return f"{rate:.3f}" if rate >= 0.01 else f"{rate:.2g}"


def _dilute(r: Rules, daily_mcg: float, concentration: float) -> str:
    """The advice for a rate below the pump's minimum: the low-dose concentration (4.1.1)."""
    low = r.number("concentration", "low_dose_mcg_ml")
    if concentration > low and daily_mcg / low >= r.number("pump", "min_rate_ml_day"):
        return f"; use the low-dose concentration of {low:g} mcg/mL (guideline 4.1.1)"
    return "; check the dose and its unit, or use a more dilute drug (a specialist decision)"


# ----- test dose (3.1.5) ---------------------------------------------------------------------

def test_dose(
    age_years: float, weight_kg: float, indication: str = "spasticity", rules: Rules | None = None
) -> Calculation:
    """Intrathecal test dose options (guideline 3.1.5), from 50 mcg/mL ampoules (3.3.5).

    ``age_years`` is the age in completed years (a child of 7½ is 7): the guideline's bands are
    "4 - 7 years / < 18kg" and "> 7 years / > 18kg".  Under ``[test_dose] min_age_y`` (4) there
    is no guideline dose: an :class:`InputError` ("specialist decision").  7 completed years and
    exactly 18 kg sit at the boundary of the bands: the lower doses, with a warning."""
    r = get_rules(rules)
    indication = str(indication).lower()
    if indication not in ("spasticity", "dystonia"):
        raise InputError("indication", "indication must be spasticity or dystonia")
    if not math.isfinite(age_years) or age_years < 0:
        raise InputError("age_years", f"age must be 0 or more completed years, not {age_years:g}")
    if age_years != int(age_years):
        raise InputError("age_years", f"give the age in completed years ({int(age_years)}, not "
                                      f"{age_years:g}): the bands of guideline 3.1.5 are in whole years")
    age = int(age_years)
    min_age = r.number("test_dose", "min_age_y")
    if age < min_age:
        raise InputError("age_years", f"{age} years: no guideline dose under {min_age:g} years (3.1.5): "
                                      "specialist decision")
    weight = r.check_weight(weight_kg)
    max_age, max_kg = r.number("test_dose", "young_max_age_y"), r.number("test_dose", "young_max_weight_kg")
    young = age <= max_age or weight <= max_kg
    warnings = []
    if age == max_age and weight > max_kg:
        warnings.append(f"{age} completed years is at the boundary of the bands of 3.1.5 (\"{min_age:g} - "
                        f"{max_age:g} years\" and \"> {max_age:g} years\"): the lower doses are shown; "
                        "the dose is a clinical decision")
    elif age > max_age and weight == max_kg:
        warnings.append(f"{weight:g} kg is in neither band of 3.1.5 (\"< {max_kg:g}kg\" and "
                        f"\"> {max_kg:g}kg\"): the lower doses are shown; the dose is a clinical decision")
    elif age > max_age and weight < max_kg:
        warnings.append(f"older than {max_age:g} but under {max_kg:g} kg: the lower (younger/lighter) "
                        "doses are shown")
    key = f"{indication}_{'young' if young else 'older'}_mcg"
    doses = [float(x) for x in r.get("test_dose", key)]
    ampoule = r.number("concentration", "test_dose_mcg_ml")
    group = (f"{min_age:g}-{max_age:g} years or under {max_kg:g} kg" if young
             else f"over {max_age:g} years and over {max_kg:g} kg")
    if indication == "dystonia" and len(doses) == 2:  # the guideline gives a range here
        lo, hi = doses
        opts = f"{lo:g} to {hi:g} mcg ({lo / ampoule:g} to {hi / ampoule:g} mL of {ampoule:g} mcg/mL)"
    else:
        opts = " or ".join(f"{d:g} mcg ({d / ampoule:g} mL of {ampoule:g} mcg/mL)" for d in doses)
        if len(doses) > 1:
            opts += f", depending on the severity of {indication}"
    text = (f"Test dose for {indication} ({age} years, {weight:g} kg: {group}): {opts}, given by lumbar "
            "puncture over at least 1 minute.")
    return Calculation(
        "test_dose",
        "3.1.5",
        text,
        {
            "doses_mcg": doses,
            "ampoule_mcg_ml": ampoule,
            "volumes_ml": [d / ampoule for d in doses],
            "group": "young" if young else "older",
        },
        tuple(warnings),
    )


def observation_schedule(given: dt.datetime, rules: Rules | None = None) -> Calculation:
    """The observations after an intrathecal test dose given at ``given`` (an aware datetime;
    times are shown in its zone): guideline 3.4.2-3.4.8."""
    if given.tzinfo is None:
        raise InputError("given", "the time the test dose was given must carry a time zone")
    r = get_rules(rules)
    g = lambda k: r.get("test_dose_observation", k)  # noqa: E731
    at = lambda h: given + dt.timedelta(hours=float(h))  # noqa: E731
    every_min, first_h = float(g("first_every_min")), float(g("first_period_h"))
    every_h, then_h = float(g("then_every_h")), float(g("then_period_h"))
    first = [at(k * every_min / 60) for k in range(1, round(first_h * 60 / every_min) + 1)]
    then = [at(first_h + k * every_h) for k in range(1, round(then_h / every_h) + 1)]
    team_h = [float(h) for h in g("team_assessment_h")]
    team = [at(h) for h in team_h]
    peak = [at(h) for h in g("effect_peak_h")]
    gone = at(g("effect_gone_h"))
    bads = float(g("positive_bads_reduction"))

    def hm(ts: list[dt.datetime]) -> str:
        return ", ".join(_clock(t, given) for t in ts)

    zone = given.tzname() or given.strftime("%z")
    dated = any(t.date() != given.date() for t in (*then, gone))
    text = "\n".join([
        f"Test dose given {given.strftime('%Y-%m-%d %H:%M')} {zone}; times below are {zone}"
        + (", with the date when it changes." if dated else "."),
        f"  Observations, a full set on the age-appropriate NSW Health Standard Paediatric Observation "
        f"Chart (3.4.2): every {every_min:g} min for the first {first_h:g} h: {hm(first)}; then every "
        f"{every_h:g} h for {then_h:g} h or until discharge: {hm(then)}.",
        f"  Kids Rehab Team assessments, including muscle tone, at "
        f"{', '.join(f'{h:g}' for h in team_h)} h (3.4.8): {hm(team)}.",
        f"  The effect peaks {g('effect_peak_h')[0]:g}-{g('effect_peak_h')[-1]:g} h after the injection "
        f"({hm(peak[:1])} to {hm(peak[-1:])}) and gradually wears off by {float(g('effect_gone_h')):g} h "
        f"({_clock(gone, given)}) (3.4.6).",
        "  Notify the medical team if the child has not voided urine following the test dose; watch for "
        "reactions that may indicate overdose (guideline section 2; 3.5 if overdose is suspected) (3.4.7).",
        "  Escalation: Yellow Zone criteria, or staff or family concerned: a prompt Clinical Review by the "
        "Rehabilitation Registrar (3.4.3); Red Zone, or a serious concern: a Rapid Response Call or an "
        "arrest call immediately (3.4.4).",
        f"  A positive response (3.4.8): a reduction in the Barry Albright Dystonia Scale of at least "
        f"{100 * bads:.0f}% and/or a change in the Modified Ashworth score; achievement of family goals is "
        "also considered. Discharge once the Kids Rehab Team has assessed that the effects have worn off "
        "(3.4.11).",
    ])
    iso = lambda ts: [t.isoformat(timespec="minutes") for t in ts]  # noqa: E731
    return Calculation(
        "test_dose_observation",
        "3.4",
        text,
        {
            "given": given.isoformat(timespec="minutes"),
            "observations": iso(first + then),
            "team_assessments": iso(team),
            "effect_peak": iso(peak),
            "effect_gone": gone.isoformat(timespec="minutes"),
            "positive_bads_reduction": bads,
        },
    )


def _clock(t: dt.datetime, given: dt.datetime) -> str:
    return t.strftime("%H:%M") if t.date() == given.date() else t.strftime("%Y-%m-%d %H:%M")


# ----- starting dose (4.1.2) -------------------------------------------------------------------

def starting_dose(
    effective_test_dose_mcg: float, rules: Rules | None = None, *, max_daily_dose_mcg: float | None = None
) -> Calculation:
    """Starting continuous dose: the effective test dose doubled, over 24 hours (4.1.2).

    A test dose outside the guideline's (25-100 mcg, 3.1.5) is accepted with a warning; a
    starting dose above the maximum is never given: :class:`InputError`."""
    r = get_rules(rules)
    _positive("test dose", effective_test_dose_mcg, "effective_test_dose_mcg")
    maximum, max_name, warnings = _maximum(r, max_daily_dose_mcg)
    k = r.number("test_dose", "starting_dose_multiplier")
    daily = effective_test_dose_mcg * k
    if daily > maximum * (1 + 1e-9):
        raise InputError("effective_test_dose_mcg", (
            f"{k:g} x {effective_test_dose_mcg:g} mcg = {daily:g} mcg/day would be above {max_name}: "
            "no starting dose is given; check the test dose and its unit (mcg)"))
    lo, hi = _test_dose_range(r)
    if not lo <= effective_test_dose_mcg <= hi:
        warnings.append(f"{effective_test_dose_mcg:g} mcg is outside the guideline's test doses ({lo:g}-"
                        f"{hi:g} mcg, 3.1.5): check the test dose and its unit (mcg, not mg)")
    standard = r.number("concentration", "standard_mcg_ml")
    low = r.number("concentration", "low_dose_mcg_ml")
    conc = standard
    if daily / standard < r.number("pump", "min_rate_ml_day") and daily / low >= r.number("pump",
                                                                                         "min_rate_ml_day"):
        conc = low
    rate, more = _delivery(r, daily, conc)
    warnings += more
    drug = (f" At {conc:g} mcg/mL that is {_ml(rate)} mL/day"
            + (f" (the low-dose concentration: at {standard:g} mcg/mL the rate would be below the pump's "
               "minimum, guideline 4.1.1)." if conc != standard else "."))
    return Calculation(
        "starting_dose",
        "4.1.2",
        f"Start the continuous infusion at {daily:g} mcg/day ({k:g} x the effective "
        f"test dose of {effective_test_dose_mcg:g} mcg).{drug}",
        {"daily_dose_mcg": daily, "concentration_mcg_ml": conc, "rate_ml_day": rate,
         "max_daily_dose_mcg": maximum},
        tuple(warnings),
    )


# ----- titration (4.1.3-4.1.5) -----------------------------------------------------------------

def _span(lo: float, hi: float) -> tuple[str, str]:
    """``lo`` rounded up and ``hi`` rounded down, with as many decimals as keep lo <= hi."""
    for decimals in (0, 1, 2):
        q = 10.0 ** -decimals
        a, b = math.ceil(lo / q - 1e-6) * q, math.floor(hi / q + 1e-6) * q
        if a <= b + 1e-9:
            return f"{a:.{decimals}f}", f"{b:.{decimals}f}"
    return f"{lo:.3g}", f"{hi:.3g}"


def titration(
    current_daily_mcg: float,
    inpatient: bool = False,
    rules: Rules | None = None,
    *,
    max_daily_dose_mcg: float | None = None,
) -> Calculation:
    """The next allowed dose: +5-15% every 3-7 days as an outpatient (4.1.4), +50 mcg/day per
    day for up to 3 days in hospital after implant (4.1.3), never above the maximum (4.1.5):
    the child's own (``max_daily_dose_mcg``) or the upper limit reached in significant
    dystonia.  A next step is never lower than the current dose."""
    r = get_rules(rules)
    _positive("current daily dose", current_daily_mcg, "current_daily_mcg")
    cap, cap_name, warnings = _maximum(r, max_daily_dose_mcg)
    days = int(r.number("titration", "min_step_interval_days"))
    lowest_start = r.number("test_dose", "starting_dose_multiplier") * _test_dose_range(r)[0]
    base = {"min_interval_days": days, "cap_mcg_day": cap}
    if current_daily_mcg < lowest_start:
        warnings.append(f"{current_daily_mcg:g} mcg/day is below the smallest guideline starting dose "
                        f"({lowest_start:g} mcg/day, 4.1.2): check the dose and its unit (mcg/day)")
    if current_daily_mcg >= cap * (1 - 1e-9):
        above = current_daily_mcg > cap * (1 + 1e-9)
        warn = (f"{current_daily_mcg:g} mcg/day is {'above' if above else 'at'} {cap_name}"
                + (": check the dose and its unit (mcg/day, not mg)" if above else ""))
        return Calculation(
            "titration", "4.1.5", f"No increase: {warn}.",
            {"min_mcg_day": current_daily_mcg, "max_mcg_day": current_daily_mcg, **base},
            (*warnings, warn),
        )
    if inpatient:
        step = r.number("titration", "inpatient_step_mcg_day")
        new = min(cap, current_daily_mcg + step)
        limited = new < current_daily_mcg + step
        text = (f"In hospital after implant: up to {new:g} mcg/day (+{step:g} mcg/day per day, "
                "for up to 3 days)" + (f", limited by {cap_name}" if limited else "") + ".")
        return Calculation("titration", "4.1.3", text,
                           {"min_mcg_day": current_daily_mcg, "max_mcg_day": new, **base}, tuple(warnings))
    hi_frac = r.number("titration", "max_step_fraction")
    lo_frac = r.number("titration", "min_step_fraction")
    lo, hi = current_daily_mcg * (1 + lo_frac), min(cap, current_daily_mcg * (1 + hi_frac))
    if lo > hi:  # no room for the smallest usual step under the maximum
        warn = f"{current_daily_mcg:g} mcg/day is within {100 * lo_frac:.0f}% of {cap_name}"
        return Calculation(
            "titration", "4.1.5",
            f"Next step: at most {cap:g} mcg/day, a step smaller than the usual +{100 * lo_frac:.0f}% "
            f"because of {cap_name}; no sooner than {days} days after the last change.",
            {"min_mcg_day": current_daily_mcg, "max_mcg_day": cap, **base},
            (*warnings, warn),
        )
    a, b = _span(lo, hi)
    return Calculation(
        "titration",
        "4.1.4",
        f"Next step: {a} to {b} mcg/day (+{100 * lo_frac:.0f} to +{100 * hi_frac:.0f}%), "
        f"no sooner than {days} days after the last change; maximum {cap:g} mcg/day (4.1.5"
        + (", this child's" if max_daily_dose_mcg is not None else "") + ").",
        {"min_mcg_day": lo, "max_mcg_day": hi, **base},
        tuple(warnings),
    )


# ----- refill (4.1.1, 4.1.6) -------------------------------------------------------------------

def refill(
    model_ml: int,
    daily_dose_mcg: float,
    concentration_mcg_ml: float,
    residual_ml: float | None = None,
    rules: Rules | None = None,
    days_since_fill: float | None = None,
    *,
    max_daily_dose_mcg: float | None = None,
) -> Calculation:
    """Refill volume and the latest refill date: before the reservoir reaches the safe
    residual (or the low-reservoir alarm) and before the drug's 180 days in the pump (4.1.6),
    counted from the last fill (``days_since_fill``; without it, estimated from the volume
    used since a full reservoir).  "Refill NOW" when either is reached; warnings for a
    concentration not on the market, a rate the pump cannot run, a dose above the maximum."""
    r = get_rules(rules)
    _positive("daily dose", daily_dose_mcg, "daily_dose_mcg")
    _positive("concentration", concentration_mcg_ml, "concentration_mcg_ml")
    sizes = [int(x) for x in r.get("pump", "reservoir_ml")]
    if int(model_ml) not in sizes:
        raise InputError("model_ml", f"reservoir must be one of {sizes} mL")
    if residual_ml is not None and not (math.isfinite(residual_ml) and 0 <= residual_ml <= model_ml):
        raise InputError("residual_ml",
                         f"the residual must be between 0 and {model_ml} mL, not {residual_ml:g}")
    if days_since_fill is not None and not (math.isfinite(days_since_fill) and days_since_fill >= 0):
        raise InputError("days_since_fill", f"days since the fill must be 0 or more, not {days_since_fill:g}")
    maximum, max_name, warnings = _maximum(r, max_daily_dose_mcg)
    if daily_dose_mcg > maximum * (1 + 1e-9):
        warnings.append(f"{daily_dose_mcg:g} mcg/day is above {max_name}: check the dose and its unit")
    marketed = r.numbers("pump", "marketed_concentrations_mcg_ml")
    if not any(abs(concentration_mcg_ml - c) <= 1e-9 * c for c in marketed):
        warnings.append(f"{concentration_mcg_ml:g} mcg/mL is not a marketed concentration "
                        f"({', '.join(f'{c:g}' for c in marketed)} mcg/mL): check the concentration")
    rate, more = _delivery(r, daily_dose_mcg, concentration_mcg_ml)
    warnings += more
    start = float(model_ml) if residual_ml is None else float(residual_ml)
    if days_since_fill is None:
        days_since_fill = (float(model_ml) - start) / rate  # at least this long since a full fill
    safe = r.number("reservoir", "safe_residual_ml")
    alarm = r.number("pump", "low_reservoir_alarm_ml_default")
    stability = r.number("pump", "drug_stability_days")
    acc = r.number("pump", "flow_accuracy_fraction")
    worst_rate = rate * (1 + acc)  # an over-infusing pump empties sooner than it thinks
    to_safe = max(0.0, (start - safe) / worst_rate)
    to_alarm = max(0.0, (start - alarm) / rate)
    stability_left = max(0.0, stability - days_since_fill)
    interval = min(to_safe, stability_left)
    since = f", {days_since_fill:.0f} days since the fill" if days_since_fill >= 0.5 else ""
    limit = (
        "the safe residual"
        if to_safe <= stability_left
        else (f"the {stability:g}-day drug stability limit{since}")
    )
    now_reasons = []
    if start <= safe:
        now_reasons.append(f"{start:g} mL left is at or below the {safe:g} mL safe residual")
    if days_since_fill >= stability:
        now_reasons.append(f"the drug has been in the pump {days_since_fill:.0f} days: the {stability:g}-day "
                           "stability limit is reached")
    if now_reasons:
        when = "refill NOW (" + "; ".join(now_reasons) + ")"
        warnings.insert(0, "refill NOW: " + "; ".join(now_reasons))
    elif interval < 1:
        when = f"refill within {24 * interval:.0f} hours ({limit})"
    else:
        when = f"refill within {math.floor(interval):.0f} days ({limit})"
    text = (
        f"{_ml(rate)} mL/day. From {start:g} mL the reservoir reaches {safe:g} mL (safe residual, at "
        f"+{100 * acc:.1f}% flow) in {to_safe:.0f} days and the {alarm:g} mL alarm in {to_alarm:.0f} days; "
        f"{when}. Fill {model_ml} mL of {concentration_mcg_ml:g} mcg/mL."
    )
    return Calculation(
        "refill",
        "4.1.6",
        text,
        {
            "rate_ml_day": rate,
            "days_to_safe_residual": to_safe,
            "days_to_alarm": to_alarm,
            "refill_within_days": interval,
            "refill_now": bool(now_reasons),
            "volume_ml": float(model_ml),
        },
        tuple(warnings),
    )


# ----- oral baclofen (5.1.4, 5.1.3.1) ----------------------------------------------------------

BRIDGING = (
    "When the pump cannot deliver (reservoir empty, battery at end of service, motor stall), oral "
    "baclofen until delivery is restored is a consultant decision (5.1.3.1: \"the consultant may "
    "instruct the family to start high dose oral baclofen\")."
)


def oral_baclofen(weight_kg: float | None, rules: Rules | None = None) -> Calculation:
    """Oral baclofen for withdrawal by weight, with its daily maximum (5.1.4.1), and the
    consultant's decision to bridge with it when the pump cannot deliver (5.1.3.1).

    The guideline writes "< 30kg" and "> 30kg": exactly 30 kg is given the larger regimen, with
    a warning that shows the other."""
    r = get_rules(rules)
    g = lambda k: r.get("withdrawal_oral_baclofen", k)  # noqa: E731
    w, rep = float(g("weight_threshold_kg")), g("repeat_hours")
    every = f"{rep[0]}-{rep[-1]}"
    regimens = {
        "under": (float(g("under_stat_mg")), float(g("under_max_mg_day"))),
        "over": (float(g("over_stat_mg")), float(g("over_max_mg_day"))),
    }
    tail = (f"Oral doses are given even though the pump may also be delivering a dose (5.1.4.1c). "
            f"{BRIDGING}")
    (us, um), (os_, om) = regimens["under"], regimens["over"]
    if weight_kg is None:
        text = (
            f"Oral baclofen: under {w:g} kg {us:g} mg stat then every {every} h, maximum {um:g} mg/day; "
            f"{w:g} kg or more {os_:g} mg stat then every {every} h, maximum {om:g} mg/day (weight not "
            f"given). {tail}"
        )
        return Calculation("oral_baclofen", "5.1.4", text, {"weight_threshold_kg": w})
    weight = r.check_weight(weight_kg)
    stat, cap = regimens["under" if weight < w else "over"]
    warnings: tuple[str, ...] = ()
    if weight == w:
        warnings = (f"{weight:g} kg is in neither band of 5.1.4.1 (\"< {w:g}kg\" and \"> {w:g}kg\"): the "
                    f"> {w:g} kg regimen is shown; the < {w:g} kg one is {us:g} mg stat, maximum "
                    f"{um:g} mg/day: a medical decision",)
    text = (
        f"Oral baclofen for {weight:g} kg: {stat:g} mg stat then every {every} h, maximum "
        f"{cap:g} mg/day. {tail}"
    )
    return Calculation(
        "oral_baclofen", "5.1.4", text, {"stat_mg": stat, "repeat_hours": list(rep), "max_mg_day": cap},
        warnings,
    )
