"""Builders and hypothesis strategies for ``.itblog`` interrogation logs, shared by the tests.

Import it as ``import logfactory as lf`` (pytest puts ``tests/`` on ``sys.path``).

* **Record builders**: :func:`rec` makes a record of a known type with *every* payload field
  filled in (absent ones 0 or the enum's first name), so it survives a write/read round trip
  unchanged; :func:`delivery`, :func:`telemetry_start`, :func:`telemetry_end`,
  :func:`prescription`, :func:`bolus` (start and end), :func:`refill`, :func:`clock_set`,
  :func:`pump_reset` and :func:`unknown` are shorthands; :func:`base_history` is a small
  realistic history.
* **Log builders**: :func:`make_header`, :func:`make_status`, :func:`make_image` (records laid
  out as the pump's ring with :func:`parsers.pack_ring`, ``page_count`` set),
  :func:`with_pages` (other pages, e.g. one in the wrong slot), :func:`stored_records` (what
  ``log.records()`` must return), :func:`write_image` (a real file, returns its bytes).
* **Byte-level damage**: :func:`page_offset`, :func:`record_offset`, :func:`flip_bit`,
  :func:`patch_header` / :func:`set_page_count` (header changed, CRC recomputed),
  :func:`split_pages`, :func:`write_bytes`; :data:`HEADER_FIELDS`, :data:`STATUS_FIELDS` and
  :data:`LAYOUT_FIELDS` say where each field lies.
* **Comparing decoders**: :func:`assert_same_decoding`.
* **Hypothesis strategies**: :func:`headers`, :func:`statuses`, :data:`flex_steps`,
  :func:`field_values`, :func:`known_records`, :func:`unknown_records`, :func:`any_records`,
  :func:`record_histories` and :func:`log_images` (a whole valid log, ring wrap included).

Clinical-unit values are always made the way the reader makes them: an on-disk integer
divided by the field's ``per_unit`` (``value = raw / per_unit``), so equality after a round
trip is exact.  Enum fields hold lower-case names (``"patient"``, or ``"unknown_9"`` for a
value the enum does not know), as the reader returns them.

Clocks in generated logs stay below :data:`CLOCK_MAX` (2^31 s, year 2068) so that UTC times
stay well inside pandas' nanosecond range; the codec-level strategies can use the full
``u32`` range (``sane_clocks=False``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import parsers
from parsers import format as fmt
from parsers.crc import crc32c
from parsers.model import FlexStep, Header, LogImage, Page, Record, Status
from parsers.records import (
    BY_CODE,
    DELIVERY_CODE,
    RECORD_SIZE,
    RECORD_TYPES,
    Alarm,
    BatteryState,
    Field,
    Mode,
    MotorState,
    RecordCode,
    enum_name,
)

# ---------------------------------------------------------------------------------------------
# Layout constants

#: Page sizes the tests use (the small allowed ones, so logs stay tiny and fast).
PAGE_SIZES = (256, 512, 1024)
#: Byte offset of the first page: header then status snapshot.
PAGES_START = fmt.HEADER_SIZE + fmt.STATUS_SIZE
#: Upper bound (exclusive) for generated clocks; see the module docstring.
CLOCK_MAX = 2**31
#: Header fields as (name, first byte, size): where a damaged byte lands.
HEADER_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("magic", 0, 8),
    ("version_major", 8, 1),
    ("version_minor", 9, 1),
    ("header_size", 10, 2),
    ("status_size", 12, 2),
    ("page_size", 14, 2),
    ("record_size", 16, 2),
    ("model_ml", 18, 1),
    ("flags", 19, 1),
    ("ring_slots", 20, 4),
    ("page_count", 24, 4),
    ("serial", 28, 16),
    ("firmware", 44, 12),
    ("implant_days", 56, 4),
    ("pump_clock", 60, 4),
    ("programmer_clock", 64, 4),
    ("programmer_id", 68, 16),
    ("reserved", 84, 40),
    ("crc", 124, 4),
)
#: Header fields that say where the pages are (or whether the file is a log at all).  Damage
#: to one of these makes the layout unreadable; damage anywhere else in the header must not.
LAYOUT_FIELDS = frozenset(
    {"magic", "version_major", "header_size", "status_size", "page_size", "record_size", "page_count"}
)
#: Status snapshot fields as (name, offset inside the status block, size).
STATUS_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("reservoir_nl", 0, 4),
    ("low_reservoir_alarm_nl", 4, 4),
    ("drug_name", 8, 16),
    ("concentration_milli", 24, 4),
    ("mode", 28, 1),
    ("flex_step_count", 29, 1),
    ("motor_state", 30, 1),
    ("battery_state", 31, 1),
    ("daily_dose_ng", 32, 4),
    ("rate_nl_day", 36, 4),
    ("ptm_enabled", 40, 1),
    ("ptm_max_per_day", 41, 1),
    ("ptm_lockout_min", 42, 2),
    ("ptm_dose_ng", 44, 4),
    ("active_alarms", 48, 4),
    ("last_refill_clock", 52, 4),
    ("eri_clock", 56, 4),
    ("flex_steps", 60, 156),
    ("reserved", 216, 36),
    ("crc", 252, 4),
)

_CTYPE_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFF_FFFF}
_CLOCK_FIELDS = frozenset({"old_clock", "new_clock", "clock_before", "programmer_clock"})
KNOWN_CODES: tuple[int, ...] = tuple(int(t.code) for t in RECORD_TYPES)


def records_per_page(page_size: int) -> int:
    """How many records one page holds (7, 15 and 31 for 256, 512 and 1024 bytes)."""
    return fmt.records_per_page(page_size)


def page_offset(index: int, page_size: int) -> int:
    """Byte offset of the ``index``-th stored page (file order, 0-based)."""
    return PAGES_START + index * page_size


def record_offset(page_index: int, record_index: int, page_size: int) -> int:
    """Byte offset of record ``record_index`` inside the ``page_index``-th stored page."""
    return page_offset(page_index, page_size) + fmt.PAGE_HEADER_SIZE + record_index * RECORD_SIZE


# ---------------------------------------------------------------------------------------------
# Builders


def _default(f: Field) -> Any:
    if f.enum is not None:
        return next(iter(f.enum)).name.lower()
    return 0.0 if f.per_unit != 1 else 0


def rec(code: int, clock: int, aux: int = 0, **values: Any) -> Record:
    """A record of a known type with *every* payload field present (absent ones 0 or the
    enum's first name), exactly as the reader gives it back.  Unknown field names are refused.
    """
    t = BY_CODE[int(code)]
    names = {f.name for f in t.fields}
    extra = set(values) - names
    if extra:
        raise TypeError(f"{t.name} has no field(s) {sorted(extra)}")
    full = {f.name: values.get(f.name, _default(f)) for f in t.fields}
    return Record(int(clock), int(code), full, aux)


def delivery(
    clock: int,
    *,
    interval_s: int = 900,
    commanded_nl: int = 1042,
    rotor_nl: int | None = None,
    stalled_s: int = 0,
    reservoir_nl: int = 15_000_000,
    mode: str = "simple_continuous",
) -> Record:
    """A DELIVERY record; volumes given in whole nL (stored units) so values are exact."""
    return rec(
        RecordCode.DELIVERY,
        clock,
        interval_s=interval_s,
        commanded_ml=commanded_nl / 1e6,
        rotor_ml=(commanded_nl if rotor_nl is None else rotor_nl) / 1e6,
        stalled_s=stalled_s,
        reservoir_ml=reservoir_nl / 1e6,
        mode=mode,
    )


def telemetry_start(clock: int, programmer_clock: int, session_id: int = 1) -> Record:
    """A TELEMETRY_START: a sync point (pump ``clock`` = programmer UTC ``programmer_clock``)."""
    return rec(RecordCode.TELEMETRY_START, clock, session_id=session_id, programmer_clock=programmer_clock)


def telemetry_end(clock: int, session_id: int = 1) -> Record:
    """A TELEMETRY_END closing session ``session_id``."""
    return rec(RecordCode.TELEMETRY_END, clock, session_id=session_id)


def prescription(
    clock: int,
    *,
    mode: str = "simple_continuous",
    step: int = 255,
    daily_dose_mcg_day: float = 150.0,
    rate_ml_day: float = 0.075,
    concentration_mcg_ml: float = 2000.0,
) -> Record:
    """A PRESCRIPTION record (default: 150 mcg/day simple continuous at 2000 mcg/mL)."""
    return rec(
        RecordCode.PRESCRIPTION,
        clock,
        mode=mode,
        step=step,
        daily_dose_mcg_day=daily_dose_mcg_day,
        rate_ml_day=rate_ml_day,
        concentration_mcg_ml=concentration_mcg_ml,
    )


def bolus(
    clock: int,
    *,
    kind: str = "clinician",
    bolus_id: int = 1,
    dose_mcg: float = 50.0,
    volume_ml: float = 0.025,
    duration_s: int = 60,
) -> list[Record]:
    """A BOLUS_START at ``clock`` and its completed BOLUS_END ``duration_s`` later."""
    same = dict(kind=kind, bolus_id=bolus_id, dose_mcg=dose_mcg, volume_ml=volume_ml)
    return [
        rec(RecordCode.BOLUS_START, clock, duration_s=duration_s, **same),
        rec(RecordCode.BOLUS_END, clock + duration_s, completed=1, **same),
    ]


def refill(
    clock: int,
    *,
    volume_added_ml: float = 18.0,
    expected_residual_ml: float = 2.0,
    measured_residual_ml: float = 1.9,
    concentration_mcg_ml: float = 2000.0,
    reservoir_ml: float = 19.9,
) -> Record:
    """A REFILL record (default: 18 mL added to a 1.9 mL residual)."""
    return rec(
        RecordCode.REFILL,
        clock,
        volume_added_ml=volume_added_ml,
        expected_residual_ml=expected_residual_ml,
        measured_residual_ml=measured_residual_ml,
        concentration_mcg_ml=concentration_mcg_ml,
        reservoir_ml=reservoir_ml,
    )


def clock_set(old_clock: int, new_clock: int) -> Record:
    """A CLOCK_SET, stamped with the new clock as the pump does."""
    return rec(RecordCode.CLOCK_SET, new_clock, old_clock=old_clock, new_clock=new_clock)


def pump_reset(clock: int, clock_before: int, reason: str = "watchdog") -> Record:
    """A PUMP_RESET stamped ``clock`` (the restarted clock) recording ``clock_before``."""
    return rec(RecordCode.PUMP_RESET, clock, reset_reason=reason, clock_before=clock_before)


def unknown(clock: int, code: int = 0x7E, payload: bytes = bytes(range(24)), aux: int = 0) -> Record:
    """A record of a type the table does not know; its 24 payload bytes are kept verbatim."""
    if code in BY_CODE:
        raise ValueError(f"{code:#06x} is a known record code")
    return Record(int(clock), int(code), {}, aux, bytes(payload))


def make_header(**overrides: Any) -> Header:
    """A plausible header (20 mL pump, pump clock 30 s fast); override any field."""
    base = dict(
        model_ml=20,
        serial="NGP123456H",
        firmware="8637-2.1",
        implant_date=dt.date(2019, 5, 14),
        pump_clock=760_000_030,
        programmer_clock=760_000_000,
        programmer_id="PRG-0042",
        page_size=256,
        ring_slots=16,
    )
    base.update(overrides)
    return Header(**base)


def make_status(**overrides: Any) -> Status:
    """A plausible status snapshot; override any field."""
    base = dict(
        reservoir_ml=12.5,
        low_reservoir_alarm_ml=2.0,
        drug_name="baclofen",
        concentration_mcg_ml=2000.0,
        mode="simple_continuous",
        daily_dose_mcg_day=150.0,
        rate_ml_day=0.075,
    )
    base.update(overrides)
    return Status(**base)


def make_image(
    records: Sequence[Record],
    *,
    page_size: int = 256,
    ring_slots: int = 16,
    first_seq: int = 0,
    header: Header | None = None,
    status: Status | None = None,
) -> LogImage:
    """Records laid out as the ring (``pack_ring``) with a header whose ``page_size``,
    ``ring_slots`` and ``page_count`` match the pages."""
    pages = parsers.pack_ring(list(records), page_size, ring_slots, first_seq)
    h = header or make_header()
    h = dataclasses.replace(h, page_size=page_size, ring_slots=ring_slots, page_count=len(pages))
    return LogImage(h, status or make_status(), pages)


def with_pages(image: LogImage, pages: Iterable[Page]) -> LogImage:
    """``image`` with other pages (``page_count`` follows), e.g. a page in the wrong slot."""
    pages = tuple(pages)
    return LogImage(dataclasses.replace(image.header, page_count=len(pages)), image.status, pages)


def stored_records(image: LogImage) -> list[Record]:
    """The image's records in storage (file) order: page by page as stored."""
    return [r for p in image.pages for r in p.records]


def write_image(path: str | Path, image: LogImage) -> bytes:
    """Write ``image`` with :func:`parsers.write_log` and return the file's bytes."""
    return parsers.write_log(path, image).read_bytes()


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write raw (possibly damaged) bytes to a real file and return its path."""
    p = Path(path)
    p.write_bytes(data)
    return p


def flip_bit(data: bytes, byte: int, bit: int = 0) -> bytes:
    """``data`` with one bit flipped."""
    b = bytearray(data)
    b[byte] ^= 1 << bit
    return bytes(b)


def patch_header(data: bytes, offset: int, value: bytes) -> bytes:
    """``data`` with header bytes at ``offset`` replaced and the header CRC recomputed (a
    well-formed header carrying an unusual value, e.g. a newer major version)."""
    b = bytearray(data)
    b[offset : offset + len(value)] = value
    b[fmt.HEADER_SIZE - 4 : fmt.HEADER_SIZE] = crc32c(bytes(b[: fmt.HEADER_SIZE - 4])).to_bytes(4, "little")
    return bytes(b)


def set_page_count(data: bytes, page_count: int) -> bytes:
    """``data`` with the header's page count changed and the header CRC recomputed, as a
    writer would produce for that many pages (to insert or drop pages consistently)."""
    return patch_header(data, 24, page_count.to_bytes(4, "little"))


def split_pages(data: bytes, page_size: int) -> tuple[bytes, list[bytes]]:
    """A file's bytes as (header + status, [page bytes, ...]); a partial tail page is dropped."""
    head, body = data[:PAGES_START], data[PAGES_START:]
    n = len(body) // page_size
    return head, [body[i * page_size : (i + 1) * page_size] for i in range(n)]


def base_history(
    start_clock: int = 759_000_000,
    n_delivery: int = 60,
    interval_s: int = 900,
    programmer_offset: int = -30,
) -> list[Record]:
    """A small, realistic history: a session start and prescription, delivery intervals, a
    bolus, a refill and an alarm; pump clock ``start_clock``, programmer UTC =
    pump clock + ``programmer_offset``."""
    t = start_clock
    out = [
        telemetry_start(t, t + programmer_offset, session_id=7),
        prescription(t + 5),
        telemetry_end(t + 60, session_id=7),
    ]
    for i in range(n_delivery):
        t += interval_s
        out.append(delivery(t, interval_s=interval_s, reservoir_nl=15_000_000 - 781 * i))
        if i == n_delivery // 3:
            out += bolus(t + 10)
        if i == n_delivery // 2:
            out.append(rec(RecordCode.ALARM_RAISED, t + 1, alarm="low_reservoir", value=2_000_000))
            out.append(refill(t + 100))
            out.append(rec(RecordCode.ALARM_CLEARED, t + 101, alarm="low_reservoir", value=0))
    return out


# ---------------------------------------------------------------------------------------------
# Comparing the two decoders


def assert_same_decoding(a: Any, b: Any) -> None:
    """Two :class:`parsers.InterrogationLog` of one file (e.g. fast and construct decoders)
    agree: header, status, CRC flags, problems, and every table, dtypes included
    (``pandas.testing.assert_frame_equal``)."""
    import pandas as pd

    assert (a.header, a.status, a.header_ok, a.status_ok) == (b.header, b.status, b.header_ok, b.status_ok)
    assert a.problems == b.problems
    for name in ("events", "delivery", "pages", "gaps"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)


# ---------------------------------------------------------------------------------------------
# Hypothesis strategies


def _raw(ctype: str, hi: int | None = None) -> st.SearchStrategy[int]:
    top = _CTYPE_MAX[ctype] if hi is None else min(hi, _CTYPE_MAX[ctype])
    return st.integers(0, top)


def field_values(f: Field, *, sane_clocks: bool = True) -> st.SearchStrategy[Any]:
    """Values of one payload field as the reader gives them back: enum names (mostly known,
    sometimes ``unknown_N``), ``raw / per_unit`` floats, or plain ints."""
    if f.enum is not None:
        known = st.sampled_from([int(m) for m in f.enum])
        raw = st.one_of(known, known, known, _raw(f.ctype))
        return raw.map(lambda v, e=f.enum: enum_name(e, v))
    hi = CLOCK_MAX - 1 if sane_clocks and f.name in _CLOCK_FIELDS else None
    raw = _raw(f.ctype, hi)
    if f.per_unit != 1:
        return raw.map(lambda v, k=f.per_unit: v / k)
    return raw


def clocks(sane: bool = True) -> st.SearchStrategy[int]:
    """A record or header clock (pump seconds since 2000-01-01)."""
    return st.integers(0, CLOCK_MAX - 1 if sane else 0xFFFF_FFFF)


@st.composite
def known_records(
    draw: st.DrawFn,
    codes: Sequence[int] = KNOWN_CODES,
    *,
    sane_clocks: bool = True,
    clock: st.SearchStrategy[int] | None = None,
) -> Record:
    """A record of a known type (one of ``codes``) with every field in its valid range."""
    code = draw(st.sampled_from(list(codes)))
    t = BY_CODE[code]
    values = {f.name: draw(field_values(f, sane_clocks=sane_clocks)) for f in t.fields}
    c = draw(clock if clock is not None else clocks(sane_clocks))
    return Record(c, code, values, draw(st.integers(0, 0xFFFF)))


@st.composite
def unknown_records(
    draw: st.DrawFn,
    *,
    sane_clocks: bool = True,
    clock: st.SearchStrategy[int] | None = None,
) -> Record:
    """A record whose type code the table does not know, with 24 raw payload bytes."""
    code = draw(st.integers(0, 0xFFFF).filter(lambda c: c not in BY_CODE))
    c = draw(clock if clock is not None else clocks(sane_clocks))
    return Record(c, code, {}, draw(st.integers(0, 0xFFFF)), draw(st.binary(min_size=24, max_size=24)))


def any_records(*, sane_clocks: bool = True) -> st.SearchStrategy[Record]:
    """Known records of every type (delivery most often) and, less often, unknown types."""
    return st.one_of(
        known_records(sane_clocks=sane_clocks),
        known_records([DELIVERY_CODE], sane_clocks=sane_clocks),
        unknown_records(sane_clocks=sane_clocks),
    )


def _ascii_text(max_size: int) -> st.SearchStrategy[str]:
    # Printable ASCII: a fixed-width field pads with NUL, so text must not end in one.
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=max_size)


