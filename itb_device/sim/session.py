"""A programmer session on a :class:`~itb_device.sim.pump.SimulatedPump`: the programmer a
scenario drives (:mod:`itb_device.sim.scenario`) and the base of the ``sim://`` backend
(:class:`itb_device.sim_backend.SimProgrammer`, which opens one from a URL).

The dependency runs one way: ``sim_backend`` -> ``sim.scenario`` -> ``sim.session``.
"""

from __future__ import annotations

from typing import Any

from parsers import LogImage, Status

from ..prescription import Prescription
from ..programmer import PumpProgrammer, RefillResult
from ..safety import MAX_PUMP_CLOCK, number
from .pump import SimulatedPump


class SimSession(PumpProgrammer):
    """A telemetry session on a :class:`SimulatedPump` (opened now, ended by ``close``).

    The pump answers at once, in-process: there is no link, so nothing here waits or
    retries (``timeout`` is only reported; :meth:`PumpProgrammer._call` still retries a
    :class:`~itb_device.errors.TransientLinkError` a subclass raises)."""

    def __init__(self, pump: SimulatedPump, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pump = pump
        if not pump.in_telemetry:
            pump.telemetry_start()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (the session stays open)."""
        self.pump.advance_to(self.pump.now + int(number(seconds, "seconds", high=MAX_PUMP_CLOCK)))

    def _interrogate(self) -> Status:
        return self.pump.status()

    def _read_log(self) -> LogImage:
        return self.pump.log_image()

    def _program(self, rx: Prescription, override: bool, **opts: Any) -> None:
        self.pump.program(rx, override=override, **opts)

    def _refill(self, volume_ml: float, concentration_mcg_ml: float, **opts: Any) -> RefillResult:
        expected, measured = self.pump.refill(volume_ml, concentration_mcg_ml, **opts)
        return RefillResult(expected, measured, volume_ml, concentration_mcg_ml)

    def _bolus(self, kind: str, dose_mcg: float, duration_s: int, key: int) -> int:
        return self.pump.start_bolus(kind, dose_mcg, duration_s, key=key)

    def _bolus_state(self, key: int) -> tuple[int, int]:
        return self.pump.bolus_by_key(key)

    def _set_clock(self, clock: int | None) -> None:
        self.pump.set_clock(clock)

    def _close(self) -> None:
        self.pump.telemetry_end()
