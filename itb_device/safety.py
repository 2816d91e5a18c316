"""Programming safety shared by the programmer and the simulated pump.

* Every value is checked where it enters (:func:`check_prescription_values`,
  :func:`check_refill_values`, :func:`check_bolus_values`, :func:`check_clock`): a real,
  finite number, not negative, and small enough for the wire (docs/wire-protocol.md) and the
  pump's log (docs/log-format.md), so no ``struct.error``, ``OverflowError`` or unencodable
  record can follow.
* Bolus limits per kind (:func:`bolus_limit_problem`, ``[boluses] max_dose_mcg`` and
  ``max_duration_min`` of the clinical rules).
* The titration window across programs and sessions (:func:`titration_window_problems`):
  increases within ``[titration] min_step_interval_days`` add up, and a restart after a stop
  is judged against the dose before the stop.
* A flex step's rate is a daily dose too (:func:`flex_peak_problems`).
* Overrides need a reason and who gave it (:func:`override_note`).

The programmer raises :class:`~itb_device.errors.InvalidValue` (a ProgrammerRefused and a
ValueError) or :class:`~itb_device.errors.ProgrammerRefused`; the pump passes
``error=PumpRefused``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from clinical.rules import Rules
from clinical.titration import TitrationLimits, in_hospital_window
from parsers import LogFormatError
from parsers.model import LogImage
from parsers.records import MILLI_PER_UNIT, NG_PER_MCG, NL_PER_ML, OverrideReason, RecordCode

from .errors import DeviceError, InvalidValue, LinkError, ProgrammerRefused
from .prescription import BOLUS_KINDS, MODES, FlexDose, Prescription

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
DAY_S = 86_400
#: The latest clock a pump accepts: 2100-01-01T00:00:00Z in ITB-epoch seconds (the u32 clock
#: itself runs out in 2136; the margin keeps a running pump's records encodable for decades).
MAX_PUMP_CLOCK = 3_155_760_000
MAX_DOSE_MCG = U32_MAX / NG_PER_MCG  # doses and daily doses travel and are logged as u32 ng
MAX_CONCENTRATION = U32_MAX / MILLI_PER_UNIT  # u32, 0.001 mcg/mL
MAX_VOLUME_ML = U32_MAX / NL_PER_ML  # u32 nL
OVERRIDE_REASONS = tuple(m.name.lower() for m in OverrideReason if m is not OverrideReason.NONE)
_EPS = 1e-9


# ----- values ------------------------------------------------------------------------------------

def number(
    value: Any,
    name: str,
    *,
    error: type[DeviceError] = InvalidValue,
    positive: bool = False,
    high: float | None = None,
    unit: str = "",
) -> float:
    """``value`` as a float when it is a real, finite number, not negative (``positive``: above
    0) and at most ``high``; otherwise ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, not {value!r}")
    try:
        x = float(value)
    except (OverflowError, ValueError, TypeError):
        raise error(f"{name} must be a finite number, not {value!r}") from None
    if not math.isfinite(x):
        raise error(f"{name} must be a finite number, not {x!r}")
    if x < 0 or (positive and x == 0):
        raise error(f"{name} must be {'positive' if positive else 'zero or more'}, not {x:g}{unit}")
    if high is not None and x > high:
        raise error(f"{name} of {x:g}{unit} is too large (at most {high:g}{unit})")
    return x


