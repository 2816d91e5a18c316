"""The pump-programmer interface: one abstract class owns the policy, backends move data.

Like python-can's ``BusABC``: the public methods validate, retry, time out and log; a
backend implements only the narrow ``_hooks``.  Programming is validated on both sides, as
on the real system: here the programmer refuses changes that break the guideline's
titration rules (unless overridden, which is logged), and the pump refuses what it cannot do.
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from parsers import LogImage, Status
from parsers.clinical_rules import load_rules
from parsers.model import datetime_to_clock
from parsers.writer import atomic_write_bytes, encode_log

from .errors import LinkError, ProgrammerRefused, ReadOnlyPump, TransientLinkError
from .prescription import Prescription

log = logging.getLogger("itb_device")
T = TypeVar("T")
BOLUS_KINDS = ("clinician", "priming", "bridge")


@dataclass(frozen=True)
class RefillResult:
    """What a refill found: the residual the pump expected and the one measured."""

    expected_residual_ml: float
    measured_residual_ml: float
    volume_added_ml: float
    concentration_mcg_ml: float

    @property
    def discrepancy_ml(self) -> float:
        """Measured minus expected (positive: the pump delivered less than it thinks)."""
        return self.measured_residual_ml - self.expected_residual_ml


class PumpProgrammer(ABC):
    """A connection to one pump through a programmer.  Use as a context manager."""

    read_only = False

    def __init__(
        self, *, timeout: float = 5.0, retries: int = 2, rules: dict[str, Any] | None = None
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self.rules = rules or load_rules()
        self._closed = False

    # ----- public policy ------------------------------------------------------------------
    def interrogate(self) -> Status:
        """The pump's status snapshot."""
        return self._call("interrogate", self._interrogate)

    def read_log(self) -> LogImage:
        """The whole interrogation log (header, status, pages); save it with ``save_log``."""
        return self._call("read log", self._read_log)

    def read_log_bytes(self) -> bytes:
        """The log as ``.itblog`` bytes (a link backend returns exactly what the pump sent)."""
        return encode_log(self.read_log())

    def save_log(self, path: str | Path) -> Path:
        """Read the log and write it as an ``.itblog`` file (atomically)."""
        atomic_write_bytes(path, [self.read_log_bytes()])
        return Path(path)

    def program(
        self, rx: Prescription, *, override: bool = False, reason: str = "", **pump_options: Any
    ) -> None:
        """Program a prescription after the guideline checks (see :meth:`check_prescription`)."""
        self._writable("programming")
        problems = self.check_prescription(rx)
        if problems and not override:
            raise ProgrammerRefused(
                "; ".join(problems) + " (pass override=True with a reason to program it anyway)"
            )
        if problems:
            log.warning(
                "override of programmer checks (%s): %s",
                reason or "no reason given",
                "; ".join(problems),
            )
        self._call("program", lambda: self._program(rx, bool(problems) and override, **pump_options))
        log.info("programmed %s", rx)

    def check_prescription(self, rx: Prescription) -> list[str]:
        """The guideline's titration rules broken by ``rx`` (empty if none).

        More than +15 % of the daily dose in one step (guideline 4.1.4), more than
        1000 mcg/day (4.1.5), or a concentration that does not match the drug in the
        reservoir (the status snapshot's concentration, entered at the last refill).
        Numbers come from the clinical rules file.
        """
        t = self.rules["titration"]
        minimum = self.rules["pump"]["minimum_rate_mode_ml_day"]
        status = self.interrogate()
        problems = []
        new = rx.total_daily_dose_mcg(minimum)
        old = status.daily_dose_mcg_day if status.mode != "stopped" else 0.0
        if new > t["max_daily_dose_mcg"]:
            problems.append(
                f"{new:g} mcg/day exceeds the maximum of {t['max_daily_dose_mcg']} mcg/day (guideline 4.1.5)"
            )
        if old > 0 and new > old * (1 + t["max_step_fraction"]) + 1e-9:
            problems.append(
                f"{new:g} mcg/day is {100 * (new / old - 1):.0f}% above the current "
                f"{old:g} mcg/day; one step may add at most "
                f"{100 * t['max_step_fraction']:.0f}% (guideline 4.1.4)"
            )
        drug = status.concentration_mcg_ml  # the drug in the reservoir, as entered at refill
        if rx.mode != "stopped" and abs(rx.concentration_mcg_ml - drug) > 1e-6:
            problems.append(
                f"programmed concentration {rx.concentration_mcg_ml:g} mcg/mL does not "
                f"match the drug in the reservoir ({drug:g} mcg/mL); a wrong concentration "
                "causes overdose or withdrawal (guideline 5.2.1, 5.1.1)"
            )
        return problems

    def refill(self, volume_ml: float, concentration_mcg_ml: float, **pump_options: Any) -> RefillResult:
        """Empty the reservoir (measuring the residual) and fill it with new drug."""
        self._writable("a refill")
        res = self._call("refill", lambda: self._refill(volume_ml, concentration_mcg_ml, **pump_options))
        log.info("refill: %s", res)
        return res

    def bolus(self, dose_mcg: float, *, kind: str = "clinician", duration_min: float = 1.0) -> int:
        """Give a clinician, priming or bridge bolus; returns the pump's bolus id."""
        self._writable("a bolus")
        if kind not in BOLUS_KINDS:
            raise ProgrammerRefused(f"bolus kind must be one of {', '.join(BOLUS_KINDS)}")
        if dose_mcg <= 0 or duration_min <= 0:
            raise ProgrammerRefused("bolus dose and duration must be positive")
        return self._call("bolus", lambda: self._bolus(kind, dose_mcg, int(duration_min * 60)))

    def set_clock(self, when: dt.datetime | None = None) -> None:
        """Set the pump clock to ``when`` (aware), by default the programmer's UTC now."""
        self._writable("setting the clock")
        clock = None if when is None else datetime_to_clock(when)
        self._call("set clock", lambda: self._set_clock(clock))

    def close(self) -> None:
        """End the session; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> PumpProgrammer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- helpers ------------------------------------------------------------------------
    def _writable(self, what: str) -> None:
        if self._closed:
            raise LinkError("the session is closed")
        if self.read_only:
            raise ReadOnlyPump(
                f"{what} is refused: this backend replays a saved interrogation and cannot change a pump"
            )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        if self._closed:
            raise LinkError("the session is closed")
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except TransientLinkError as exc:
                log.warning("%s: attempt %d of %d failed: %s", what, attempt + 1, self.retries + 1, exc)
                last = exc
        raise LinkError(f"{what} failed after {self.retries + 1} attempts: {last}")

    # ----- the narrow hooks a backend implements ------------------------------------------
    @abstractmethod
    def _interrogate(self) -> Status: ...

    @abstractmethod
    def _read_log(self) -> LogImage: ...

    def _program(self, rx: Prescription, override: bool, **pump_options: Any) -> None:
        raise ReadOnlyPump("this backend cannot program a pump")

    def _refill(self, volume_ml: float, concentration_mcg_ml: float, **opts: Any) -> RefillResult:
        raise ReadOnlyPump("this backend cannot refill a pump")

    def _bolus(self, kind: str, dose_mcg: float, duration_s: int) -> int:
        raise ReadOnlyPump("this backend cannot give a bolus")

    def _set_clock(self, clock: int | None) -> None:
        raise ReadOnlyPump("this backend cannot set the clock")

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the link (optional)."""