@st.composite
def headers(
    draw: st.DrawFn, page_sizes: Sequence[int] = PAGE_SIZES, ring_slots: st.SearchStrategy[int] | None = None
) -> Header:
    """A valid header (``page_count`` left 0: :func:`log_images` sets it)."""
    return Header(
        model_ml=draw(st.sampled_from([20, 40])),
        serial=draw(_ascii_text(16)),
        firmware=draw(_ascii_text(12)),
        implant_date=draw(st.dates(dt.date(1990, 1, 1), dt.date(2060, 12, 31))),
        pump_clock=draw(clocks()),
        programmer_clock=draw(clocks()),
        programmer_id=draw(_ascii_text(16)),
        page_size=draw(st.sampled_from(list(page_sizes))),
        ring_slots=draw(ring_slots if ring_slots is not None else st.integers(1, 12)),
        version_minor=draw(st.integers(0, 255)),
        flags=draw(st.integers(0, 255)),
    )


def _scaled(ctype: str, per_unit: int) -> st.SearchStrategy[float]:
    return _raw(ctype).map(lambda v: v / per_unit)


flex_steps = st.builds(
    FlexStep,
    start_min=_raw("u16"),
    daily_dose_mcg_day=_scaled("u32", 1000),
    rate_ml_day=_scaled("u32", 1_000_000),
    reserved=_raw("u16"),
)
"""A flex (time-of-day) step with on-disk-exact values."""

