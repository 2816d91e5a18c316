"""``sim://``: a programmer session on an in-process simulated pump.

``sim://?scenario=FILE.toml&seed=N`` runs the scenario up to its last interrogation and
opens the session there; ``sim://?model=40&seed=3`` starts a fresh pump with a full
reservoir and no program.  :meth:`SimProgrammer.advance` lets simulated time pass.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parsers import LogImage, Status
from parsers.model import datetime_to_clock

from .errors import InvalidValue
from .prescription import Prescription
from .programmer import PumpProgrammer, RefillResult
from .safety import MAX_CONCENTRATION, MAX_PUMP_CLOCK, check_clock, number
from .sim.pump import PumpConfig, SimulatedPump


class SimProgrammer(PumpProgrammer):
    """A telemetry session on a :class:`SimulatedPump` (opened now, ended by ``close``)."""

    def __init__(self, pump: SimulatedPump, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pump = pump
        if not pump.in_telemetry:
            pump.telemetry_start()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SimProgrammer:
        """Build the pump the URL describes (see the module docstring)."""
        q = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        unknown = set(q) - {"scenario", "seed", "model", "start", "concentration"}
        if unknown:
            raise InvalidValue(f"unknown sim:// options: {', '.join(sorted(unknown))}")
        try:
            seed = int(q["seed"]) if "seed" in q else None
        except ValueError:
            raise InvalidValue(f"sim:// seed must be a whole number, not {q['seed']!r}") from None
        if "scenario" in q:
            from .sim.scenario import load_scenario, run_scenario

            result = run_scenario(load_scenario(q["scenario"]), seed=seed, final_session=False)
            return cls(result.pump, **kwargs)
        if q.get("model", "20") not in ("20", "40"):
            raise InvalidValue("model must be 20 or 40 (mL)")
        model = int(q.get("model", 20))
        try:
            start = (
                dt.datetime.fromisoformat(q["start"].replace(" ", "+"))
                if "start" in q
                else dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            )
            start_clock = check_clock(datetime_to_clock(start))
            conc = float(q.get("concentration", 2000))
        except InvalidValue:
            raise
        except ValueError as exc:
            raise InvalidValue(f"sim:// start must be an ISO time with its offset and concentration a "
                               f"number: {exc}") from None
        if not (math.isfinite(conc) and 0 < conc <= MAX_CONCENTRATION):
            raise InvalidValue(f"sim:// concentration must be a positive number of mcg/mL, not {conc:g}")
        pump = SimulatedPump(
            PumpConfig(model_ml=model),
            start_clock,
            seed=seed if seed is not None else 0,
            reservoir_ml=float(model),
            concentration_mcg_ml=conc,
        )
        return cls(pump, **kwargs)

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
