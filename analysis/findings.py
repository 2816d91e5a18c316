"""What a detector reports: a :class:`Finding` with its time span, drug effect and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from .timeutil import HOUR, stamp

# The finding kinds; the simulator's truth files use exactly these names.
FINDING_KINDS: tuple[str, ...] = (
    "motor_stall", "stall_ongoing", "stall_recovery_unlogged", "intermittent_stalls", "long_stall",
    "refill_under_delivery", "refill_over_infusion", "rotor_shortfall", "empty_reservoir",
    "reservoir_low_before_refill", "refill_overdue", "battery_eri", "battery_eos", "pump_stopped",
    "unexpected_bolus", "ptm_over_limit", "over_delivery", "titration_violation",
    "concentration_mismatch", "restart_full_dose", "history_gap", "dose_decrease", "alarm_active",
)

Severity = Literal["info", "warning", "critical"]
Direction = Literal["withdrawal", "overdose", "both", "unknown", "none"]


@dataclass(frozen=True)
class Finding:
    """One thing the log shows (or fails to show) about delivery.

    Times are Unix seconds internally (``start_s``/``end_s``); ``start``/``end`` give aware
    UTC Timestamps.  ``end_s`` is None when the finding is ongoing at interrogation or its end
    is unknown.  ``missed_mcg``/``excess_mcg`` are estimates (None when not estimable) and
    ``daily_dose_mcg`` the prescribed daily dose they are measured against.  ``evidence``
    holds the byte offsets of the log records that show it.  ``direction`` says which harm
    it points to (withdrawal: less drug; overdose: more drug).
    """

    kind: str
    severity: Severity
    start_s: int | None
    end_s: int | None
    explanation: str
    ongoing: bool = False
    evidence: tuple[int, ...] = ()
    missed_mcg: float | None = None
    excess_mcg: float | None = None
    daily_dose_mcg: float | None = None
    direction: Direction = "none"
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")

    @property
    def start(self) -> pd.Timestamp | None:
        """Start as an aware UTC Timestamp (None if unknown)."""
        return stamp(self.start_s)

    @property
    def end(self) -> pd.Timestamp | None:
        """End as an aware UTC Timestamp (None if ongoing or unknown)."""
        return stamp(self.end_s)

    def duration_h(self, now_s: int) -> float | None:
        """Hours from start to end (or to ``now_s`` if ongoing); None if the start is unknown."""
        if self.start_s is None:
            return None
        end = self.end_s if self.end_s is not None else now_s
        return max(0.0, (end - self.start_s) / HOUR)

    def _share(self, mcg: float | None) -> float | None:
        if mcg is None or not self.daily_dose_mcg:
            return None
        return mcg / self.daily_dose_mcg

    @property
    def missed_share(self) -> float | None:
        """Missed drug as a share of the daily dose (1.0 = one whole day's dose)."""
        return self._share(self.missed_mcg)

    @property
    def excess_share(self) -> float | None:
        """Excess drug as a share of the daily dose."""
        return self._share(self.excess_mcg)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict (ISO times)."""
        iso = lambda t: None if t is None else t.isoformat()  # noqa: E731
        return {
            "kind": self.kind, "severity": self.severity, "start_utc": iso(self.start),
            "end_utc": iso(self.end), "ongoing": self.ongoing, "direction": self.direction,
            "missed_mcg": self.missed_mcg, "excess_mcg": self.excess_mcg,
            "missed_share_of_daily_dose": self.missed_share,
            "excess_share_of_daily_dose": self.excess_share,
            "evidence_offsets": list(self.evidence), "explanation": self.explanation,
            "details": dict(self.details),
        }


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """Findings as a table, one row each, in time order."""
    cols = ["kind", "severity", "start_utc", "end_utc", "ongoing", "direction", "missed_mcg",
            "excess_mcg", "missed_share_of_daily_dose", "excess_share_of_daily_dose",
            "evidence_offsets", "explanation"]
    rows = [{k: v for k, v in f.to_dict().items() if k in cols} for f in findings]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("start_utc", "end_utc"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df
