"""Refill planning: when the reservoir reaches its low-reservoir alarm and runs empty, when the
drug reaches its stability limit since the last refill, and when the battery reaches ERI and
EOS, from the status snapshot and the programmed rate.

Pure arithmetic (no plotting).  The reservoir volume is the pump's own estimate, never
measured, so each reservoir date is also given at the pump's labelled flow accuracy (faster
than programmed) plus any patient boluses (myPTM) at their daily maximum: the worst case.
The numbers come from ``clinical/clinical_rules.toml`` (``[pump]``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinical.rules import Rules, get_rules
from parsers import InterrogationLog

from .timeutil import DAY, to_seconds

_YEAR_DAYS = 365.25


@dataclass(frozen=True)
class Milestone:
    """One planning date.  ``days`` counts from the interrogation (0: now or already past;
    None: cannot be worked out); ``worst_*`` is the same date in the worst case."""

    key: str
    label: str
    when_s: int | None
    days: float | None
    basis: str
    worst_when_s: int | None = None
    worst_days: float | None = None
    estimate: bool = False
    passed: bool = False


@dataclass(frozen=True)
class RefillPlan:
    """The planning dates of one interrogation and the numbers behind them."""

    interrogated_s: int
    reservoir_ml: float | None
    low_alarm_ml: float | None
    empty_ml: float
    rate_ml_day: float | None
    worst_rate_ml_day: float | None
    last_refill_s: int | None
    last_refill_source: str
    milestones: tuple[Milestone, ...]
    next_refill: Milestone | None
    notes: tuple[str, ...] = ()

    def milestone(self, key: str) -> Milestone | None:
        """The milestone ``key`` (low_alarm, empty, drug_stability, eri, eos) or None."""
        return next((m for m in self.milestones if m.key == key), None)


def _pump_clock_to_unix(log: InterrogationLog, clock: int) -> int:
    """A status stamp (pump clock, seconds since 2000) as Unix UTC seconds, corrected for the
    drift measured at interrogation."""
    return log.header.pump_clock_to_unix(clock)


def _last_refill(log: InterrogationLog) -> tuple[int | None, str]:
    """The last refill: the status snapshot's stamp, else the latest refill record in the log."""
    if log.status_ok and log.status.last_refill_clock:
        return _pump_clock_to_unix(log, log.status.last_refill_clock), "status"
    ev = log.events
    if not ev.empty:
        t = to_seconds(ev.loc[ev["event"] == "refill", "time_utc"])
        if len(t):
            return int(np.max(t)), "log"
    return None, "unknown"


def _volume_milestone(
    key: str, label: str, now: int, volume_ml: float, rate: float | None, worst_rate: float | None, basis: str
) -> Milestone:
    if rate is None or rate <= 0:
        return Milestone(
            key,
            label,
            None,
            None,
            f"the pump is stopped: no drug is used ({volume_ml:.2f} mL above this level)",
        )
    if volume_ml <= 0:
        return Milestone(key, label, now, 0.0, basis + "; already reached", now, 0.0, passed=True)
    days = volume_ml / rate
    w = volume_ml / worst_rate if worst_rate else None
    return Milestone(
        key,
        label,
        now + round(days * DAY),
        days,
        basis,
        None if w is None else now + round(w * DAY),
        w,
    )


def projected_eos_s(eri_s: int, rules: Rules | Mapping[str, Any] | str | Path | None = None) -> int:
    """When a pump that reached ERI at ``eri_s`` stops: ``[pump] eri_to_eos_days`` later (the
    labelling).  The one projection of the ERI finding and the refill planning."""
    return eri_s + int(get_rules(rules).number("pump", "eri_to_eos_days") * DAY)