_KNOWN_ALARM_BITS = sum(1 << int(a) for a in Alarm)


@st.composite
def statuses(draw: st.DrawFn) -> Status:
    """A valid status snapshot: up to 13 flex steps, any alarms (known names in enum order,
    unknown bits kept in ``alarm_bits_unknown``)."""
    alarms = draw(st.sets(st.sampled_from(list(Alarm))))
    unknown_bits = draw(_raw("u32")) & ~_KNOWN_ALARM_BITS & draw(st.sampled_from([0, 0xFFFF_FFFF]))

    def enum_names(enum: Any, ctype: str) -> st.SearchStrategy[str]:
        known = st.sampled_from([int(m) for m in enum])
        return st.one_of(known, known, _raw(ctype)).map(lambda v: enum_name(enum, v))

    return Status(
        reservoir_ml=draw(_scaled("u32", 1_000_000)),
        low_reservoir_alarm_ml=draw(_scaled("u32", 1_000_000)),
        drug_name=draw(_ascii_text(16)),
        concentration_mcg_ml=draw(_scaled("u32", 1000)),
        mode=draw(enum_names(Mode, "u8")),
        daily_dose_mcg_day=draw(_scaled("u32", 1000)),
        rate_ml_day=draw(_scaled("u32", 1_000_000)),
        flex_steps=tuple(draw(st.lists(flex_steps, max_size=fmt.MAX_FLEX_STEPS))),
        ptm_enabled=draw(st.booleans()),
        ptm_dose_mcg=draw(_scaled("u32", 1000)),
        ptm_lockout_min=draw(_raw("u16")),
        ptm_max_per_day=draw(_raw("u8")),
        active_alarms=tuple(a.name.lower() for a in sorted(alarms)),
        battery_state=draw(enum_names(BatteryState, "u8")),
        motor_state=draw(enum_names(MotorState, "u8")),
        last_refill_clock=draw(_raw("u32")),
        eri_clock=draw(_raw("u32")),
        alarm_bits_unknown=unknown_bits,
    )


