"""A prescription as a clinician programs it: mode, daily dose, concentration, flex steps.

The device layer's names for infusion modes and bolus kinds are derived here from the log's
enums (:class:`parsers.records.Mode`, :class:`parsers.records.BolusKind`), which define the
values on disk: a mode or kind is declared once, there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parsers.model import FlexStep
from parsers.records import BolusKind, Mode, enum_name

#: Infusion modes by their log names, in code order (``parsers.records.Mode``).
MODES: tuple[str, ...] = tuple(enum_name(Mode, m) for m in Mode)
#: Every bolus kind the pump gives and logs (``parsers.records.BolusKind``).
PUMP_BOLUS_KINDS: tuple[str, ...] = tuple(enum_name(BolusKind, k) for k in BolusKind)
#: The kinds a programmer asks for: all but a patient's bolus, which comes from the myPTM.
BOLUS_KINDS: tuple[str, ...] = tuple(
    enum_name(BolusKind, k) for k in BolusKind if k is not BolusKind.PATIENT
)
DAY_MIN = 24 * 60


@dataclass(frozen=True)
class FlexDose:
    """One flex step: from ``start_min`` (pump-clock minutes after midnight) until the next
    step, the pump runs at the rate that would give ``daily_dose_mcg`` over a whole day."""

    start_min: int
    daily_dose_mcg: float


@dataclass(frozen=True)
class Prescription:
    """What is programmed.  ``daily_dose_mcg`` is for simple continuous mode; a flex program
    gives its steps (its daily dose is their time-weighted sum)."""

    mode: str = "simple_continuous"
    daily_dose_mcg: float = 0.0
    concentration_mcg_ml: float = 2000.0
    flex_steps: tuple[FlexDose, ...] = field(default_factory=tuple)

    def total_daily_dose_mcg(self, minimum_rate_ml_day: float = 0.0) -> float:
        """The drug delivered over a whole day in mcg."""
        if self.mode == "stopped":
            return 0.0
        if self.mode == "minimum_rate":
            return minimum_rate_ml_day * self.concentration_mcg_ml
        if self.mode == "flex":
            steps = sorted(self.flex_steps, key=lambda s: s.start_min)
            total = 0.0
            for i, s in enumerate(steps):
                end = steps[i + 1].start_min if i + 1 < len(steps) else steps[0].start_min + DAY_MIN
                total += s.daily_dose_mcg * (end - s.start_min) / DAY_MIN
            return total
        return self.daily_dose_mcg

    def rate_ml_day(self, minimum_rate_ml_day: float = 0.0) -> float:
        """Average flow over a day in mL/day."""
        if self.concentration_mcg_ml <= 0:
            return 0.0
        return self.total_daily_dose_mcg(minimum_rate_ml_day) / self.concentration_mcg_ml

    def status_flex_steps(self) -> tuple[FlexStep, ...]:
        """The flex steps as the status snapshot stores them."""
        return tuple(
            FlexStep(s.start_min, s.daily_dose_mcg, s.daily_dose_mcg / self.concentration_mcg_ml)
            for s in sorted(self.flex_steps, key=lambda s: s.start_min)
        )
