"""The one table of log record types: code, name and payload fields.

Both decoders (construct and numpy) and the writer are built from this table, so a record
type is declared exactly once (the decocare habit).  Each field is stored on disk as a
little-endian integer in a fixed unit and exposed in a clinical unit: ``value = raw / per_unit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

RECORD_SIZE = 32
RECORD_HEADER_SIZE = 8
PAYLOAD_SIZE = RECORD_SIZE - RECORD_HEADER_SIZE

# On-disk units per unit of the column name: value = raw / per_unit (correctly rounded).
NL_PER_ML = 1_000_000  # volumes stored in nanolitres
NG_PER_MCG = 1_000  # doses stored in nanograms (0.001 mcg)
MILLI_PER_UNIT = 1_000  # concentrations stored in 0.001 mcg/mL


class Mode(IntEnum):
    """Infusion mode of the pump."""

    STOPPED = 0
    SIMPLE_CONTINUOUS = 1
    FLEX = 2
    MINIMUM_RATE = 3


class BolusKind(IntEnum):
    """Who or what asked for a bolus."""

    CLINICIAN = 1
    PRIMING = 2
    BRIDGE = 3
    PATIENT = 4


class Alarm(IntEnum):
    """Pump alarm codes; ``active_alarms`` in the status is a bit mask of ``1 << code``."""

    LOW_RESERVOIR = 1
    EMPTY_RESERVOIR = 2
    ERI = 3
    EOS = 4
    MOTOR_STALL = 5
    MEMORY_ERROR = 6
    LOW_BATTERY_RESET = 7


class PtmReason(IntEnum):
    """Outcome of a patient (myPTM) bolus request."""

    GRANTED = 0
    LOCKOUT = 1
    DAILY_MAXIMUM = 2
    DISABLED = 3
    BOLUS_IN_PROGRESS = 4
    NOT_AVAILABLE = 5  # pump stopped, or too little drug for the dose


class ResetReason(IntEnum):
    """Why the pump reset."""

    UNKNOWN = 0
    LOW_BATTERY = 1
    MEMORY_ERROR = 2
    WATCHDOG = 3


class BatteryState(IntEnum):
    """Battery state in the status snapshot."""

    OK = 0
    ERI = 1
    EOS = 2


class MotorState(IntEnum):
    """Motor state in the status snapshot."""

    RUNNING = 0
    STALLED = 1


class OverrideReason(IntEnum):
    """Why the programmer's guideline checks were overridden (``override_note.override_reason``)."""

    NONE = 0  # not given: the pump refuses an override without a reason
    PHYSICIAN_ORDER = 1  # the treating physician ordered this program
    MONITORED_INPATIENT = 2  # in hospital, under observation (faster titration, guideline 4.1.3)
    SUPERVISED_RESTART = 3  # a restart after a stop, supervised
    CONCENTRATION_CHANGE = 4  # a change of drug concentration being set up
    BENCH_TEST = 5  # a pump on the bench or a simulation, not implanted
    OTHER = 6


class RecordCode(IntEnum):
    """Record type codes (``type`` in the record header)."""

    PRESCRIPTION = 0x01
    BOLUS_START = 0x02
    BOLUS_END = 0x03
    PTM_REQUEST = 0x04
    REFILL = 0x05
    ALARM_RAISED = 0x06
    ALARM_CLEARED = 0x07
    MOTOR_STALL = 0x08
    MOTOR_STALL_RECOVERY = 0x09
    CLOCK_SET = 0x0A
    PUMP_RESET = 0x0B
    TELEMETRY_START = 0x0C
    TELEMETRY_END = 0x0D
    DELIVERY = 0x10
    OVERRIDE_NOTE = 0x11  # 1.1: why and by whom the programmer's checks were overridden


def enum_name(enum: type[IntEnum], value: int) -> str:
    """Lower-case name of ``value`` in ``enum``, or ``unknown_<value>`` (kept, never dropped)."""
    try:
        return enum(value).name.lower()
    except ValueError:
        return f"unknown_{int(value)}"


def enum_value(enum: type[IntEnum], name: str) -> int:
    """Inverse of :func:`enum_name`."""
    if name.startswith("unknown_"):
        return int(name.removeprefix("unknown_"))
    return int(enum[name.upper()])


