"""Encode and decode the file header and the status snapshot (both small, both via construct)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import construct as cs

from . import format as fmt
from .crc import crc32c
from .model import UNIX_DATE_EPOCH, FlexStep, Header, Status, mcg_to_ng, ml_to_nl
from .records import (
    MILLI_PER_UNIT,
    NG_PER_MCG,
    NL_PER_ML,
    Alarm,
    BatteryState,
    Mode,
    MotorState,
    enum_name,
    enum_value,
)

_KNOWN_ALARM_BITS = sum(1 << int(a) for a in Alarm)


def _lenient(struct: cs.Struct) -> cs.Struct:
    """The same layout with text fields read as raw bytes (for damaged text)."""
    subs = []
    for sc in struct.subcons:
        inner = sc.subcon
        if isinstance(inner, cs.StringEncoded):
            subs.append(sc.name / cs.Bytes(inner.sizeof()))
        else:
            subs.append(sc)
    return cs.Struct(*subs)


_LENIENT: dict[int, cs.Struct] = {}


def _parse(struct: cs.Struct, data: bytes) -> cs.Container:
    """Parse with the reference declaration; a text field damaged into non-ASCII bytes is
    decoded with replacement characters instead (its CRC then reports the damage)."""
    try:
        return struct.parse(data)
    except cs.StringError:
        lenient = _LENIENT.setdefault(id(struct), _lenient(struct))
        c = lenient.parse(data)
        for sc in struct.subcons:
            if isinstance(sc.subcon, cs.StringEncoded):
                c[sc.name] = c[sc.name].split(b"\0", 1)[0].decode("ascii", "replace")
        return c


def check_text(name: str, value: str, size: int) -> None:
    """Refuse a text field the format cannot hold faithfully: non-ASCII, longer than its
    ``size`` bytes, or holding a control character (docs/log-format.md 1: text fields are
    printable ASCII, so a serial number can never carry a line break or an escape sequence
    into a report or a terminal)."""
    if not value.isascii():
        raise ValueError(f"{name} {value!r}: text fields are printable ASCII")
    bad = next((i for i, ch in enumerate(value) if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if bad is not None:
        raise ValueError(f"{name} {value!r}: control character {value[bad]!r} at position {bad}; "
                         "text fields are printable ASCII")
    if len(value) > size:
        raise ValueError(f"{name} {value!r}: longer than its {size} bytes")


def encode_header(h: Header, page_count: int) -> bytes:
    """The 128 header bytes for ``h`` with ``page_count`` pages stored, CRC included."""
    for name, value, size in (("serial", h.serial, 16), ("firmware", h.firmware, 12),
                              ("programmer_id", h.programmer_id, 16)):
        check_text(name, value, size)
    data = fmt.Header.build(
        dict(
            version_major=h.version_major,
            version_minor=h.version_minor,
            header_size=fmt.HEADER_SIZE,
            status_size=fmt.STATUS_SIZE,
            page_size=h.page_size,
            record_size=32,
            model_ml=h.model_ml,
            flags=h.flags,
            ring_slots=h.ring_slots,
            page_count=page_count,
            serial=h.serial,
            firmware=h.firmware,
            implant_days=(h.implant_date - UNIX_DATE_EPOCH).days,
            pump_clock=h.pump_clock,
            programmer_clock=h.programmer_clock,
            programmer_id=h.programmer_id,
            reserved=bytes(40),
            crc=0,
        )
    )
    return data[:-4] + crc32c(data[:-4]).to_bytes(4, "little")


def decode_header(data: bytes, with_layout: bool = False) -> Any:
    """Parse 128 header bytes; returns the header and whether its CRC matched (and, with
    ``with_layout``, the raw construct container whose sizes the reader checks).

    Raises ``construct.ConstError`` for a wrong magic (the caller turns it into a message).
    An implant date no calendar can hold (a damaged header) reads as 1970-01-01.
    """
    c = _parse(fmt.Header, data)
    ok = crc32c(data[: fmt.HEADER_SIZE - 4]) == c.crc
    try:
        implant = UNIX_DATE_EPOCH + dt.timedelta(days=c.implant_days)
    except OverflowError:
        implant, ok = UNIX_DATE_EPOCH, False
    header = Header(
        model_ml=c.model_ml,
        serial=c.serial,
        firmware=c.firmware,
        implant_date=implant,
        pump_clock=c.pump_clock,
        programmer_clock=c.programmer_clock,
        programmer_id=c.programmer_id,
        page_size=c.page_size,
        ring_slots=c.ring_slots,
        page_count=c.page_count,
        version_major=c.version_major,
        version_minor=c.version_minor,
        flags=c.flags,
    )
    return (header, ok, c) if with_layout else (header, ok)


def encode_status(s: Status, ring: tuple[int, int, int] | None = None) -> bytes:
    """The 256 status bytes for ``s``, CRC included.

    The ring position (docs/log-format.md 5.4) is ``s``'s own when it records one, else
    ``ring`` (``(last_seq, pages, last_count)``, what the writer takes from the pages it
    writes); with neither, the bytes stay zero, as in a 1.0 file."""
    check_text("drug_name", s.drug_name, 16)
    if len(s.flex_steps) > fmt.MAX_FLEX_STEPS:
        raise ValueError(f"a flex program has at most {fmt.MAX_FLEX_STEPS} steps")
    steps = [
        dict(
            start_min=st.start_min,
            reserved=st.reserved,
            daily_dose_ng=mcg_to_ng(st.daily_dose_mcg_day),
            rate_nl_day=ml_to_nl(st.rate_ml_day),
        )
        for st in s.flex_steps
    ]
    steps += [dict(start_min=0, reserved=0, daily_dose_ng=0, rate_nl_day=0)] * (
        fmt.MAX_FLEX_STEPS - len(steps)
    )
    alarms = s.alarm_bits_unknown
    for name in s.active_alarms:
        alarms |= 1 << enum_value(Alarm, name)
    if s.ring_recorded:
        ring = (int(s.ring_last_seq), int(s.ring_pages), int(s.ring_last_count or 0))  # type: ignore[arg-type]
    last_seq, pages, last_count = ring if ring is not None else (0, 0, 0)
    data = fmt.Status.build(
        dict(
            reservoir_nl=ml_to_nl(s.reservoir_ml),
            low_reservoir_alarm_nl=ml_to_nl(s.low_reservoir_alarm_ml),
            drug_name=s.drug_name,
            concentration_milli=round(s.concentration_mcg_ml * MILLI_PER_UNIT),
            mode=enum_value(Mode, s.mode),
            flex_step_count=len(s.flex_steps),
            motor_state=enum_value(MotorState, s.motor_state),
            battery_state=enum_value(BatteryState, s.battery_state),
            daily_dose_ng=mcg_to_ng(s.daily_dose_mcg_day),
            rate_nl_day=ml_to_nl(s.rate_ml_day),
            ptm_enabled=int(s.ptm_enabled),
            ptm_max_per_day=s.ptm_max_per_day,
            ptm_lockout_min=s.ptm_lockout_min,
            ptm_dose_ng=mcg_to_ng(s.ptm_dose_mcg),
            active_alarms=alarms,
            last_refill_clock=s.last_refill_clock,
            eri_clock=s.eri_clock,
            flex_steps=steps,
            ring_last_seq=last_seq,
            ring_pages=pages,
            ring_last_count=last_count,
            ring_flags=fmt.RING_RECORDED if ring is not None else 0,
            reserved=bytes(25),
            crc=0,
        )
    )
    return data[:-4] + crc32c(data[:-4]).to_bytes(4, "little")


def decode_status(data: bytes) -> tuple[Status, bool]:
    """Parse 256 status bytes; returns the status and whether its CRC matched."""
    c = _parse(fmt.Status, data)
    ok = crc32c(data[: fmt.STATUS_SIZE - 4]) == c.crc
    n_steps = min(c.flex_step_count, fmt.MAX_FLEX_STEPS)
    steps = tuple(
        FlexStep(st.start_min, st.daily_dose_ng / NG_PER_MCG, st.rate_nl_day / NL_PER_ML, st.reserved)
        for st in c.flex_steps[:n_steps]
    )
    alarms = tuple(a.name.lower() for a in Alarm if c.active_alarms & (1 << int(a)))
    status = Status(
        reservoir_ml=c.reservoir_nl / NL_PER_ML,
        low_reservoir_alarm_ml=c.low_reservoir_alarm_nl / NL_PER_ML,
        drug_name=c.drug_name,
        concentration_mcg_ml=c.concentration_milli / MILLI_PER_UNIT,
        mode=enum_name(Mode, c.mode),
        daily_dose_mcg_day=c.daily_dose_ng / NG_PER_MCG,
        rate_ml_day=c.rate_nl_day / NL_PER_ML,
        flex_steps=steps,
        ptm_enabled=bool(c.ptm_enabled),
        ptm_dose_mcg=c.ptm_dose_ng / NG_PER_MCG,
        ptm_lockout_min=c.ptm_lockout_min,
        ptm_max_per_day=c.ptm_max_per_day,
        active_alarms=alarms,
        battery_state=enum_name(BatteryState, c.battery_state),
        motor_state=enum_name(MotorState, c.motor_state),
        last_refill_clock=c.last_refill_clock,
        eri_clock=c.eri_clock,
        alarm_bits_unknown=c.active_alarms & ~_KNOWN_ALARM_BITS,
    )
    if c.ring_flags & fmt.RING_RECORDED:
        status = dataclasses.replace(
            status, ring_last_seq=c.ring_last_seq, ring_pages=c.ring_pages, ring_last_count=c.ring_last_count
        )
    return status, ok
