"""What a detector reports: a :class:`Finding` with its time span, drug effect and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

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

# The closed vocabularies of FindingDetails that code compares against.
StallCause = Literal["procedure", "spontaneous"]
"""motor_stall / stall_ongoing ``cause``: in or near a procedure window, or with none to explain it."""
UnloggedRecovery = Literal["rotor_turning_no_record", "record_but_rotor_stalled"]
"""stall_recovery_unlogged ``type``: the rotor turns with no recovery record, or a recovery is
recorded while the rotor stays still (graded as a stall)."""
StopHow = Literal["programmed", "delivery rows", "commanded nothing", "eos", "status"]
"""pump_stopped ``how``: a programmed stop, a ``stopped`` mode in the rows, rows that commanded
nothing with no stop record, the stop at battery end of service, or only the status snapshot
saying the pump is stopped now."""
DetailSource = Literal["rotor", "commanded", "status"]
"""``source``: over_delivery seen in the rotor count or in what was commanded; alarm_active
from the status snapshot."""


class GapSpan(TypedDict):
    """One span of a history_gap (``FindingDetails.spans``): Unix seconds (None: unknown) and
    the reasons (``page_gap``, ``truncated``, ``clock_uncertain``, ``damaged_pages`` ...)."""

    start_s: int | None
    end_s: int | None
    reasons: list[str]
    records: NotRequired[int]  # records left out because their time cannot be placed


@dataclass(frozen=True, kw_only=True, repr=False)
class FindingDetails:
    """What a detector found beyond the common fields of :class:`Finding`: one typed field per
    key any detector sets, grouped by the finding kinds that set them (None: not set).  The
    readers (risk grading, the check, the delivery state) use these attributes, so a misspelt
    name is an error (``TypeError`` when constructed, and for the type checker) instead of a
    silently missing key.

    :meth:`to_dict` gives the keys the detector set, in the order it passed them, with their
    values (some are set to None on purpose, e.g. ``procedure`` of a spontaneous stall): the
    JSON ``details`` of :meth:`Finding.to_dict`.  Equality compares the values only.  Build it
    with its constructor (``dataclasses.replace`` would mark every name as set).
    """

    # motor_stall, stall_ongoing (procedure also over_delivery)
    cause: StallCause | None = None  #: procedure or spontaneous
    procedure: str | None = None  #: kind of the procedure it happened in or after (mri, diathermy)
    recovery_latency_h: float | None = None  #: hours from the procedure's end to the recovery
    notes: list[str] | None = None  #: what the sources say about it, in words
    restarted_by_interrogation: bool | None = None  #: delivery resumed only at this interrogation
    logged: bool | None = None  #: a motor-stall record exists (else seen in the rows or status only)
    # long_stall, pump_stopped
    duration_h: float | None = None  #: how long it lasted (to the interrogation if ongoing)
    # stall_recovery_unlogged
    type: UnloggedRecovery | None = None  #: which way the record and the rotor disagree
    # intermittent_stalls
    count: int | None = None  #: stalls in the cluster
    # pump_stopped
    how: StopHow | None = None  #: how the stop is known
    # battery_eri
    projected_eos_utc: str | None = None  #: projected end of service, as the clock writes it
    projected_eos_s: int | None = None  #: projected end of service (Unix seconds)
    # refill_under_delivery, refill_over_infusion
    expected_ml: float | None = None  #: residual the pump expected at the refill
    measured_ml: float | None = None  #: residual withdrawn and measured at the refill
    difference_ml: float | None = None  #: measured minus expected
    limit_ml: float | None = None  #: the allowed difference
    used_ml: float | None = None  #: volume the pump counted since the previous refill (None: no previous)
    actual_over_expected: float | None = None  #: drug gone / drug the pump counted
    drug_missing: bool | None = None  #: refill_over_infusion: the drug never reached the reservoir
    may_have_run_dry: bool | None = None  #: refill_over_infusion: the reservoir probably ran dry unalarmed
    # reservoir_low_before_refill
    days_to_safe_residual: float | None = None  #: days until the worst case is below the safe residual
    worst_case_residual_ml: float | None = None  #: the estimate less the labeled accuracy
    # over_delivery (source, ratio, procedure), rotor_shortfall (ratio), alarm_active (alarm, source)
    source: DetailSource | None = None  #: where it is seen
    ratio: float | None = None  #: delivered over reference (rotor/commanded, commanded/prescribed)
    # restart_full_dose, titration_violation, dose_decrease
    stop_h: float | None = None  #: restart_full_dose: hours stopped before the restart
    previous_dose_mcg: float | None = None  #: daily dose before the change (None: no earlier program)
    new_dose_mcg: float | None = None  #: daily dose programmed
    decrease_fraction: float | None = None  #: dose_decrease: 1 - new / previous
    above_max: bool | None = None  #: the new dose is above the upper limit
    max_dose_mcg: float | None = None  #: the upper limit (mcg/day)
    unit_error: bool | None = None  #: titration_violation: a tenfold step (a unit slip)
    override: bool | None = None  #: the programmer's check was overridden
    previous_inferred: bool | None = None  #: dose_decrease: the previous dose is inferred from the rows
    in_hospital: bool | None = None  #: titration_violation: in hospital after the implant
    # concentration_mismatch (a programmed concentration; a refill with no bridge bolus)
    entered_mcg_ml: float | None = None  #: concentration programmed
    reservoir_mcg_ml: float | None = None  #: concentration in the reservoir
    factor: float | None = None  #: reservoir / entered: times the prescribed dose delivered
    old_mcg_ml: float | None = None  #: concentration before the refill
    new_mcg_ml: float | None = None  #: concentration refilled
    bridge_bolus: bool | None = None  #: a bridge bolus was given
    # unexpected_bolus
    bolus_kind: str | None = None  #: clinician, priming, bridge, patient ...
    bolus_id: int | None = None  #: the bolus's id in the log
    # alarm_active
    alarm: str | None = None  #: the status alarm (motor_stall, empty_reservoir, eos ...)
    # history_gap
    spans: list[GapSpan] | None = None  #: each missing or untrusted span

    # the names the constructor was given, in their order (set by __new__; not an argument)
    _given: tuple[str, ...] = field(init=False, default=(), compare=False)

    def __new__(cls, **given: object) -> FindingDetails:
        self = super().__new__(cls)
        object.__setattr__(self, "_given", tuple(given))  # the names set, in their order
        return self

    def to_dict(self) -> dict[str, Any]:
        """The keys the detector set, in its order, with their values."""
        return {name: getattr(self, name) for name in self._given}

    def __repr__(self) -> str:
        return f"FindingDetails({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


@dataclass(frozen=True)
class Finding:
    """One thing the log shows (or fails to show) about delivery.

    Times are Unix seconds internally (``start_s``/``end_s``); ``start``/``end`` give aware
    UTC Timestamps.  ``end_s`` is None when the finding is ongoing at interrogation or its end
    is unknown.  ``missed_mcg``/``excess_mcg`` are estimates (None when not estimable) and
    ``daily_dose_mcg`` the prescribed daily dose they are measured against.  ``evidence``
    holds the byte offsets of the log records that show it.  ``direction`` says which harm
    it points to (withdrawal: less drug; overdose: more drug).  ``details``: what is
    particular to its kind (:class:`FindingDetails`).
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
    details: FindingDetails = field(default_factory=FindingDetails)

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if not isinstance(self.details, FindingDetails):
            raise TypeError(f"details must be FindingDetails, not {type(self.details).__name__}")

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
            "details": self.details.to_dict(),
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