def integer(value: Any, name: str, *, error: type[DeviceError] = InvalidValue, low: int = 0,
            high: int = U32_MAX) -> int:
    """``value`` when it is a whole number from ``low`` to ``high``; otherwise ``error``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name} must be a whole number, not {value!r}")
    if not low <= int(value) <= high:
        raise error(f"{name} must be from {low} to {high}, not {int(value)}")
    return int(value)


def check_prescription_values(rx: Any, *, error: type[DeviceError] = InvalidValue) -> Prescription:
    """``rx`` when it is a :class:`Prescription` whose mode is known and whose numbers are real,
    finite, not negative and representable on the wire; the pump judges the rest."""
    if not isinstance(rx, Prescription):
        raise error(f"a prescription must be an itb_device.Prescription, not {type(rx).__name__}")
    if rx.mode not in MODES:
        raise error(f"unknown infusion mode {rx.mode!r}; the pump knows {', '.join(MODES)}")
    number(rx.concentration_mcg_ml, "concentration_mcg_ml", error=error, high=MAX_CONCENTRATION,
           unit=" mcg/mL")
    number(rx.daily_dose_mcg, "daily_dose_mcg", error=error, high=MAX_DOSE_MCG, unit=" mcg/day")
    steps = rx.flex_steps
    if not isinstance(steps, tuple | list):
        raise error(f"flex_steps must be a tuple of FlexDose, not {type(steps).__name__}")
    if len(steps) > 255:
        raise error(f"a flex program has 1 to 13 steps a day, not {len(steps)}")
    for i, s in enumerate(steps):
        if not isinstance(s, FlexDose):
            raise error(f"flex step {i} must be a FlexDose, not {type(s).__name__}")
        integer(s.start_min, f"flex step {i} start_min", error=error, high=U16_MAX)
        number(s.daily_dose_mcg, f"flex step {i} daily_dose_mcg", error=error, high=MAX_DOSE_MCG,
               unit=" mcg/day")
    return rx


def check_intended(value: Any, *, error: type[DeviceError] = InvalidValue) -> float | None:
    """The simulator's ``intended_daily_dose_mcg`` option (None: as programmed)."""
    if value is None:
        return None
    return number(value, "intended_daily_dose_mcg", error=error, high=MAX_DOSE_MCG, unit=" mcg/day")


def check_refill_values(volume_ml: Any, concentration_mcg_ml: Any, *,
                        error: type[DeviceError] = InvalidValue) -> tuple[float, float]:
    """A refill's volume and concentration as floats (the pump judges the reservoir's size)."""
    return (number(volume_ml, "refill volume_ml", error=error, high=MAX_VOLUME_ML, unit=" mL"),
            number(concentration_mcg_ml, "concentration_mcg_ml", error=error, high=MAX_CONCENTRATION,
                   unit=" mcg/mL"))


def check_bolus_values(kind: Any, dose_mcg: Any, duration_min: Any, *,
                       error: type[DeviceError] = InvalidValue,
                       kinds: Sequence[str] = BOLUS_KINDS) -> tuple[float, int]:
    """A bolus's dose (mcg) and duration in whole seconds, or ``error``."""
    if kind not in kinds:
        raise error(f"bolus kind must be one of {', '.join(kinds)}")
    dose = number(dose_mcg, "bolus dose_mcg", error=error, positive=True, high=MAX_DOSE_MCG, unit=" mcg")
    minutes = number(duration_min, "bolus duration_min", error=error, positive=True, high=U32_MAX / 60,
                     unit=" min")
    seconds = round(minutes * 60)
    if seconds < 1:
        raise error(f"bolus duration {minutes:g} min is less than a second")
    return dose, seconds


def bolus_limit_problem(kind: str, dose_mcg: float, duration_s: float, rules: Rules) -> str | None:
    """Why the clinical rules refuse this bolus (``[boluses] max_dose_mcg`` for its kind,
    ``max_duration_min``), or None.  Patient boluses are limited by the myPTM settings."""
    limits = rules.get("boluses", "max_dose_mcg")
    limit = limits.get(kind) if hasattr(limits, "get") else None
    if limit is not None and dose_mcg > float(limit) * (1 + _EPS):
        return (f"a {kind} bolus of {dose_mcg:g} mcg is above the {float(limit):g} mcg limit for a {kind} "
                "bolus ([boluses] max_dose_mcg of the clinical rules)")
    longest = rules.number("boluses", "max_duration_min")
    if duration_s > longest * 60 * (1 + _EPS):
        return (f"a bolus lasting {duration_s / 60:g} min is longer than the {longest:g} min limit "
                "([boluses] max_duration_min of the clinical rules)")
    return None