def refill_plan(log: InterrogationLog, rules: Rules | Mapping[str, Any] | str | Path | None = None,
                now_s: int | None = None) -> RefillPlan:
    """The refill and battery planning dates of ``log`` at its interrogation (or ``now_s``)."""
    r = get_rules(rules)
    now = int(now_s if now_s is not None else log.header.interrogated_at.timestamp())
    st = log.status
    acc = r.number("pump", "flow_accuracy_fraction")
    empty_ml = r.number("pump", "empty_reservoir_ml")
    stability = r.number("pump", "drug_stability_days")
    eri_to_eos = r.number("pump", "eri_to_eos_days")
    life_lo, life_hi = r.range("pump", "battery_life_years")
    notes: list[str] = []
    ms: list[Milestone] = []
    reservoir = low = rate = worst = None
    if not log.status_ok:
        notes.append(
            "The status snapshot is damaged: the reservoir volume, alarm level and "
            "programmed rate are unknown, so the reservoir dates cannot be worked out. "
            "Read them on the manufacturer's programmer."
        )
        for key, label in (("low_alarm", "Low-reservoir alarm"), ("empty", "Reservoir empty")):
            ms.append(Milestone(key, label, None, None, "status snapshot damaged"))
    else:
        reservoir, low = float(st.reservoir_ml), float(st.low_reservoir_alarm_ml)
        rate = float(st.rate_ml_day) if st.mode != "stopped" else 0.0
        ptm_ml = 0.0
        if st.ptm_enabled and st.concentration_mcg_ml > 0:
            ptm_ml = st.ptm_max_per_day * st.ptm_dose_mcg / st.concentration_mcg_ml
        worst = rate * (1 + acc) + ptm_ml if rate > 0 else None
        how = f"{reservoir:.2f} mL left at {rate:.3f} mL/day" if rate else f"{reservoir:.2f} mL left"
        worst_how = f"worst case {100 * acc:.1f}% faster (labelled accuracy)" + (
            f" plus {st.ptm_max_per_day} patient boluses a day" if ptm_ml else ""
        )
        ms.append(
            _volume_milestone(
                "low_alarm",
                f"Low-reservoir alarm ({low:g} mL)",
                now,
                reservoir - low,
                rate,
                worst,
                f"{how}, alarm at {low:g} mL; {worst_how}",
            )
        )
        ms.append(
            _volume_milestone(
                "empty",
                f"Reservoir empty ({empty_ml:g} mL, delivery stops)",
                now,
                reservoir - empty_ml,
                rate,
                worst,
                f"{how}, empty below {empty_ml:g} mL; {worst_how}",
            )
        )
        if st.mode == "stopped":
            notes.append(
                "The pump is stopped: it uses no drug, so the reservoir dates do not apply "
                "until it is restarted."
            )
        elif st.motor_stalled:
            notes.append(
                "The motor is stalled at interrogation: the reservoir dates assume it "
                "delivers at the programmed rate again."
            )
        if st.mode == "flex":
            notes.append("Flex program: the rate is the programmed daily volume over all its steps.")
    refill_s, source = _last_refill(log)
    if refill_s is None:
        ms.append(
            Milestone(
                "drug_stability",
                f"Drug stability limit ({stability:g} days)",
                None,
                None,
                "the date of the last refill is not in the status or the log: check the refill record",
            )
        )
    else:
        limit = refill_s + int(stability * DAY)
        src = "status snapshot" if source == "status" else "refill record in the log"
        ms.append(
            Milestone(
                "drug_stability",
                f"Drug stability limit ({stability:g} days)",
                limit,
                max(0.0, (limit - now) / DAY),
                f"{stability:g} days after the last refill ({src}; guideline 4.1.6)",
                passed=limit <= now,
            )
        )
    battery = st.battery_state if log.status_ok else "unknown"
    eri_s = _pump_clock_to_unix(log, st.eri_clock) if log.status_ok and st.eri_clock else None
    if battery == "unknown":
        ms.append(Milestone("eri", "Battery ERI", None, None, "status snapshot damaged"))
        ms.append(Milestone("eos", "Battery EOS (pump stops)", None, None, "status snapshot damaged"))
    elif eri_s is not None or battery in ("eri", "eos"):
        ms.append(Milestone("eri", "Battery ERI", eri_s, 0.0, "ERI reached (status)", passed=True))
        if eri_s is not None:
            eos = projected_eos_s(eri_s, r)
            ms.append(
                Milestone(
                    "eos",
                    "Battery EOS (pump stops)",
                    eos,
                    max(0.0, (eos - now) / DAY),
                    f"{eri_to_eos:g} days after ERI" + ("; EOS reached (status)" if battery == "eos" else ""),
                    passed=battery == "eos" or eos <= now,
                )
            )
        else:
            ms.append(
                Milestone(
                    "eos",
                    "Battery EOS (pump stops)",
                    None,
                    0.0 if battery == "eos" else None,
                    "EOS reached (status)"
                    if battery == "eos"
                    else f"within {eri_to_eos:g} days of ERI (ERI date not in the status)",
                    passed=battery == "eos",
                )
            )
    else:
        # 5.1.1.5: "pump batteries normally last 5-7 years": plan from the earliest; the pump
        # has not reported ERI yet, so EOS is at least eri_to_eos days away (or at the
        # labelled shut-off at the end of the range, whichever is sooner)
        implant = log.header.implant_date
        eos_lo, eos_hi = _after_years(implant, life_lo), _after_years(implant, life_hi)
        eri = max(eos_lo - int(eri_to_eos * DAY), now)
        eos = min(max(eos_lo, now + int(eri_to_eos * DAY)), eos_hi)
        eri = min(eri, eos)
        late = eos_lo - int(eri_to_eos * DAY) < now
        basis = (
            f"estimate: pump batteries normally last {life_lo:g}-{life_hi:g} years (guideline 5.1.1.5), "
            f"planned from the earliest, {life_lo:g} years after the implant date "
            f"({implant.isoformat()}); the pump stops by {_iso(eos_hi)} ({life_hi:g} years, labelled "
            "automatic shut-off) and reports ERI when it is reached"
        )
        if late:
            basis += (f"; past the earliest ERI ({life_lo:g} years) with no ERI reported: it may come at "
                      f"any interrogation, and EOS {eri_to_eos:g} days after it")
        ms.append(
            Milestone(
                "eri",
                "Battery ERI (estimated)",
                eri,
                max(0.0, (eri - now) / DAY),
                f"{eri_to_eos:g} days before the estimated EOS; {basis}",
                estimate=True,
            )
        )
        ms.append(
            Milestone(
                "eos", "Battery EOS (estimated)", eos, max(0.0, (eos - now) / DAY), basis, estimate=True
            )
        )
    due = [m for m in ms if m.key in ("low_alarm", "empty", "drug_stability") and m.when_s is not None]
    nxt = min(due, key=lambda m: m.when_s or 0) if due else None
    return RefillPlan(
        now, reservoir, low, empty_ml, rate, worst, refill_s, source, tuple(ms), nxt, tuple(notes)
    )


