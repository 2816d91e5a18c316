"""Messages of the wire protocol: opcodes and payload layouts (all little-endian).

A response carries the request's sequence number and opcode | 0x80; a refusal is an
``ERROR`` response.  Commands that change the pump are idempotent by sequence number: the
pump keeps its recent responses and answers a repeated sequence number from that cache.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from parsers.model import mcg_to_ng, ml_to_nl
from parsers.records import (
    MILLI_PER_UNIT,
    NG_PER_MCG,
    NL_PER_ML,
    BolusKind,
    Mode,
    OverrideReason,
    enum_name,
    enum_value,
)

from ..prescription import BOLUS_KINDS as PROGRAMMER_BOLUS_KINDS
from ..prescription import MODES, FlexDose, Prescription
from .frames import MAX_PAYLOAD

RESPONSE = 0x80


class Op(IntEnum):
    """Request opcodes."""

    SESSION_START = 0x01  # u32 programmer clock -> u32 pump clock, u8 reservoir mL, 3 pad
    SNAPSHOT = 0x03  # -> u32 snapshot id, u32 total bytes, u16 page size (freezes the log image)
    READ_BLOCK = 0x04  # u32 snapshot id, u32 offset, u16 length -> bytes of the snapshot
    PAGE_MAP = 0x05  # u32 snapshot id -> u32 image CRC-32C, u32 places, u16 runs, runs x (u32 seq, u32 n)
    PROGRAM = 0x10  # prescription (see encode_prescription) -> empty
    REFILL = (
        0x11  # u32 volume nL, u32 concentration (0.001 mcg/mL), u8 flags -> u32 expected nL, u32 measured nL
    )
    BOLUS = 0x12  # u8 kind, u32 dose ng, u32 duration s[, u32 idempotency key] -> u16 bolus id
    SET_CLOCK = 0x13  # u32 clock (ITB-epoch s) -> empty
    BOLUS_QUERY = 0x14  # u32 idempotency key -> u8 state (0 none, 1 running, 2 ended), u16 bolus id
    SESSION_END = 0x1F  # -> empty
    ERROR = 0x7F  # response only: u8 code, UTF-8 message


class ErrorCode(IntEnum):
    """Why a request was refused."""

    REFUSED = 1  # the pump cannot do it (out of range, ...)
    READ_ONLY = 2  # a replayed log cannot be changed
    BAD_REQUEST = 3  # malformed payload or unknown opcode
    STALE_SNAPSHOT = 4  # READ_BLOCK for a snapshot that is no longer held
    FAULT = 5  # the pump failed inside while handling the request (it keeps serving)


def _both_ways(codes: dict[str, int], what: str) -> dict[int, str]:
    """The inverse of a name -> wire code mapping, checked to be one-to-one."""
    names = {code: name for name, code in codes.items()}
    if len(names) != len(codes):
        raise AssertionError(f"two of {what} share a wire code: {codes}")
    return names


# Wire codes of infusion modes and bolus kinds, by name.  They are the log's codes
# (parsers.records.Mode, BolusKind), looked up by name, so the two can never disagree; the
# wire carries only the bolus kinds a programmer gives (a patient bolus comes from the myPTM).
MODE_CODES: dict[str, int] = {name: enum_value(Mode, name) for name in MODES}
MODE_NAMES: dict[int, str] = _both_ways(MODE_CODES, "the infusion modes")
BOLUS_KINDS: dict[str, int] = {name: enum_value(BolusKind, name) for name in PROGRAMMER_BOLUS_KINDS}
BOLUS_KIND_NAMES: dict[int, str] = _both_ways(BOLUS_KINDS, "the bolus kinds")

U32 = struct.Struct("<I")
SESSION = struct.Struct("<IB3x")
SNAPSHOT = struct.Struct("<IIH")
READ_BLOCK = struct.Struct("<IIH")
REFILL_REQ = struct.Struct("<IIB")
REFILL_RESP = struct.Struct("<II")
BOLUS_REQ = struct.Struct("<BII")
BOLUS_KEYED_REQ = struct.Struct("<BIII")  # BOLUS_REQ then the u32 idempotency key (not 0)
BOLUS_RESP = struct.Struct("<H")
BOLUS_QUERY_RESP = struct.Struct("<BH")
PAGE_MAP_HEAD = struct.Struct("<IIH")  # CRC-32C of the whole snapshot, page places, runs that follow
PAGE_RUN = struct.Struct("<II")  # first sequence number, places
NO_PAGE = 0xFFFFFFFF  # a run's first seq for places that hold no page asked for by number
#: Runs that fit in one PAGE_MAP answer.
MAX_PAGE_RUNS = (MAX_PAYLOAD - PAGE_MAP_HEAD.size) // PAGE_RUN.size
OVERRIDE_REASONS = {m.name.lower(): int(m) for m in OverrideReason}
_RX_NOTE = struct.Struct("<BxxxI")  # override reason code, 3 pad, u32 operator id (staff number)
_RX_HEAD = struct.Struct("<BBBxIII")  # mode, override, n_steps, concentration, dose, intended
_RX_STEP = struct.Struct("<HI")


def encode_prescription(
    rx: Prescription, override: bool, intended_mcg: float | None, note: tuple[str, int] | None = None
) -> bytes:
    """PROGRAM payload: mode u8, override u8, step count u8, pad, concentration u32
    (0.001 mcg/mL), daily dose u32 (ng/day), intended daily dose u32 (ng/day, 0 = as
    programmed), then per flex step start u16 (min after midnight), dose u32 (ng/day), then
    with an override its note: reason code u8 (OverrideReason), 3 pad, operator id u32.
    The values must have been checked (:func:`itb_device.safety.check_prescription_values`)."""
    head = _RX_HEAD.pack(
        MODE_CODES[rx.mode],
        int(override),
        len(rx.flex_steps),
        round(rx.concentration_mcg_ml * MILLI_PER_UNIT),
        mcg_to_ng(rx.daily_dose_mcg),
        0 if intended_mcg is None else mcg_to_ng(intended_mcg),
    )
    tail = b"" if note is None else _RX_NOTE.pack(OVERRIDE_REASONS[note[0]], note[1])
    steps = b"".join(_RX_STEP.pack(s.start_min, mcg_to_ng(s.daily_dose_mcg)) for s in rx.flex_steps)
    return head + steps + tail


def decode_prescription(payload: bytes) -> tuple[Prescription, bool, float | None, tuple[str, int] | None]:
    """Inverse of :func:`encode_prescription`: the prescription, the override flag, the intended
    dose and the override note (reason name, operator id; None when absent); raises ValueError
    when malformed."""
    try:
        mode, override, n, conc, dose, intended = _RX_HEAD.unpack_from(payload, 0)
        steps = tuple(
            FlexDose(start, ng / NG_PER_MCG)
            for start, ng in (
                _RX_STEP.unpack_from(payload, _RX_HEAD.size + i * _RX_STEP.size) for i in range(n)
            )
        )
    except struct.error as exc:
        raise ValueError(f"malformed PROGRAM payload: {exc}") from exc
    body = _RX_HEAD.size + n * _RX_STEP.size
    if mode not in MODE_NAMES or override > 1 or len(payload) not in (body, body + _RX_NOTE.size):
        raise ValueError("malformed PROGRAM payload")
    note = None
    if len(payload) > body:
        if not override:
            raise ValueError("malformed PROGRAM payload: an override note without the override flag")
        code, operator = _RX_NOTE.unpack_from(payload, body)
        note = (enum_name(OverrideReason, code), operator)
    rx = Prescription(MODE_NAMES[mode], dose / NG_PER_MCG, conc / MILLI_PER_UNIT, steps)
    return rx, bool(override), (intended / NG_PER_MCG if intended else None), note


@dataclass(frozen=True)
class PageMap:
    """A PAGE_MAP answer: where each page of a log snapshot is, by sequence number.

    The snapshot holds ``places`` page-sized places after the header and status, place ``k`` at
    byte ``384 + k * page_size``; ``runs`` describe them in that order, ``(first seq, n)``: the
    next ``n`` places hold pages ``first``, ``first + 1``, ... (``first`` :data:`NO_PAGE`: places
    holding no page one can ask for by number: erased, damaged, or a second copy).
    ``image_crc`` is the CRC-32C of the whole snapshot (header, status, pages, any trailing
    bytes)."""

    image_crc: int
    places: int
    runs: tuple[tuple[int, int], ...]

    def place_seqs(self) -> list[int | None]:
        """The sequence number of the page at each place, in file order (None: no page)."""
        out: list[int | None] = []
        for first, n in self.runs:
            out += [None] * n if first == NO_PAGE else range(first, first + n)
        return out

    @classmethod
    def of_places(cls, image_crc: int, seqs: list[int | None]) -> PageMap:
        """The map of places holding ``seqs`` (None: no page), runs merged."""
        runs: list[list[int]] = []
        for s in seqs:
            first = NO_PAGE if s is None or s >= NO_PAGE else s
            if runs:
                last = runs[-1]
                if (first == NO_PAGE and last[0] == NO_PAGE) or (
                        first != NO_PAGE and last[0] != NO_PAGE and last[0] + last[1] == first):
                    last[1] += 1
                    continue
            runs.append([first, 1])
        return cls(image_crc, len(seqs), tuple((a, b) for a, b in runs))


def encode_page_map(m: PageMap) -> bytes:
    """PAGE_MAP response payload; ValueError when the runs do not fit in one answer."""
    if len(m.runs) > MAX_PAGE_RUNS:
        raise ValueError(f"the page map has {len(m.runs)} runs; at most {MAX_PAGE_RUNS} fit in one answer")
    return PAGE_MAP_HEAD.pack(m.image_crc, m.places, len(m.runs)) + b"".join(
        PAGE_RUN.pack(first, n) for first, n in m.runs)


def decode_page_map(payload: bytes) -> PageMap:
    """Inverse of :func:`encode_page_map`; ValueError when malformed (a wrong length, runs that
    do not add up to the places, a sequence number that wraps)."""
    if len(payload) < PAGE_MAP_HEAD.size:
        raise ValueError(f"a PAGE_MAP answer of {len(payload)} bytes is too short")
    crc, places, n = PAGE_MAP_HEAD.unpack_from(payload)
    if len(payload) != PAGE_MAP_HEAD.size + n * PAGE_RUN.size:
        raise ValueError(f"a PAGE_MAP answer of {len(payload)} bytes does not hold {n} runs")
    runs = tuple(PAGE_RUN.unpack_from(payload, PAGE_MAP_HEAD.size + i * PAGE_RUN.size) for i in range(n))
    if sum(c for _, c in runs) != places or any(
            c == 0 or (f != NO_PAGE and f + c > NO_PAGE) for f, c in runs):
        raise ValueError("the PAGE_MAP runs do not add up to its places")
    return PageMap(crc, places, runs)


def nl(ml: float) -> int:
    """mL as integer nL for the wire."""
    return ml_to_nl(ml)


def ml(nl_value: int) -> float:
    """Integer nL from the wire as mL."""
    return nl_value / NL_PER_ML
