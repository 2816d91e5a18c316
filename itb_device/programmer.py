"""The pump-programmer interface: one abstract class owns the policy, backends move data.

Like python-can's ``BusABC``: the public methods validate, retry, time out and log; a
backend implements only the narrow ``_hooks``.  Programming is validated on both sides, as
on the real system: here the programmer refuses changes that break the guideline's
titration rules (unless overridden, which is logged), and the pump refuses what it cannot do.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clinical.rules import Rules, get_rules
from clinical.titration import TitrationLimits, in_hospital_window, judge_step
from parsers import LogImage, Status
from parsers.model import datetime_to_clock
from parsers.writer import atomic_write_bytes, encode_log

from . import safety
from .errors import (
    BolusOutcomeUnknown,
    InvalidValue,
    LinkError,
    ProgrammerRefused,
    ReadOnlyPump,
    TransientLinkError,
)
from .pagecache import HEAD_AND_STATUS, LogRead, PageCache
from .prescription import BOLUS_KINDS as BOLUS_KINDS  # re-exported: the kinds bolus() gives
from .prescription import Prescription
from .retry import RetryPolicy

log = logging.getLogger("itb_device")
T = TypeVar("T")


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
    """A connection to one pump through a programmer.  Use as a context manager.

    ``timeout`` is how long the backend waits for the pump's answer to one request, in
    seconds: a link backend waits that long (:class:`~itb_device.serial_backend.SerialProgrammer`
    sets it from its ``link_timeout``); an in-process pump (``sim://``) or a saved log
    (``file://``) answers at once and only reports it.  ``retries`` is how many times a public
    method calls its backend hook again after a :class:`TransientLinkError` (its
    :class:`~itb_device.retry.RetryPolicy` is ``retry``; see :meth:`_call`)."""

    read_only = False
    #: The key and request of a bolus whose outcome is unknown (see :meth:`bolus`), else None.
    _unknown_bolus: tuple[int, tuple[str, int, int]] | None = None

    def __init__(
        self, *, timeout: float = 5.0, retries: int = 2, rules: Rules | Mapping[str, Any] | None = None
    ) -> None:
        self.timeout = timeout
        self.retry = RetryPolicy.from_retries(retries)
        self.rules = get_rules(rules)
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PumpProgrammer:
        """Open a session on the pump ``url`` names (each backend defines it; the registry of
        :mod:`itb_device.backends` calls it)."""
        raise NotImplementedError(f"{cls.__name__} cannot be opened from a URL")

    @property
    def retries(self) -> int:
        """Calls of a backend hook after the first, when the first failed transiently."""
        return self.retry.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.retry = RetryPolicy.from_retries(value, self.retry.backoff_s)

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

    def read_log_cached(self, cache: PageCache | str | Path | None = None, *, full: bool = False) -> LogRead:
        """The log, byte for byte what :meth:`read_log_bytes` gives, read only in part when this
        pump's pages are in the page ``cache`` (a :class:`~itb_device.pagecache.PageCache`, a
        folder, or None for the default folder): see
        :meth:`itb_device.serial_backend.SerialProgrammer.read_log_cached`.  ``full`` reads it
        whole (and refreshes the cached copy).  A backend without a link (``sim://``,
        ``file://``) always reads it whole and keeps no copy: reading it costs nothing."""
        data = self.read_log_bytes()
        page_size = int.from_bytes(data[14:16], "little") if len(data) >= 16 else 0
        pages = max(0, len(data) - HEAD_AND_STATUS) // page_size if page_size else 0
        return LogRead(data, False, "no link to the pump: nothing to save by reading in part",
                       pages=pages, pages_read=pages)

    def save_log(self, path: str | Path) -> Path:
        """Read the log and write it as an ``.itblog`` file (atomically)."""
        atomic_write_bytes(path, [self.read_log_bytes()])
        return Path(path)

    def program(
        self,
        rx: Prescription,
        *,
        override: bool = False,
        reason: str = "",
        in_hospital: bool = False,
        max_daily_dose_mcg: float | None = None,
        operator: int | str | None = None,
        note: str = "",
        **pump_options: Any,
    ) -> None:
        """Program a prescription after the guideline checks (see :meth:`check_prescription`) and
        the titration window across programs and sessions (:func:`itb_device.safety.history_problems`).

        An override needs ``reason`` (one of :data:`itb_device.safety.OVERRIDE_REASONS`) and
        ``operator`` (the staff number of the clinician who gives it); the pump logs both in an
        ``override_note`` record.  ``note`` (free text) goes to this programmer's log only."""
        self._writable("programming")
        safety.check_prescription_values(rx)
        safety.check_intended(pump_options.get("intended_daily_dose_mcg"))
        problems = self.check_prescription(rx, in_hospital=in_hospital, max_daily_dose_mcg=max_daily_dose_mcg)
        problems += [p for p in safety.history_problems(
            self, rx, in_hospital=in_hospital, max_daily_dose_mcg=max_daily_dose_mcg) if p not in problems]
        if problems and not override:
            raise ProgrammerRefused(
                "; ".join(problems) + " (pass override=True with a reason and the operator to program it "
                "anyway)"
            )
        if problems:
            code, staff = safety.override_note(reason, operator)
            pump_options.update(override_reason=code, operator_id=staff)
            log.warning(
                "override of programmer checks by operator %d (%s%s): %s",
                staff,
                code,
                f": {note}" if note else "",
                "; ".join(problems),
            )
        self._call("program", lambda: self._program(rx, bool(problems) and override, **pump_options))
        log.info("programmed %s", rx)

    def check_prescription(
        self, rx: Prescription, *, in_hospital: bool = False, max_daily_dose_mcg: float | None = None
    ) -> list[str]:
        """The guideline's rules broken by ``rx`` (empty if none).

        The titration judgement is the one the analysis uses (:func:`clinical.titration.judge_step`):
        more than +15 % of the daily dose in one step (guideline 4.1.4), or, with
        ``in_hospital=True`` in the 3 days after the implant, more than the larger of that and
        +50 mcg/day (4.1.3; the pump's implant date and clock are read to confirm the days);
        a daily dose above the child's maximum (``max_daily_dose_mcg``) or, without one, above
        the 1000 mcg/day upper limit reached in significant dystonia (4.1.5); a dose changed
        500-fold (a unit error).  Also a concentration that does not match the drug in the
        reservoir (the status snapshot's concentration, entered at the last refill).  Numbers
        come from the clinical rules file.
        """
        limits = TitrationLimits.from_rules(self.rules)
        minimum = self.rules.number("pump", "minimum_rate_mode_ml_day")
        status = self.interrogate()
        new = rx.total_daily_dose_mcg(minimum)
        old = status.daily_dose_mcg_day if status.mode != "stopped" else 0.0
        hospital, why_not = (self._in_hospital_window(limits) if in_hospital else (False, ""))
        judged = judge_step(old, new, limits, in_hospital=hospital,
                            max_daily_dose_mcg=max_daily_dose_mcg, before="current")
        problems = list(judged.problems)
        if in_hospital and not hospital and not judged.step_ok and not judged.unit_error:
            problems.append(why_not)
        if max_daily_dose_mcg is not None and max_daily_dose_mcg > limits.upper_limit_mcg_day:
            log.warning("this child's maximum of %g mcg/day is above the %g mcg/day upper limit reached "
                        "in significant dystonia (guideline 4.1.5)", max_daily_dose_mcg,
                        limits.upper_limit_mcg_day)
        if judged.large_cut:
            log.warning("%g to %g mcg/day is a cut of %.0f%%: a withdrawal risk if not intended "
                        "(guideline 5.1.1.3, 5.1.1.8)", old, new, 100 * (1 - new / old))
        drug = status.concentration_mcg_ml  # the drug in the reservoir, as entered at refill
        if rx.mode != "stopped" and abs(rx.concentration_mcg_ml - drug) > 1e-6:
            problems.append(
                f"programmed concentration {rx.concentration_mcg_ml:g} mcg/mL does not "
                f"match the drug in the reservoir ({drug:g} mcg/mL); a wrong concentration "
                "causes overdose or withdrawal (guideline 5.2.1, 5.1.1)"
            )
        return problems

    def _in_hospital_window(self, limits: TitrationLimits) -> tuple[bool, str]:
        """Whether the pump's clock is still in the in-hospital window after its implant date
        (from the log header), and if not, the sentence that says so."""
        header = self.read_log().header
        now_s = header.interrogated_at.timestamp()
        if in_hospital_window(header.implant_date, now_s, limits):
            return True, ""
        return False, (
            f"the in-hospital step of +{limits.inpatient_step_mcg_day:g} mcg/day is for the "
            f"{limits.inpatient_days:g} days after the implant (guideline 4.1.3), and this pump was "
            f"implanted on {header.implant_date.isoformat()}"
        )

    def refill(self, volume_ml: float, concentration_mcg_ml: float, **pump_options: Any) -> RefillResult:
        """Empty the reservoir (measuring the residual) and fill it with new drug."""
        self._writable("a refill")
        safety.check_refill_values(volume_ml, concentration_mcg_ml)
        res = self._call("refill", lambda: self._refill(volume_ml, concentration_mcg_ml, **pump_options))
        log.info("refill: %s", res)
        return res

    def bolus(
        self, dose_mcg: float, *, kind: str = "clinician", duration_min: float = 1.0, key: int | None = None
    ) -> int:
        """Give a clinician, priming or bridge bolus; returns the pump's bolus id.

        Refused above the clinical rules' limit for its kind (``[boluses] max_dose_mcg``,
        ``max_duration_min``), which the pump checks again.  Every request carries an
        idempotency ``key`` (by default a new random one): the pump gives at most one bolus per
        key.  When no answer comes, the programmer asks the pump what became of the key before
        it reports anything; if even that fails it raises :class:`BolusOutcomeUnknown` (the pump
        may have started the bolus), and the same call again on this programmer, or
        ``key=exc.key`` on any, finds out without giving it twice."""
        self._writable("a bolus")
        dose, duration_s = safety.check_bolus_values(kind, dose_mcg, duration_min)
        problem = safety.bolus_limit_problem(kind, dose, duration_s, self.rules)
        if problem is not None:
            raise ProgrammerRefused(problem)
        request = (kind, round(dose * 1000), duration_s)
        pending = self._unknown_bolus
        if key is not None:
            key = safety.integer(key, "bolus key", low=1)
        elif pending is not None and pending[1] == request:
            key = pending[0]  # the same bolus asked again after an unknown outcome: ask with its key
        if pending is not None and key != pending[0]:
            self._resolve_unknown_bolus(pending[0])
        key = key if key is not None else (secrets.randbits(32) or 1)
        try:
            bolus_id = self._call("bolus", lambda: self._bolus(kind, dose, duration_s, key))
        except BolusOutcomeUnknown:
            self._unknown_bolus = (key, request)
            raise
        except Exception:
            self._unknown_bolus = None  # refused, or confirmed not given: the outcome is known
            raise
        self._unknown_bolus = None
        return bolus_id

    def _resolve_unknown_bolus(self, key: int) -> None:
        """Before another bolus, find out what became of one whose outcome is unknown."""
        try:
            state, bolus_id = self._call("bolus query", lambda: self._bolus_state(key))
        except LinkError as exc:
            raise BolusOutcomeUnknown(
                f"the outcome of the previous bolus (key {key:#010x}) is still unknown ({exc}); find out "
                "first (the same bolus() call again asks the pump) before giving another", key) from exc
        log.warning("the previous bolus (key %#010x) was %s", key,
                    f"given (bolus id {bolus_id})" if state else "not given")
        self._unknown_bolus = None

    def set_clock(self, when: dt.datetime | None = None) -> None:
        """Set the pump clock to ``when`` (aware), by default the programmer's UTC now."""
        self._writable("setting the clock")
        try:
            clock = None if when is None else safety.check_clock(datetime_to_clock(when))
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            if isinstance(exc, InvalidValue):
                raise
            raise InvalidValue(f"set_clock needs an aware datetime: {exc}") from exc
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
        """``fn()`` (a backend hook) under :attr:`retry`: called again only after a
        :class:`TransientLinkError`, which a backend raises only when nothing was carried out or
        carrying it out again is harmless (a dropped log snapshot; a bolus, whose idempotency key
        the pump gives at most once).  Any other error, a write that got no answer included (a
        plain :class:`LinkError` after the link's own same-frame retries), propagates at once:
        a write is never sent again from here.  When every attempt failed transiently: one
        :class:`LinkError` saying how many."""
        if self._closed:
            raise LinkError("the session is closed")
        policy = self.retry

        def failed(attempt: int, exc: BaseException) -> None:
            log.warning("%s: attempt %d of %d failed: %s", what, attempt, policy.attempts, exc)

        try:
            return policy.call(fn, retry_on=TransientLinkError, on_failure=failed)
        except TransientLinkError as exc:
            last = exc
        raise LinkError(f"{what} failed after {policy.attempts} attempts: {last}")

    # ----- the narrow hooks a backend implements ------------------------------------------
    @abstractmethod
    def _interrogate(self) -> Status: ...

    @abstractmethod
    def _read_log(self) -> LogImage: ...

    def _program(self, rx: Prescription, override: bool, **pump_options: Any) -> None:
        raise ReadOnlyPump("this backend cannot program a pump")

    def _refill(self, volume_ml: float, concentration_mcg_ml: float, **opts: Any) -> RefillResult:
        raise ReadOnlyPump("this backend cannot refill a pump")

    def _bolus(self, kind: str, dose_mcg: float, duration_s: int, key: int) -> int:
        raise ReadOnlyPump("this backend cannot give a bolus")

    def _bolus_state(self, key: int) -> tuple[int, int]:
        """``(state, bolus id)`` of the bolus asked for under ``key``: 0 not given, 1 running,
        2 ended (see :meth:`itb_device.sim.pump.SimulatedPump.bolus_by_key`)."""
        raise ReadOnlyPump("this backend cannot give a bolus")

    def _set_clock(self, clock: int | None) -> None:
        raise ReadOnlyPump("this backend cannot set the clock")

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the link (optional)."""