def check_clock(clock: Any, *, error: type[DeviceError] = InvalidValue) -> int:
    """A pump clock (ITB-epoch seconds) from 2000-01-01 to 2100-01-01 (:data:`MAX_PUMP_CLOCK`)."""
    if isinstance(clock, bool) or not isinstance(clock, numbers.Integral):
        raise error(f"the clock must be whole seconds since 2000-01-01, not {clock!r}")
    if not 0 <= int(clock) <= MAX_PUMP_CLOCK:
        raise error(f"clock {int(clock)} s is outside the pump's range: from 2000-01-01 to 2100-01-01 "
                    f"(0 to {MAX_PUMP_CLOCK} s since 2000-01-01)")
    return int(clock)


# ----- overrides ---------------------------------------------------------------------------------

def override_note(reason: Any, operator: Any, *,
                  error: type[DeviceError] = ProgrammerRefused) -> tuple[str, int]:
    """The reason (an :class:`~parsers.records.OverrideReason` name) and the operator's staff
    number of an override, or ``error`` saying what is missing."""
    names = ", ".join(OVERRIDE_REASONS)
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        raise error(f"an override needs a reason (reason= one of {names}) and who gives it "
                    "(operator= the clinician's staff number)")
    text = reason.name.lower() if isinstance(reason, OverrideReason) else str(reason)
    name = text.strip().lower().replace(" ", "_").replace("-", "_")
    if name not in OVERRIDE_REASONS:
        raise error(f"override reason {reason!r} is not one of {names}")
    return name, operator_id(operator, error=error)


def operator_id(operator: Any, *, error: type[DeviceError] = ProgrammerRefused) -> int:
    """The staff number (1 to 4294967295) of the clinician who gives an override."""
    if operator is None or (isinstance(operator, str) and not operator.strip()):
        raise error("an override needs who gives it: operator= the clinician's staff number")
    if isinstance(operator, str):
        text = operator.strip()
        if not (text.isascii() and text.isdigit()):
            raise error(f"operator {operator!r} must be a staff number (digits only)")
        value = int(text)
    elif isinstance(operator, numbers.Integral) and not isinstance(operator, bool):
        value = int(operator)
    else:
        raise error(f"operator must be a staff number, not {operator!r}")
    if not 1 <= value <= U32_MAX:
        raise error(f"operator {value} must be a staff number from 1 to {U32_MAX}")
    return value


# ----- titration across programs and sessions ---------------------------------------------------

def prescription_history(image: LogImage, minimum_rate_ml_day: float = 0.0) -> list[tuple[int, str, float]]:
    """``(pump clock, mode, daily dose mcg/day)`` of every prescription change in the pump's
    log, oldest first (a flex program's records are summed into its time-weighted dose)."""
    out: list[tuple[int, str, float]] = []
    group: list[Any] = []

    def flush() -> None:
        if group:
            steps = tuple(FlexDose(int(r.values.get("step_start_min", 0)),
                                   float(r.values.get("daily_dose_mcg_day", 0.0))) for r in group)
            out.append((group[0].clock, "flex", Prescription("flex", 0.0, 1.0, steps).total_daily_dose_mcg()))
            group.clear()

    for page in sorted(image.pages, key=lambda p: p.seq):
        for r in page.records:
            if r.code != RecordCode.PRESCRIPTION:
                continue
            v = r.values
            mode = str(v.get("mode", ""))
            if mode == "flex" and v.get("step", 255) != 255:
                if v.get("step") == 0 or (group and r.clock != group[0].clock):
                    flush()
                group.append(r)
                if len(group) >= max(1, int(v.get("step_count", 1) or 1)):
                    flush()
                continue
            flush()
            dose = 0.0 if mode == "stopped" else float(v.get("daily_dose_mcg_day", 0.0))
            out.append((int(r.clock), mode, dose))
    flush()
    return out