def _unix_date(d: dt.date) -> int:
    return int((d.toordinal() - 719_163) * DAY)  # 719163 = date(1970, 1, 1).toordinal()


def _after_years(d: dt.date, years: float) -> int:
    """Unix seconds of the UTC midnight ``years`` after the date ``d`` (29 February: the 28th)."""
    if float(years).is_integer():
        try:
            return _unix_date(d.replace(year=d.year + int(years)))
        except ValueError:  # 29 February
            return _unix_date(d.replace(year=d.year + int(years), day=28))
    return math.floor(_unix_date(d) + years * _YEAR_DAYS * DAY)


def _iso(unix_s: int) -> str:
    return np.datetime64(int(unix_s), "s").astype("datetime64[D]").astype(str)


@dataclass(frozen=True)
class DoseStep:
    """One program change from the log: the daily dose it set and the change from the one
    before (a flex program counts as its time-weighted daily dose)."""

    time_s: int
    mode: str
    daily_dose_mcg: float
    rate_ml_day: float
    concentration_mcg_ml: float
    flex_steps: int
    override: bool
    time_uncertain: bool
    change_mcg: float | None = None
    change_fraction: float | None = None
    days_since_previous: float | None = None


def _flex_average(rows: pd.DataFrame, col: str) -> float:
    starts = [int(x) % 1440 for x in rows["step_start_min"]]
    values = [float(x) for x in rows[col]]
    order = sorted(range(len(starts)), key=starts.__getitem__)
    starts = [starts[i] for i in order]
    values = [values[i] for i in order]
    if len(starts) == 1:
        return values[0]
    total = 0.0
    for i, (s, v) in enumerate(zip(starts, values, strict=True)):
        nxt = starts[i + 1] if i + 1 < len(starts) else starts[0] + 1440
        total += v * (nxt - s)
    return total / 1440.0


def dose_steps(log: InterrogationLog) -> list[DoseStep]:
    """Every program change in the log, oldest first, with the change in daily dose."""
    ev = log.events
    if ev.empty:
        return []
    pr = ev[ev["event"] == "prescription"]
    if pr.empty:
        return []
    t = to_seconds(pr["time_utc"])
    out: list[DoseStep] = []
    for when in sorted(set(t.tolist())):
        rows = pr[t == when]
        mode = str(rows["mode"].iloc[-1])
        if mode == "flex" and len(rows) > 1:
            dose = _flex_average(rows, "daily_dose_mcg_day")
            rate = _flex_average(rows, "rate_ml_day")
        else:
            dose = float(rows["daily_dose_mcg_day"].iloc[-1])
            rate = float(rows["rate_ml_day"].iloc[-1])
        step = DoseStep(
            int(when),
            mode,
            dose,
            rate,
            float(rows["concentration_mcg_ml"].iloc[-1]),
            len(rows) if mode == "flex" else 0,
            bool((rows["override"].fillna(0) != 0).any()),
            bool(rows["time_uncertain"].any()),
        )
        if out:
            prev = out[-1]
            step = DoseStep(
                **{
                    **step.__dict__,
                    "change_mcg": dose - prev.daily_dose_mcg,
                    "change_fraction": (dose - prev.daily_dose_mcg) / prev.daily_dose_mcg
                    if prev.daily_dose_mcg
                    else None,
                    "days_since_previous": (int(when) - prev.time_s) / DAY,
                }
            )
        out.append(step)
    return out
