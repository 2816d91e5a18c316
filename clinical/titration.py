"""The guideline's titration judgement, written once: is a change of the daily dose within
CHW guideline 4.1.2-4.1.5?

The programmer's checks (``itb_device.programmer``), the ``titration_violation`` and
``dose_decrease`` detectors (``analysis.detectors.prescription``) and the research table
``analysis.research.tables.titration`` all call :func:`judge_step`, so they cannot disagree:

- an increase may add at most ``[titration] max_step_fraction`` (15 %) of the daily dose, no
  sooner than ``min_step_interval_days`` (3) after the previous increase (4.1.4);
- in hospital in the ``[titration_checks] inpatient_days`` (3) days after the implant, an
  increase may instead add ``[titration] inpatient_step_mcg_day`` (50 mcg/day) a day, and the
  spacing does not apply (4.1.3);
- the daily dose may not exceed the child's own maximum when one is given, otherwise
  ``[titration] max_daily_dose_mcg``, the upper limit "reached in significant dystonia" (4.1.5);
- a change of ``unit_error_ratio`` (500) fold or more is a dose typed in the wrong unit;
- a cut of ``large_decrease_fraction`` (30 %) or more is a withdrawal risk (5.1.1.3, 5.1.1.8);
- after a stop of ``restart_after_stop_hours`` (24 h) or more, restarting at
  ``restart_full_dose_fraction`` (90 %) of the dose before the stop or more risks overdose.

Whether the child is in hospital is the caller's knowledge: the programmer is told (and
checks it against the pump's implant date); the analysis of a log can only assume it from the
implant date (:func:`in_hospital_window`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .rules import Rules

DAY_S = 86_400
_EPS = 1e-9


@dataclass(frozen=True)
class TitrationLimits:
    """``[titration]`` and ``[titration_checks]`` of the rules, typed."""

    min_step_fraction: float
    max_step_fraction: float
    min_step_interval_days: float
    inpatient_step_mcg_day: float
    inpatient_days: float
    upper_limit_mcg_day: float  # [titration] max_daily_dose_mcg: reached in significant dystonia (4.1.5)
    restart_after_stop_hours: float
    restart_full_dose_fraction: float
    unit_error_ratio: float
    dose_change_tolerance: float
    large_decrease_fraction: float

    @classmethod
    def from_rules(cls, rules: Rules) -> TitrationLimits:
        """The limits of ``rules`` (a :class:`clinical.rules.Rules`)."""
        t = lambda k: rules.number("titration", k)  # noqa: E731
        c = lambda k: rules.number("titration_checks", k)  # noqa: E731
        return cls(
            min_step_fraction=t("min_step_fraction"),
            max_step_fraction=t("max_step_fraction"),
            min_step_interval_days=t("min_step_interval_days"),
            inpatient_step_mcg_day=t("inpatient_step_mcg_day"),
            inpatient_days=c("inpatient_days"),
            upper_limit_mcg_day=t("max_daily_dose_mcg"),
            restart_after_stop_hours=t("restart_after_stop_hours"),
            restart_full_dose_fraction=c("restart_full_dose_fraction"),
            unit_error_ratio=c("unit_error_ratio"),
            dose_change_tolerance=c("dose_change_tolerance"),
            large_decrease_fraction=c("large_decrease_fraction"),
        )


def in_hospital_window_end_s(implant_date: dt.date, limits: TitrationLimits) -> float:
    """Unix seconds at which the in-hospital titration window after ``implant_date`` ends: the
    implant day and the ``inpatient_days`` after it, by UTC midnights (4.1.3).  An implant
    date no calendar can hold gives no window (minus infinity)."""
    try:
        start = dt.datetime(implant_date.year, implant_date.month, implant_date.day, tzinfo=dt.UTC)
        return start.timestamp() + (limits.inpatient_days + 1) * DAY_S
    except (ValueError, OverflowError, AttributeError):
        return float("-inf")


def in_hospital_window(implant_date: dt.date, when_s: float, limits: TitrationLimits) -> bool:
    """True when ``when_s`` (Unix seconds) is before the end of the in-hospital window after
    ``implant_date`` (see :func:`in_hospital_window_end_s`)."""
    return when_s < in_hospital_window_end_s(implant_date, limits)


@dataclass(frozen=True)
class StepJudgement:
    """One change of the daily dose, judged against the guideline.

    ``kind``: ``initial`` (no running dose before), ``stop``, ``restart`` (after a stop of
    ``restart_after_stop_hours`` or more), ``same`` (a change below ``dose_change_tolerance``:
    not a titration step), ``increase`` or ``decrease``.  ``problems`` are sentences naming the
    rule and its section; empty when the change is within the guideline."""

    kind: str
    old_mcg_day: float | None
    new_mcg_day: float
    in_hospital: bool
    max_mcg_day: float
    allowed_mcg_day: float | None = None  # the most an increase may reach
    unit_error: bool = False
    large_cut: bool = False
    full_dose_restart: bool = False
    step_ok: bool = True
    interval_ok: bool = True
    max_ok: bool = True
    problems: tuple[str, ...] = ()

    @property
    def within_guideline(self) -> bool:
        """No rule broken (a large cut is a warning, not a breach)."""
        return self.step_ok and self.interval_ok and self.max_ok


def max_problem(new: float, maximum: float, own_maximum: bool) -> str:
    """The sentence for a daily dose above the maximum."""
    if own_maximum:
        return f"{new:g} mcg/day is above this child's maximum of {maximum:g} mcg/day (guideline 4.1.5)"
    return (f"{new:g} mcg/day is above the {maximum:g} mcg/day upper limit, reached only in significant "
            "dystonia (guideline 4.1.5)")


def judge_step(
    old_mcg_day: float | None,
    new_mcg_day: float,
    limits: TitrationLimits,
    *,
    in_hospital: bool = False,
    days_since_increase: float | None = None,
    stopped_h: float | None = None,
    max_daily_dose_mcg: float | None = None,
    before: str = "previous",
) -> StepJudgement:
    """Judge the change from ``old_mcg_day`` (the running daily dose before, or before a stop;
    None or 0 for none) to ``new_mcg_day`` (0 for a stop).

    ``in_hospital``: in hospital in the days after the implant (4.1.3);
    ``days_since_increase``: days since the previous increase (None: not known, not judged);
    ``stopped_h``: the length of a stop just before this change (None: no stop);
    ``max_daily_dose_mcg``: the child's own maximum (None: the upper limit of the rules);
    ``before``: the word for the old dose in the sentences ("previous", "current").
    """
    own = max_daily_dose_mcg is not None
    maximum = float(max_daily_dose_mcg) if max_daily_dose_mcg is not None else limits.upper_limit_mcg_day
    new = float(new_mcg_day)
    base: dict[str, Any] = {"old_mcg_day": old_mcg_day, "new_mcg_day": new,
                            "in_hospital": bool(in_hospital), "max_mcg_day": maximum}
    if new <= 0:
        return StepJudgement("stop", **base)
    max_ok = new <= maximum * (1 + _EPS)
    max_text = () if max_ok else (max_problem(new, maximum, own),)
    if old_mcg_day is None or old_mcg_day <= 0:
        return StepJudgement("initial", **base, max_ok=max_ok, problems=max_text)
    old = float(old_mcg_day)
    if stopped_h is not None and stopped_h >= limits.restart_after_stop_hours:
        full = new >= limits.restart_full_dose_fraction * old
        text = (f"restarting at {new:g} mcg/day after a stop of {stopped_h:.0f} h, "
                f"{100 * new / old:.0f}% of the {old:g} mcg/day before the stop: after a day or more "
                "without baclofen tolerance falls; restart lower and re-titrate",) if full else ()
        return StepJudgement("restart", **base, full_dose_restart=full, step_ok=not full, max_ok=max_ok,
                             problems=text + max_text)
    ratio = new / old
    unit_error = ratio >= limits.unit_error_ratio or ratio <= 1 / limits.unit_error_ratio
    problems: list[str] = []
    if unit_error:
        problems.append(f"the dose changed {ratio:g}-fold ({old:g} to {new:g} mcg/day): a dose entered "
                        "in the wrong unit (mg for mcg)")
    problems.extend(max_text)
    if abs(new - old) <= limits.dose_change_tolerance * old:
        return StepJudgement("same", **base, max_ok=max_ok, problems=tuple(problems))
    if new < old:
        large_cut = not unit_error and ratio < 1 - limits.large_decrease_fraction
        return StepJudgement("decrease", **base, unit_error=unit_error, large_cut=large_cut,
                             step_ok=not unit_error, max_ok=max_ok, problems=tuple(problems))
    allowed = old * (1 + limits.max_step_fraction)
    if in_hospital:
        allowed = max(allowed, old + limits.inpatient_step_mcg_day)
    step_ok = not unit_error and new <= allowed * (1 + _EPS)
    if not step_ok and not unit_error:
        extra = (f", or +{limits.inpatient_step_mcg_day:g} mcg/day a day in hospital after the implant "
                 "(4.1.3)" if in_hospital else "")
        problems.append(f"{new:g} mcg/day is {100 * (ratio - 1):.0f}% above the {before} {old:g} mcg/day; "
                        f"one step may add at most {100 * limits.max_step_fraction:.0f}% "
                        f"(guideline 4.1.4){extra}")
    interval_ok = (in_hospital or days_since_increase is None
                   or days_since_increase >= limits.min_step_interval_days - _EPS)
    if not interval_ok:
        problems.append(f"only {days_since_increase:.1f} days after the previous increase; the guideline "
                        f"spaces steps at least {limits.min_step_interval_days:g} days apart (4.1.4)")
    return StepJudgement("increase", **base, allowed_mcg_day=allowed, unit_error=unit_error,
                         step_ok=step_ok, interval_ok=interval_ok, max_ok=max_ok, problems=tuple(problems))
