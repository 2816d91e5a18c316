"""``sim://``: a programmer session on an in-process simulated pump.

``sim://?scenario=FILE.toml&seed=N`` runs the scenario up to its last interrogation and
opens the session there; ``sim://?model=40&seed=3`` starts a fresh pump with a full
reservoir and no program.  :meth:`SimProgrammer.advance` lets simulated time pass.

The session itself is :class:`itb_device.sim.session.SimSession` (the programmer a scenario
drives); this module only opens one from a URL, so it imports the scenario runner and never
the other way round.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parsers.model import datetime_to_clock

from .errors import InvalidValue
from .safety import MAX_CONCENTRATION, check_clock
from .sim.pump import PumpConfig, SimulatedPump
from .sim.scenario import load_scenario, run_scenario
from .sim.session import SimSession


class SimProgrammer(SimSession):
    """A telemetry session on a :class:`SimulatedPump` (opened now, ended by ``close``), as
    ``sim://`` URLs open it (:meth:`from_url`)."""

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
