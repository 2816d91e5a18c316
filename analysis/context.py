"""What every detector gets: the log, its reconstruction, the rules, the procedures and the clock
that writes times for people."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import pandas as pd

from clinical.rules import Rules
from parsers import InterrogationLog

from .delivery_state import RowState, StatusNow, row_state, status_now
from .episodes import Episodes
from .reconstruct import Reconstruction
from .timeutil import HOUR, Clock, ts_seconds


@dataclass(frozen=True)
class Procedure:
    """An MRI or a surgery with diathermy: its kind and UTC start and end (Unix seconds)."""

    kind: Literal["mri", "diathermy"] | str
    start_s: int
    end_s: int

    @classmethod
    def coerce(cls, p: Procedure | Mapping[str, Any]) -> Procedure:
        """A Procedure from itself or a dict with ``kind`` and ``start_utc``/``end_utc``
        (or ``start``/``end``), as in the truth files."""
        if isinstance(p, Procedure):
            return p
        start = p.get("start_utc", p.get("start"))
        end = p.get("end_utc", p.get("end", start))
        if start is None:
            raise ValueError(f"procedure {p!r} has no start")
        return cls(str(p.get("kind", "mri")).lower(), ts_seconds(start), ts_seconds(end))

    @property
    def start(self) -> pd.Timestamp:
        """Start as aware UTC Timestamp."""
        return pd.Timestamp(self.start_s, unit="s", tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        """End as aware UTC Timestamp."""
        return pd.Timestamp(self.end_s, unit="s", tz="UTC")


def coerce_procedures(items: Iterable[Procedure | Mapping[str, Any]] | None) -> tuple[Procedure, ...]:
    """Procedures from any mix of Procedure objects and dicts."""
    return tuple(Procedure.coerce(p) for p in (items or ()))


@dataclass
class Context:
    """Inputs shared by all detectors; ``clock`` writes the times in their explanations."""

    log: InterrogationLog
    rec: Reconstruction
    rules: Rules
    procedures: tuple[Procedure, ...]
    clock: Clock = field(default_factory=Clock)

    @property
    def ep(self) -> Episodes:
        """The paired events."""
        return self.rec.episodes

    @property
    def rows(self) -> pd.DataFrame:
        """Delivery-history rows with concentrations, mcg and prescribed volumes."""
        return self.rec.rows

    @cached_property
    def state(self) -> RowState:
        """What each delivery row says about delivery, on its own (analysis/delivery_state.py)."""
        return row_state(self.rows, self.rules)

    @cached_property
    def status(self) -> StatusNow:
        """What the pump reports about itself at interrogation."""
        return status_now(self.log, self.rules)

    @property
    def now_s(self) -> int:
        """Interrogation time (Unix seconds)."""
        return self.rec.now_s

    def recent(self, end_s: int | None) -> bool:
        """True if something ending at ``end_s`` (None = ongoing) is within the recent window."""
        if end_s is None:
            return True
        return end_s >= self.now_s - self.rules.number("risk", "recent_days") * 86_400

    @property
    def interval_s(self) -> float:
        """Typical delivery-history interval (s)."""
        rows = self.rows
        return float(rows["interval_s"].median()) if len(rows) else float(HOUR)
