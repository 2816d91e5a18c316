"""The guideline's dose calculators, each citing its section (numbers from the rules file).

Test dose by age, weight and indication (3.1.5); starting continuous dose (4.1.2); allowed
titration steps (4.1.3-4.1.5); refill interval and volume (4.1.1, 4.1.6 and the low-reservoir
alarm); oral baclofen for withdrawal by weight with its daily maximum (5.1.4).  They support,
and do not replace, clinical judgement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .rules import Rules, get_rules


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


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive, not {value}")


def test_dose(
    age_years: float, weight_kg: float, indication: str = "spasticity", rules: Rules | None = None
) -> Calculation:
    """Intrathecal test dose options (guideline 3.1.5), from 50 mcg/mL ampoules (3.3.5)."""
    r = get_rules(rules)
    _positive("age", age_years)
    _positive("weight", weight_kg)
    indication = indication.lower()
    if indication not in ("spasticity", "dystonia"):
        raise ValueError("indication must be spasticity or dystonia")
    young = age_years <= r.get("test_dose", "young_max_age_y") or weight_kg < r.get(
        "test_dose", "young_max_weight_kg"
    )
    key = f"{indication}_{'young' if young else 'older'}_mcg"
    doses = [float(x) for x in r.get("test_dose", key)]
    ampoule = float(r.get("concentration", "test_dose_mcg_ml"))
    warnings = []
    if age_years < 4:
        warnings.append(
            "the guideline's test doses are for children aged 4 and over; specialist decision needed"
        )
    if age_years > r.get("test_dose", "young_max_age_y") and weight_kg < r.get(
        "test_dose", "young_max_weight_kg"
    ):
        warnings.append("older than 7 but under 18 kg: the lower (younger/lighter) doses are shown")
    group = (
        (
            f"{r.get('test_dose', 'young_max_age_y')} years or younger, or under "
            f"{r.get('test_dose', 'young_max_weight_kg')} kg"
        )
        if young
        else "older and heavier children"
    )
    if indication == "dystonia" and len(doses) == 2:  # the guideline gives a range here
        lo, hi = doses
        opts = f"{lo:g} to {hi:g} mcg ({lo / ampoule:g} to {hi / ampoule:g} mL of {ampoule:g} mcg/mL)"
    else:
        opts = " or ".join(f"{d:g} mcg ({d / ampoule:g} mL of {ampoule:g} mcg/mL)" for d in doses)
    text = f"Test dose for {indication} ({group}): {opts}, given by lumbar puncture over at least 1 minute."
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


def starting_dose(effective_test_dose_mcg: float, rules: Rules | None = None) -> Calculation:
    """Starting continuous dose: the effective test dose doubled, over 24 hours (4.1.2)."""
    r = get_rules(rules)
    _positive("test dose", effective_test_dose_mcg)
    k = float(r.get("test_dose", "starting_dose_multiplier"))
    daily = effective_test_dose_mcg * k
    return Calculation(
        "starting_dose",
        "4.1.2",
        f"Start the continuous infusion at {daily:g} mcg/day ({k:g} x the effective "
        f"test dose of {effective_test_dose_mcg:g} mcg).",
        {"daily_dose_mcg": daily},
    )


def titration(current_daily_mcg: float, inpatient: bool = False, rules: Rules | None = None) -> Calculation:
    """The next allowed dose: +5-15% every 3-7 days as an outpatient (4.1.4), +50 mcg/day per
    day for up to 3 days in hospital after implant (4.1.3), never above 1000 mcg/day (4.1.5)."""
    r = get_rules(rules)
    _positive("current daily dose", current_daily_mcg)
    cap = float(r.get("titration", "max_daily_dose_mcg"))
    if inpatient:
        step = float(r.get("titration", "inpatient_step_mcg_day"))
        new = min(cap, current_daily_mcg + step)
        return Calculation(
            "titration",
            "4.1.3",
            f"In hospital after implant: up to {new:g} mcg/day (+{step:g} mcg/day per day, "
            "for up to 3 days).",
            {"min_mcg_day": current_daily_mcg, "max_mcg_day": new},
        )
    hi_frac = float(r.get("titration", "max_step_fraction"))
    lo_frac = float(r.get("titration", "min_step_fraction"))
    lo, hi = current_daily_mcg * (1 + lo_frac), min(cap, current_daily_mcg * (1 + hi_frac))
    days = int(r.get("titration", "min_step_interval_days"))
    if lo > hi:  # no room for the smallest usual step under the maximum
        if current_daily_mcg >= cap:
            warn = f"{current_daily_mcg:g} mcg/day is at or above the {cap:g} mcg/day maximum (4.1.5)"
            text = f"No increase: {warn}."
            low = cap
        else:
            text = (
                f"Next step: at most {cap:g} mcg/day, a step smaller than the usual "
                f"+{100 * lo_frac:.0f}% because of the {cap:g} mcg/day maximum (4.1.5); "
                f"no sooner than {days} days after the last change."
            )
            warn = (
                f"{current_daily_mcg:g} mcg/day is within {100 * lo_frac:.0f}% of the {cap:g} mcg/day "
                "maximum (4.1.5)"
            )
            low = current_daily_mcg
        return Calculation(
            "titration",
            "4.1.5",
            text,
            {"min_mcg_day": low, "max_mcg_day": cap, "min_interval_days": days, "cap_mcg_day": cap},
            (warn,),
        )
    warnings = ()
    return Calculation(
        "titration",
        "4.1.4",
        f"Next step: {math.ceil(lo - 1e-6):.0f} to {math.floor(hi + 1e-6):.0f} mcg/day "
        f"(+{100 * lo_frac:.0f} to +{100 * hi_frac:.0f}%), "
        f"no sooner than {days} days after the last change; maximum {cap:g} mcg/day (4.1.5).",
        {"min_mcg_day": lo, "max_mcg_day": hi, "min_interval_days": days, "cap_mcg_day": cap},
        warnings,
    )


def refill(
    model_ml: int,
    daily_dose_mcg: float,
    concentration_mcg_ml: float,
    residual_ml: float | None = None,
    rules: Rules | None = None,
    days_since_fill: float | None = None,
) -> Calculation:
    """Refill volume and the latest refill date: before the reservoir reaches the safe
    residual (or the low-reservoir alarm) and before the drug's 180 days in the pump (4.1.6),
    counted from the last fill (``days_since_fill``; without it, estimated from the volume
    used since a full reservoir)."""
    r = get_rules(rules)
    _positive("daily dose", daily_dose_mcg)
    _positive("concentration", concentration_mcg_ml)
    if int(model_ml) not in [int(x) for x in r.get("pump", "reservoir_ml")]:
        raise ValueError(f"reservoir must be one of {r.get('pump', 'reservoir_ml')} mL")
    rate = daily_dose_mcg / concentration_mcg_ml
    if residual_ml is not None and not (math.isfinite(residual_ml) and 0 <= residual_ml <= model_ml):
        raise ValueError(f"the residual must be between 0 and {model_ml} mL, not {residual_ml}")
    if days_since_fill is not None and not (math.isfinite(days_since_fill) and days_since_fill >= 0):
        raise ValueError(f"days since the fill must be 0 or more, not {days_since_fill}")
    start = float(model_ml) if residual_ml is None else float(residual_ml)
    if days_since_fill is None:
        days_since_fill = (float(model_ml) - start) / rate  # at least this long since a full fill
    safe = float(r.get("reservoir", "safe_residual_ml"))
    alarm = float(r.get("pump", "low_reservoir_alarm_ml_default"))
    stability = float(r.get("pump", "drug_stability_days"))
    acc = float(r.get("pump", "flow_accuracy_fraction"))
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
    text = (
        f"{rate:.3f} mL/day. From {start:g} mL the reservoir reaches {safe:g} mL (safe residual, at "
        f"+{100 * acc:.1f}% flow) in {to_safe:.0f} days and the {alarm:g} mL alarm in {to_alarm:.0f} days; "
        f"refill within {interval:.0f} days ({limit}). Fill {model_ml} mL of {concentration_mcg_ml:g} mcg/mL."
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
            "volume_ml": float(model_ml),
        },
    )


def oral_baclofen(weight_kg: float | None, rules: Rules | None = None) -> Calculation:
    """Oral baclofen for withdrawal by weight, with its daily maximum (5.1.4.1)."""
    r = get_rules(rules)
    g = lambda k: r.get("withdrawal_oral_baclofen", k)  # noqa: E731
    w, rep = float(g("weight_threshold_kg")), g("repeat_hours")
    every = f"{rep[0]}-{rep[-1]}"
    regimens = {
        "under": (float(g("under_stat_mg")), float(g("under_max_mg_day"))),
        "over": (float(g("over_stat_mg")), float(g("over_max_mg_day"))),
    }
    tail = "Oral doses are given even though the pump may also be delivering a dose (5.1.4.1c)."
    if weight_kg is None:
        (us, um), (os_, om) = regimens["under"], regimens["over"]
        text = (
            f"Oral baclofen: under {w:g} kg {us:g} mg stat then every {every} h, maximum {um:g} mg/day; "
            f"{w:g} kg or more {os_:g} mg stat then every {every} h, maximum {om:g} mg/day (weight not "
            f"given). {tail}"
        )
        return Calculation("oral_baclofen", "5.1.4", text, {"weight_threshold_kg": w})
    _positive("weight", weight_kg)
    stat, cap = regimens["under" if weight_kg < w else "over"]
    text = (
        f"Oral baclofen for {weight_kg:g} kg: {stat:g} mg stat then every {every} h, maximum "
        f"{cap:g} mg/day. {tail}"
    )
    return Calculation(
        "oral_baclofen", "5.1.4", text, {"stat_mg": stat, "repeat_hours": list(rep), "max_mg_day": cap}
    )
