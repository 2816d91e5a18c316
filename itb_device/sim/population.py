"""Synthetic cohorts: many pumps, years each, a realistic mix of the simulator's scenarios.

Each pump gets a scenario built from a seeded random draw (patient size, reservoir, drug
concentration, flex or continuous dosing, titration within the guideline, refills planned
before the safe residual and the 180-day limit, and the occasional MRI, diathermy, missed
refill, over-infusion, kink, worn motor or battery end), so a cohort is reproducible from its
seed alone.  Used by the cohort tests and benchmarks, and by ``itb make-cohort``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical.rules import Rules, get_rules

DAY = 86400
# Yearly probabilities of each event per pump (assumptions for synthetic data, not epidemiology).
P_MRI = 0.15
P_DIATHERMY = 0.05
P_MISSED_REFILL = 0.03
P_OVER_INFUSION = 0.02
P_KINK = 0.02
P_WORN_MOTOR = 0.01
MRI_RECOVERY = (("minutes", 0.85), ("hours", 0.11), ("telemetry", 0.03), ("never", 0.01))


@dataclass(frozen=True)
class CohortSpec:
    """How many pumps, how long each, from which start date, under which seed."""

    pumps: int = 100
    years: float = 1.0
    seed: int = 0
    start: str = "2025-01-06T09:00:00Z"


EARLIEST_START = dt.datetime(2007, 1, 1, tzinfo=dt.UTC)  # implants up to 6 years before, after the 2000 epoch
LATEST_END = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def parse_start(text: str, years: float = 1.0) -> str:
    """A cohort start typed by a user (``2026-01-01``, ``2026-01-01T09:00``, ``...Z`` or with an
    offset; a time without an offset is UTC, so the cohort is the same on every machine) as the
    ``YYYY-MM-DDTHH:MM:SSZ`` a :class:`CohortSpec` holds.  Raises ValueError (one line)."""
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: use a date or a UTC time such as 2026-01-01 or 2026-01-01T09:00:00Z"
        ) from None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    end = t + dt.timedelta(days=365 * years)
    if t < EARLIEST_START or end >= LATEST_END:
        raise ValueError(
            f"{text!r}: the cohort must start on or after {EARLIEST_START:%Y-%m-%d} and end before "
            f"{LATEST_END:%Y-%m-%d} (the pump clock counts from 2000)"
        )
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _choice(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    r, acc = rng.random(), 0.0
    for name, p in table:
        acc += p
        if r < acc:
            return name
    return table[-1][0]


def pump_scenario(index: int, spec: CohortSpec, rules: Rules | None = None) -> dict[str, Any]:
    """The scenario (as a dict, like a parsed TOML file) of pump ``index`` of the cohort."""
    rules = get_rules(rules)
    rng = random.Random(f"{spec.seed}:{index}")
    days = round(spec.years * 365)
    model = 40 if rng.random() < 0.3 else 20
    start_dose = rng.choice([100, 150, 200, 250, 300])
    conc = 1000 if rng.random() < 0.2 else 2000
    if start_dose * 0.85 / conc < rules["pump"]["min_rate_ml_day"] * 1.05:
        conc = 1000  # low-dose patients get the dilute drug (guideline 4.1.1)
    target = start_dose * rng.uniform(1.0, 2.2)
    target = min(target, rules["titration"]["max_daily_dose_mcg"] * 0.7)
    age = rng.randint(5, 17)
    weight = round(max(15.0, age * 3.2 + rng.gauss(0, 5)), 1)
    timeline: list[dict[str, Any]] = []
    flex = rng.random() < 0.3
    step = rules["titration"]["max_step_fraction"] * rng.uniform(0.4, 0.95)

    def program(at: int, dose: float) -> dict[str, Any]:
        if flex:
            steps = [
                {"start_min": 0, "daily_dose_mcg": round(dose * 0.85, 1)},
                {"start_min": 420, "daily_dose_mcg": round(dose * 1.15, 1)},
                {"start_min": 1260, "daily_dose_mcg": round(dose * 0.95, 1)},
            ]
            return {"action": "program", "mode": "flex", "flex_steps": steps, "_at": at}
        return {"action": "program", "mode": "simple_continuous", "daily_dose_mcg": round(dose, 1), "_at": at}

    # titration: +step every 7-10 days until the target dose
    dose, t, doses = float(start_dose), 0, []
    while True:
        doses.append((t, dose))
        if dose >= target or t > days - 20:
            break
        t += rng.randint(7, 10) * DAY
        dose = min(target, dose * (1 + step))
    visits = [program(at, d) for at, d in doses]
    # refills: before the reservoir reaches a safe residual, and within the drug's stability
    safe = rules.number("reservoir", "safe_residual_ml")
    stability = rules["pump"]["drug_stability_days"]
    reservoir = model - rng.uniform(0, 1.5)
    t = 0
    missed_at = days * rng.uniform(0.3, 0.8) if rng.random() < P_MISSED_REFILL * spec.years else None
    while True:
        rate = _dose_at(doses, t) / conc  # mL/day
        interval = min((reservoir - safe) / max(rate * 1.2, 1e-6), stability - 10)
        interval = max(14.0, interval * rng.uniform(0.75, 0.95))
        t += int(interval * DAY)
        if t >= days * DAY:
            break
        if missed_at is not None and t >= missed_at * DAY:
            t += int(rng.uniform(20, 60) * DAY)  # the family misses the appointment
            missed_at = None
            if t >= days * DAY:
                break
        visits.append({"action": "refill", "volume_ml": float(model), "_at": t})
        reservoir = float(model)
    for key, p in (
        ("mri", P_MRI),
        ("diathermy", P_DIATHERMY),
        ("over_infusion", P_OVER_INFUSION),
        ("kink", P_KINK),
        ("intermittent_stalls", P_WORN_MOTOR),
    ):
        if rng.random() < p * spec.years:
            at = int(rng.uniform(30, days - 5) * DAY) + rng.randint(8, 16) * 3600
            timeline.extend(_exposure(key, at, rng))
    # visits at the same time are one session
    by_time: dict[int, list[dict[str, Any]]] = {}
    for v in visits:
        by_time.setdefault(v.pop("_at"), []).append(v)
    for at, steps in sorted(by_time.items()):
        timeline.append({"at": f"+{at}s", "action": "visit", "steps": steps})
    timeline.append({"at": f"+{days * DAY}s", "action": "interrogate", "final": True})
    implant = dt.date.fromisoformat(spec.start[:10]) - dt.timedelta(days=rng.randint(30, 6 * 365))
    years_in = (dt.date.fromisoformat(spec.start[:10]) - implant).days / 365.0
    battery = rng.uniform(5.0, 7.0)
    pump: dict[str, Any] = {
        "model": model,
        "serial": f"NGP{model}{index:06d}",
        "implant_date": implant.isoformat(),
        "clock_offset_s": rng.randint(-90, 90),
    }
    if battery - years_in < spec.years:
        pump["battery_eri"] = f"+{max(1, int((battery - years_in) * 365))}d"
    return {
        "name": f"cohort_{spec.seed}_{index:06d}",
        "description": "synthetic cohort pump",
        "seed": rng.randint(0, 2**31),
        "start": spec.start,
        "patient": {"weight_kg": weight, "age_years": age},
        "pump": pump,
        "drug": {"concentration_mcg_ml": conc, "reservoir_ml": round(reservoir, 2)},
        "timeline": timeline,
        "expected_risk": {"withdrawal": "none", "overdose": "none"},
    }


def _dose_at(doses: list[tuple[int, float]], t: int) -> float:
    return next((d for at, d in reversed(doses) if at <= t), doses[0][1])


def _exposure(key: str, at: int, rng: random.Random) -> list[dict[str, Any]]:
    if key == "mri":
        dur = rng.randint(25, 90)
        return [
            {
                "at": f"+{at}s",
                "action": "mri",
                "duration_min": dur,
                "recovery": _choice(rng, MRI_RECOVERY),
                "late_log": rng.random() < 0.05,
            },
            {"at": f"+{at + dur * 60 + 7200 + rng.randint(0, 1800)}s", "action": "interrogate"},
        ]
    if key == "diathermy":
        dur = rng.randint(40, 180)
        return [
            {
                "at": f"+{at}s",
                "action": "diathermy",
                "duration_min": dur,
                "factor": round(rng.uniform(1.3, 3.0), 2),
            },
            {"at": f"+{at + dur * 60 + 3 * 3600}s", "action": "interrogate"},
        ]
    if key == "over_infusion":
        return [{"at": f"+{at}s", "action": "over_infusion", "factor": round(rng.uniform(1.16, 1.4), 2)}]
    if key == "kink":
        return [{"at": f"+{at}s", "action": "kink", "duration_h": rng.randint(6, 72), "surge_min": 30}]
    hours = sorted(rng.uniform(0, 72) for _ in range(3))
    return [
        {
            "at": f"+{at}s",
            "action": "intermittent_stalls",
            "stalls": [{"after_h": round(h, 2), "duration_min": rng.randint(20, 90)} for h in hours],
            "failure_after_h": 80 if rng.random() < 0.5 else None,
        }
    ]


def cohort_scenarios(spec: CohortSpec) -> Iterator[dict[str, Any]]:
    """Every pump's scenario in index order."""
    rules = get_rules()
    for i in range(spec.pumps):
        yield pump_scenario(i, spec, rules)


def write_pump(scenario: dict[str, Any], out_dir: str | Path, truth: bool = False) -> Path:
    """Simulate one cohort pump and write its log (and truth); returns the log path."""
    from .output import write_outputs
    from .scenario import run_scenario, scenario_from_dict

    out_dir = Path(out_dir)
    sc = scenario_from_dict({k: v for k, v in scenario.items() if v is not None})
    result = run_scenario(sc)
    log = out_dir / f"{sc.name}.itblog"
    write_outputs(result, log, out_dir / f"{sc.name}.truth.json" if truth else None)
    return log