def titration_window_problems(history: Sequence[tuple[int, str, float]], now_clock: int,
                              new_mcg_day: float, rules: Rules, *, in_hospital: bool = False) -> list[str]:
    """What the titration window forbids for a new daily dose ``new_mcg_day``, given the pump's
    prescription ``history`` (:func:`prescription_history`) and its clock now.

    * Increases within ``[titration] min_step_interval_days`` add up: the new dose may be at
      most ``max_step_fraction`` above the lowest dose running in that window (the dose in
      effect at its start included; stops excluded).  So five +15 % steps in one session, or a
      stop then a restart at five times the dose, are refused; one step of +15 % is not.
    * After a stop of ``restart_after_stop_hours`` or more, a restart at
      ``[titration_checks] restart_full_dose_fraction`` of the dose before the stop or more.

    ``in_hospital`` (confirmed by the caller against the implant date, guideline 4.1.3): the
    window is one day and the steps in it may add the larger of ``max_step_fraction`` and
    ``[titration] inpatient_step_mcg_day``.

    Only changes within the window are judged here; a single step from a dose that ran the whole
    window is the programmer's step check (:meth:`PumpProgrammer.check_prescription`)."""
    if new_mcg_day <= 0:
        return []
    step = rules.number("titration", "max_step_fraction")
    days = 1.0 if in_hospital else rules.number("titration", "min_step_interval_days")
    extra = rules.number("titration", "inpatient_step_mcg_day") if in_hospital else 0.0
    start = now_clock - days * DAY_S
    problems: list[str] = []
    # records stamped after the pump's clock now were written before a reset or a clock set put
    # the clock back: they cannot be placed in the window, and are left out
    history = [h for h in history if h[0] <= now_clock + 60]
    before = [h for h in history if h[0] <= start]
    inside = [h for h in history if h[0] > start]
    running = [d for _, mode, d in inside if mode != "stopped" and d > 0]
    if before and before[-1][1] != "stopped" and before[-1][2] > 0:
        running.append(before[-1][2])
    if inside and running:
        base = min(running)
        if new_mcg_day > max(base * (1 + step), base + extra) * (1 + _EPS):
            allowed = (f"the larger of {100 * step:.0f}% and +{extra:g} mcg/day in hospital (guideline 4.1.3)"
                       if in_hospital else f"{100 * step:.0f}% (guideline 4.1.4)")
            problems.append(
                f"{new_mcg_day:g} mcg/day is {100 * (new_mcg_day / base - 1):.0f}% above {base:g} mcg/day, "
                f"the lowest daily dose programmed in the last {days:g} day{'s' if days != 1 else ''}: "
                f"steps within {days:g} day{'s' if days != 1 else ''} add up, and together may add at "
                f"most {allowed}")
    if history and history[-1][1] == "stopped":
        i = len(history) - 1
        while i > 0 and history[i - 1][1] == "stopped":
            i -= 1
        before_stop = history[i - 1][2] if i > 0 else 0.0
        stopped_h = (now_clock - history[i][0]) / 3600
        full = rules.number("titration_checks", "restart_full_dose_fraction")
        if (before_stop > 0 and stopped_h >= rules.number("titration", "restart_after_stop_hours")
                and new_mcg_day >= full * before_stop * (1 - _EPS)):
            problems.append(
                f"restarting at {new_mcg_day:g} mcg/day after a stop of {stopped_h:.0f} h, "
                f"{100 * new_mcg_day / before_stop:.0f}% of the {before_stop:g} mcg/day before the stop: "
                "after a day or more without baclofen tolerance falls; restart lower and re-titrate")
    return problems