@dataclass(frozen=True)
class Field:
    """One payload field: its column name, on-disk integer type, units per column unit and optional enum."""

    name: str
    ctype: str  # one of u8, u16, u32 (little-endian, unsigned)
    per_unit: int = 1
    enum: type[IntEnum] | None = None
    unit: str = ""
    doc: str = ""

    @property
    def size(self) -> int:
        """Size on disk in bytes."""
        return {"u8": 1, "u16": 2, "u32": 4}[self.ctype]

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the on-disk integer (little-endian, unsigned)."""
        return np.dtype({"u8": "<u1", "u16": "<u2", "u32": "<u4"}[self.ctype])


@dataclass(frozen=True)
class RecordType:
    """A record type: its code, name, payload fields and what it means."""

    code: int
    name: str
    fields: tuple[Field, ...]
    doc: str

    @property
    def payload_used(self) -> int:
        """Bytes of the 24-byte payload that carry fields; the rest is zero."""
        return sum(f.size for f in self.fields)


def _vol(name: str, doc: str) -> Field:
    return Field(name, "u32", NL_PER_ML, unit="mL (stored in nL)", doc=doc)


def _pad(name: str, ctype: str) -> Field:
    return Field(name, ctype, doc="reserved, written as 0 and kept as read")


_MODE = Field("mode", "u8", enum=Mode, doc="infusion mode (Mode)")
_CONC = Field(
    "concentration_mcg_ml",
    "u32",
    MILLI_PER_UNIT,
    unit="mcg/mL (stored in 0.001 mcg/mL)",
    doc="drug concentration",
)
_DOSE = Field("dose_mcg", "u32", NG_PER_MCG, unit="mcg (stored in ng)", doc="dose")
_ALARM = Field("alarm", "u16", enum=Alarm, doc="alarm code (Alarm)")
_SESSION = Field("session_id", "u32", doc="telemetry session number")
_BOLUS_ID = Field("bolus_id", "u16", doc="ties a bolus start to its end")
_KIND = Field("kind", "u8", enum=BolusKind, doc="bolus kind (BolusKind)")

RECORD_TYPES: tuple[RecordType, ...] = (
    RecordType(
        RecordCode.PRESCRIPTION,
        "prescription",
        (
            _MODE,
            Field("step", "u8", doc="flex step index 0-12, 255 for a non-flex prescription"),
            Field("step_count", "u8", doc="number of flex steps in the program (0 if not flex)"),
            Field("override", "u8", doc="1 if the programmer's titration check was overridden"),
            Field(
                "daily_dose_mcg_day",
                "u32",
                NG_PER_MCG,
                unit="mcg/day (stored in ng/day)",
                doc="programmed daily dose (for a flex step: the step's rate as a daily dose)",
            ),
            Field(
                "rate_ml_day",
                "u32",
                NL_PER_ML,
                unit="mL/day (stored in nL/day)",
                doc="programmed flow rate",
            ),
            _CONC,
            Field(
                "step_start_min",
                "u16",
                unit="min after midnight",
                doc="start of the flex step in pump-clock minutes after midnight",
            ),
        ),
        "A prescription change, one record per flex step (step 0 first).",
    ),
    RecordType(
        RecordCode.BOLUS_START,
        "bolus_start",
        (
            _KIND,
            _pad("reserved", "u8"),
            _BOLUS_ID,
            _DOSE,
            _vol("volume_ml", "bolus volume"),
            Field("duration_s", "u32", unit="s", doc="programmed bolus duration"),
        ),
        "A bolus begins.",
    ),
    RecordType(
        RecordCode.BOLUS_END,
        "bolus_end",
        (
            _KIND,
            Field("completed", "u8", doc="1 completed, 0 stopped before completion"),
            _BOLUS_ID,
            Field("dose_mcg", "u32", NG_PER_MCG, unit="mcg (stored in ng)", doc="dose delivered"),
            _vol("volume_ml", "volume delivered"),
        ),
        "A bolus ends (completed or stopped).",
    ),
    RecordType(
        RecordCode.PTM_REQUEST,
        "ptm_request",
        (
            Field("granted", "u8", doc="1 granted, 0 denied"),
            Field("reason", "u8", enum=PtmReason, doc="outcome (PtmReason)"),
            Field("count_today", "u16", doc="patient boluses granted so far today"),
            _DOSE,
        ),
        "A patient (myPTM) bolus request, granted or denied.",
    ),
    RecordType(
        RecordCode.REFILL,
        "refill",
        (
            _vol("volume_added_ml", "volume injected into the reservoir"),
            _vol("expected_residual_ml", "residual the pump expected before the refill"),
            _vol("measured_residual_ml", "residual withdrawn and measured by the clinician"),
            _CONC,
            _vol("reservoir_ml", "reservoir volume entered after the refill"),
        ),
        "A reservoir refill.",
    ),
    RecordType(
        RecordCode.ALARM_RAISED,
        "alarm_raised",
        (
            _ALARM,
            _pad("reserved", "u16"),
            Field("value", "u32", doc="alarm-specific value (e.g. reservoir nL)"),
        ),
        "An alarm is raised.",
    ),
    RecordType(
        RecordCode.ALARM_CLEARED,
        "alarm_cleared",
        (_ALARM, _pad("reserved", "u16"), Field("value", "u32", doc="alarm-specific value")),
        "An alarm is cleared.",
    ),
    RecordType(RecordCode.MOTOR_STALL, "motor_stall", (), "The rotor failed to turn; delivery has stopped."),
    RecordType(
        RecordCode.MOTOR_STALL_RECOVERY,
        "motor_stall_recovery",
        (Field("stall_s", "u32", unit="s", doc="stall duration as the pump measured it"),),
        "The rotor turns again after a stall.",
    ),
    RecordType(
        RecordCode.CLOCK_SET,
        "clock_set",
        (
            Field("old_clock", "u32", unit="pump s", doc="pump clock before the change"),
            Field("new_clock", "u32", unit="pump s", doc="pump clock after (UTC from the programmer)"),
        ),
        "The programmer set the pump clock; the record is stamped with the new clock.",
    ),
    RecordType(
        RecordCode.PUMP_RESET,
        "pump_reset",
        (
            Field("reset_reason", "u8", enum=ResetReason, doc="reset cause (ResetReason)"),
            _pad("reserved", "u8"),
            _pad("reserved2", "u16"),
            Field("clock_before", "u32", unit="pump s", doc="pump clock just before the reset"),
        ),
        "The pump reset; its clock restarts from 0 (2000-01-01).",
    ),
    RecordType(
        RecordCode.TELEMETRY_START,
        "telemetry_start",
        (
            _SESSION,
            Field(
                "programmer_clock",
                "u32",
                unit="UTC s",
                doc="programmer's UTC clock at session start",
            ),
        ),
        "A programmer session starts (a clock sync point).",
    ),
    RecordType(RecordCode.TELEMETRY_END, "telemetry_end", (_SESSION,), "A programmer session ends."),
    RecordType(
        RecordCode.OVERRIDE_NOTE,
        "override_note",
        (
            Field(
                "override_reason",
                "u8",
                enum=OverrideReason,
                doc="why the programmer's checks were overridden (OverrideReason)",
            ),
            _pad("reserved", "u8"),
            _pad("reserved2", "u16"),
            Field("operator_id", "u32", doc="staff number of the clinician who gave the override"),
            _SESSION,
        ),
        "The programmer's checks were overridden for the prescription records that follow (same "
        "stamp): why, and who gave the override.",
    ),
    RecordType(
        RecordCode.DELIVERY,
        "delivery",
        (
            Field("interval_s", "u32", unit="s", doc="length of the interval that ends at the stamp"),
            _vol("commanded_ml", "volume the pump commanded in the interval"),
            _vol("rotor_ml", "volume confirmed by rotor revolutions"),
            Field("stalled_s", "u32", unit="s", doc="seconds the rotor was stalled"),
            _vol("reservoir_ml", "reservoir estimate at the end of the interval"),
            _MODE,
            _pad("flags", "u8"),
            _pad("reserved", "u16"),
        ),
        "Periodic delivery history for one interval.",
    ),
)

BY_CODE: dict[int, RecordType] = {int(t.code): t for t in RECORD_TYPES}
BY_NAME: dict[str, RecordType] = {t.name: t for t in RECORD_TYPES}
DELIVERY_CODE = int(RecordCode.DELIVERY)

for _t in RECORD_TYPES:
    assert _t.payload_used <= PAYLOAD_SIZE, _t.name


def event_field_names() -> list[str]:
    """Union of payload columns over the event (non-delivery) types, in table order."""
    seen: dict[str, Field] = {}
    for t in RECORD_TYPES:
        if t.code == DELIVERY_CODE:
            continue
        for f in t.fields:
            prev = seen.setdefault(f.name, f)
            assert (prev.per_unit, prev.enum) == (f.per_unit, f.enum), f"column {f.name} clashes"
    return list(seen)
