"""Plain data classes for what a log holds: header, status, records, pages and problems.

Values are in clinical units (mL, mcg, mcg/day, mL/day, mcg/mL); the on-disk integers are
recovered exactly with ``round(value * per_unit)``.  Clocks are integer seconds since the ITB
epoch 2000-01-01T00:00:00 (the pump's own clock, or UTC for the programmer's).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from .records import NG_PER_MCG, NL_PER_ML

ITB_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ITB_EPOCH_UNIX_S = 946_684_800  # 2000-01-01T00:00:00Z as Unix seconds
UNIX_DATE_EPOCH = dt.date(1970, 1, 1)


def clock_to_datetime(seconds: int) -> dt.datetime:
    """Seconds since the ITB epoch as an aware UTC datetime."""
    return ITB_EPOCH + dt.timedelta(seconds=int(seconds))


def datetime_to_clock(when: dt.datetime) -> int:
    """An aware datetime as whole seconds since the ITB epoch (naive is refused)."""
    if when.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; give an aware datetime")
    return int((when - ITB_EPOCH).total_seconds())


@dataclass(frozen=True)
class Header:
    """File header: format version, pump identity, both clocks at interrogation, layout."""

    model_ml: int
    serial: str
    firmware: str
    implant_date: dt.date
    pump_clock: int
    programmer_clock: int
    programmer_id: str = ""
    page_size: int = 1024
    ring_slots: int = 256
    page_count: int = 0
    version_major: int = 1
    version_minor: int = 1  # 1.1: the status carries the ring position (docs/log-format.md 5.4)
    flags: int = 0

    @property
    def clock_drift_s(self) -> int:
        """Pump clock minus programmer UTC at interrogation (positive: pump is fast)."""
        return self.pump_clock - self.programmer_clock

    def pump_clock_to_unix(self, clock: int) -> int:
        """A pump-clock stamp (e.g. from the status snapshot) as Unix UTC seconds, corrected for
        the drift measured at this interrogation."""
        return int(clock - self.clock_drift_s + ITB_EPOCH_UNIX_S)

    @property
    def interrogated_at(self) -> dt.datetime:
        """When the interrogation happened, by the programmer's UTC clock."""
        return clock_to_datetime(self.programmer_clock)


@dataclass(frozen=True)
class FlexStep:
    """One step of a flex (time-of-day) program; it runs until the next step starts."""

    start_min: int
    daily_dose_mcg_day: float
    rate_ml_day: float
    reserved: int = 0


@dataclass(frozen=True)
class Status:
    """The pump's status snapshot at interrogation."""

    reservoir_ml: float
    low_reservoir_alarm_ml: float
    drug_name: str
    concentration_mcg_ml: float
    mode: str
    daily_dose_mcg_day: float
    rate_ml_day: float
    flex_steps: tuple[FlexStep, ...] = ()
    ptm_enabled: bool = False
    ptm_dose_mcg: float = 0.0
    ptm_lockout_min: int = 0
    ptm_max_per_day: int = 0
    active_alarms: tuple[str, ...] = ()
    battery_state: str = "ok"
    motor_state: str = "running"
    last_refill_clock: int = 0
    eri_clock: int = 0
    alarm_bits_unknown: int = 0  # alarm bits with no known name, kept for round trips
    # Where the pump's ring of log pages stands (format 1.1, docs/log-format.md 5.4): the
    # newest page's sequence number, how many pages the ring holds (0: none written yet) and
    # the records in the newest page.  None: not recorded (a 1.0 file), and for the writer
    # "take them from the pages written".  They describe the log memory, not the pump's
    # clinical state, so two snapshots that differ only here compare equal.
    ring_last_seq: int | None = field(default=None, compare=False)
    ring_pages: int | None = field(default=None, compare=False)
    ring_last_count: int | None = field(default=None, compare=False)

    @property
    def motor_stalled(self) -> bool:
        """True when the snapshot says the rotor is stalled."""
        return self.motor_state == "stalled"

    @property
    def ring_recorded(self) -> bool:
        """True when the snapshot says where the ring stands (format 1.1)."""
        return self.ring_last_seq is not None and self.ring_pages is not None

    @property
    def ring_first_seq(self) -> int | None:
        """Sequence number of the oldest page the ring holds (None: not recorded or empty)."""
        if not self.ring_recorded or not self.ring_pages:
            return None
        return int(self.ring_last_seq) - int(self.ring_pages) + 1  # type: ignore[arg-type]


@dataclass(frozen=True)
class Record:
    """One 32-byte log record: pump-clock stamp, type code, aux word and payload values.

    ``values`` maps field names of the record type to clinical-unit values (enums by name).
    An unknown type keeps its 24 payload bytes in ``raw_payload`` so it survives a round trip.
    """

    clock: int
    code: int
    values: dict[str, Any] = field(default_factory=dict)
    aux: int = 0
    raw_payload: bytes | None = None


@dataclass(frozen=True)
class Page:
    """One page of the ring: its sequence number, the ring slot it sits in, its records."""

    seq: int
    slot: int
    records: tuple[Record, ...]


@dataclass(frozen=True)
class LogImage:
    """Everything a log file holds, in the form the writer takes."""

    header: Header
    status: Status
    pages: tuple[Page, ...]


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """Damage or an inconsistency found while reading, with where it is in the file."""

    kind: str
    message: str
    offset: int | None = None
    page_seq: int | None = None
    severity: Severity = "error"
    path: str | None = None
    # What the problem covers, where known: page sequence numbers ``page_seq`` to
    # ``last_seq`` (e.g. the pages a gap loses) and ``length`` bytes from ``offset`` (e.g. a
    # damaged page).  Records there are lost or untrusted because of it.
    last_seq: int | None = None
    length: int | None = None

    def __str__(self) -> str:
        where = f"byte {self.offset}: " if self.offset is not None else ""
        return f"{self.path + ': ' if self.path else ''}{where}{self.message}"


def ml_to_nl(ml: float) -> int:
    """mL to integer nL, as stored."""
    return round(ml * NL_PER_ML)


def mcg_to_ng(mcg: float) -> int:
    """mcg to integer ng, as stored."""
    return round(mcg * NG_PER_MCG)