def flex_peak_problems(rx: Prescription, rules: Rules, max_daily_dose_mcg: float | None = None) -> list[str]:
    """A flex step runs at its daily dose's rate: above ``[titration] max_daily_dose_mcg`` (or
    the child's own maximum) it is a bolus in disguise, however short (guideline 4.1.5)."""
    if rx.mode != "flex" or not rx.flex_steps:
        return []
    top = (float(max_daily_dose_mcg) if max_daily_dose_mcg is not None
           else rules.number("titration", "max_daily_dose_mcg"))
    peak = max(rx.flex_steps, key=lambda s: s.daily_dose_mcg)
    if peak.daily_dose_mcg <= top * (1 + _EPS):
        return []
    return [f"the flex step at {peak.start_min // 60:02d}:{peak.start_min % 60:02d} runs at "
            f"{peak.daily_dose_mcg:g} mcg/day, above the {top:g} mcg/day maximum (guideline 4.1.5): "
            "a short step at a high rate is a bolus in disguise"]


def pump_prescription_problems(rx: Prescription, drug_mcg_ml: float, rules: Rules,
                               minimum_rate_ml_day: float) -> list[str]:
    """The checks the pump makes itself before it accepts a program without an override: the
    drug in its reservoir, the maximum daily dose and the flex steps' rates (never stricter
    than the programmer's checks, which it repeats)."""
    problems = []
    if rx.mode != "stopped" and abs(rx.concentration_mcg_ml - drug_mcg_ml) > 0.5 / MILLI_PER_UNIT + _EPS:
        problems.append(f"programmed concentration {rx.concentration_mcg_ml:g} mcg/mL does not match the "
                        f"drug in the reservoir ({drug_mcg_ml:g} mcg/mL)")
    top = rules.number("titration", "max_daily_dose_mcg")
    total = rx.total_daily_dose_mcg(minimum_rate_ml_day)
    if total > top * (1 + 1e-6):
        problems.append(f"{total:g} mcg/day is above the {top:g} mcg/day maximum (guideline 4.1.5)")
    return problems + flex_peak_problems(rx, rules)


def history_problems(programmer: Any, rx: Prescription, *, in_hospital: bool = False,
                     max_daily_dose_mcg: float | None = None) -> list[str]:
    """What the pump's own history forbids for ``rx``, read through ``programmer`` (a
    :class:`~itb_device.programmer.PumpProgrammer`): the titration window
    (:func:`titration_window_problems`, on the prescription records of the pump's log and its
    clock) and the flex steps' rates (:func:`flex_peak_problems`).  A log that cannot be read is
    a problem too (the window cannot be checked)."""
    rules = programmer.rules
    minimum = rules.number("pump", "minimum_rate_mode_ml_day")
    problems = flex_peak_problems(rx, rules, max_daily_dose_mcg)
    new = rx.total_daily_dose_mcg(minimum)
    top = rules.number("titration", "max_daily_dose_mcg")
    if max_daily_dose_mcg is not None and new > top * (1 + 1e-6):  # the child's maximum is above it
        problems.append(f"{new:g} mcg/day is above the {top:g} mcg/day upper limit, which the pump "
                        "enforces itself: the child's own maximum needs an override (guideline 4.1.5)")
    if rx.mode == "stopped" or new <= 0:
        return problems
    try:
        image = programmer.read_log()
    except LinkError:
        raise
    except (LogFormatError, ValueError) as exc:
        return [*problems, f"the pump's prescription history cannot be read ({exc}), so the titration "
                           "window cannot be checked"]
    hospital = False
    if in_hospital:
        limits = TitrationLimits.from_rules(rules)
        hospital = in_hospital_window(image.header.implant_date, image.header.interrogated_at.timestamp(),
                                      limits)
    history = prescription_history(image, minimum)
    return problems + titration_window_problems(history, image.header.pump_clock, new, rules,
                                                in_hospital=hospital)