@st.composite
def record_histories(draw: st.DrawFn, max_records: int = 120) -> list[Record]:
    """Records of every kind whose clocks mostly move forward (steps up to a day) with
    occasional backward jumps, as a pump's history does."""
    recs = draw(st.lists(any_records(), max_size=max_records))
    start = draw(st.integers(0, CLOCK_MAX // 2))
    steps = draw(
        st.lists(
            st.one_of(st.integers(0, 86_400), st.integers(-100_000, 0)),
            min_size=len(recs),
            max_size=len(recs),
        )
    )
    out, t = [], start
    for r, step in zip(recs, steps, strict=True):
        t = min(max(t + step, 0), CLOCK_MAX - 1)
        out.append(dataclasses.replace(r, clock=t))
    return out


@st.composite
def log_images(
    draw: st.DrawFn,
    max_records: int = 120,
    page_sizes: Sequence[int] = PAGE_SIZES,
) -> LogImage:
    """A whole valid log: random header and status, records of every known type plus unknown
    types, laid out with ``pack_ring`` from a random first sequence number (the ring wraps
    when there are more pages than slots)."""
    h = draw(headers(page_sizes))
    recs = draw(record_histories(max_records))
    first_seq = draw(st.integers(0, 5000))
    pages = parsers.pack_ring(recs, h.page_size, h.ring_slots, first_seq)
    return LogImage(dataclasses.replace(h, page_count=len(pages)), draw(statuses()), pages)
