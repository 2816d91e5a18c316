"""Rules of docs/log-format.md section 12 that the reader can check cheaply, reported as warnings.

A log that breaks one of them is still readable; the reader says where it first breaks it
and how often, so that an analysis does not rely on that rule for that log.  Each check is a
few vectorised passes over the decoded columns (the delivery rows a block at a time, so the
temporaries stay in cache); the event checks only look at the few event records.

* ``stalled_beyond_interval`` (12.2): a delivery row whose ``stalled_s`` exceeds its
  ``interval_s``.
* ``delivery_overlap`` (12.1): a delivery row that begins (its stamp minus ``interval_s``)
  before the previous row's stamp in the same clock segment (section 7), by more than
  ``2 s + interval_s / 8192`` (stamp truncation and clock drift).
* ``prescription_step_start`` (12.4): a prescription record that is not ``flex`` with a
  ``step_start_min`` other than 0.
* ``refill_outside_session`` (12.8): a refill between a ``telemetry_end`` and the next
  ``telemetry_start`` (or before the first session when the history starts at the pump's
  first page); after the last session, or after a page gap, nothing is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .decoded import DecodedRecords
from .model import Problem
from .records import Mode, RecordCode
from .timebase import BACKWARD_TOLERANCE_S, Timebase

_BLOCK = 1 << 16
_SESSION_CODES = [int(RecordCode.TELEMETRY_START), int(RecordCode.TELEMETRY_END), int(RecordCode.REFILL)]
_DRIFT_SHIFT = 13  # tolerance grows by interval_s / 8192 (about 120 ppm)


def check_rules(
    dec: DecodedRecords, tb: Timebase, gap_starts: list[int], *, from_first_page: bool
) -> list[Problem]:
    """The section-12 rules ``dec`` breaks, one warning per rule (see the module docstring).
    ``gap_starts``: storage positions that follow a page gap; ``from_first_page``: the history
    starts at the pump's first page (nothing was written before it)."""
    problems: list[Problem] = []
    if len(dec.delivery_clock):
        stalled, interval = dec.delivery["stalled_s"], dec.delivery["interval_s"]
        too_long, overlap = _row_checks(dec, tb)
        at_row = dec.delivery_offset, dec.delivery_page_seq
        problems += first_warning(
            "stalled_beyond_interval",
            too_long,
            lambda r: (
                f"{_rows(len(too_long))}, the first at this offset, say the rotor stood still "
                f"longer than the row's interval (stalled_s {int(stalled[r])} > interval_s "
                f"{int(interval[r])}): a pump never writes that (docs/log-format.md 12.2)"
            ),
            *at_row,
        )
        problems += first_warning(
            "delivery_overlap",
            overlap,
            lambda r: (
                f"{_rows(len(overlap))}, the first at this offset, begin before the previous row "
                f"ended on the same clock (stamp {int(dec.delivery_clock[r])} s minus interval "
                f"{int(interval[r])} s is before the previous stamp {int(dec.delivery_clock[r - 1])} "
                "s): rows tile the pump's time with no overlap (docs/log-format.md 12.1)"
            ),
            *at_row,
        )
    code = dec.event_code
    if len(code):
        e = dec.events
        at_event = dec.event_offset, dec.event_page_seq
        bad = np.flatnonzero(
            (code == RecordCode.PRESCRIPTION) & (e["mode"] != int(Mode.FLEX)) & (e["step_start_min"] != 0)
        )
        problems += first_warning(
            "prescription_step_start",
            bad,
            lambda r: (
                f"{len(bad)} prescription record(s) not in flex mode, the first at this offset, "
                f"give step_start_min {int(e['step_start_min'][r])}, not 0 (docs/log-format.md 12.4)"
            ),
            *at_event,
        )
        outside = _refills_outside(dec, gap_starts, from_first_page)
        problems += first_warning(
            "refill_outside_session",
            outside,
            lambda r: (
                f"{len(outside)} refill record(s), the first at this offset, lie outside a "
                "telemetry session (after its telemetry_end, before the next "
                "telemetry_start): a pump refills only in a session (docs/log-format.md 12.8)"
            ),
            *at_event,
        )
    return problems


def first_warning(
    kind: str,
    hits: Sequence[int] | np.ndarray,
    message: Callable[[int], str],
    offsets: np.ndarray,
    page_seqs: np.ndarray,
) -> list[Problem]:
    """One warning for a rule broken at ``hits`` (indexes in order; none if empty), placed at the
    first, ``r`` (``offsets[r]``, ``page_seqs[r]``), and saying ``message(r)``: one a rule, however
    often it is broken, so that a badly broken log does not bury the rest."""
    if not len(hits):
        return []
    r = int(hits[0])
    return [Problem(kind, message(r), int(offsets[r]), int(page_seqs[r]), "warning")]


def _rows(k: int) -> str:
    return "1 delivery row" if k == 1 else f"{k} delivery rows"


def _row_checks(dec: DecodedRecords, tb: Timebase) -> tuple[np.ndarray, np.ndarray]:
    """Delivery rows whose ``stalled_s`` exceeds ``interval_s``, and rows that begin before
    the previous row's end within one clock segment.  The cheap test (stamped more than 2 s
    early) finds the candidates, the drift allowance (``interval_s / 8192``) and the clock
    segments are applied to those few."""
    clock, interval = dec.delivery_clock, dec.delivery["interval_s"]
    if dec.row_flags is not None:  # the fast decoder looked while it decoded the rows
        long_rows, hits = dec.row_flags
    else:
        long_rows, hits = _row_candidates(dec)
    if len(hits):
        gap = clock[hits].astype(np.int64) - clock[hits - 1].astype(np.int64) + BACKWARD_TOLERANCE_S
        hits = hits[gap + (interval[hits] >> _DRIFT_SHIFT) < interval[hits]]
        first_rows = dec.delivery_starts(tb.starts)  # the first delivery row of each segment
        hits = hits[~np.isin(hits, first_rows)]
    return long_rows, hits


def _row_candidates(dec: DecodedRecords) -> tuple[np.ndarray, np.ndarray]:
    """The candidates of :func:`_row_checks` from the table columns, a block at a time over
    preallocated buffers (the fast decoder finds the same ones as it decodes)."""
    clock, stalled, interval = dec.delivery_clock, dec.delivery["stalled_s"], dec.delivery["interval_s"]
    n = len(clock)
    step = np.empty(min(n, _BLOCK), dtype=np.int64)
    flag = np.empty(min(n, _BLOCK), dtype=bool)
    too_long, early = [], []
    for b in range(0, n, _BLOCK):
        e = min(b + _BLOCK, n)
        f = flag[: e - b]
        np.greater(stalled[b:e], interval[b:e], out=f)
        if f.any():
            too_long.append(np.flatnonzero(f) + b)
        lo = max(b, 1)  # row 0 has no previous row
        d, f = step[: e - lo], flag[: e - lo]
        np.subtract(clock[lo:e], clock[lo - 1 : e - 1], out=d, dtype=np.int64)  # stamp minus previous
        d += BACKWARD_TOLERANCE_S
        np.less(d, interval[lo:e], out=f)
        if f.any():
            early.append(np.flatnonzero(f) + lo)
    empty = np.empty(0, dtype=np.int64)
    return (np.concatenate(too_long) if too_long else empty), (np.concatenate(early) if early else empty)


def _refills_outside(dec: DecodedRecords, gap_starts: list[int], from_first_page: bool) -> list[int]:
    """Event rows of refills made outside a telemetry session."""
    code = dec.event_code
    rows = np.flatnonzero(np.isin(code, _SESSION_CODES))
    if not np.any(code[rows] == RecordCode.REFILL):
        return []
    gaps = sorted(gap_starts)
    g = 0
    state = "out" if from_first_page else "unknown"
    bad: list[int] = []
    pending: list[int] = []  # refills after a telemetry_end: outside only if a session follows
    for r in rows.tolist():
        pos = int(dec.event_idx[r])
        while g < len(gaps) and gaps[g] <= pos:
            state, g = "unknown", g + 1
            pending = []
        c = int(code[r])
        if c == RecordCode.TELEMETRY_START:
            bad += pending
            pending = []
            state = "in"
        elif c == RecordCode.TELEMETRY_END:
            state = "out"
        elif state == "out":
            pending.append(r)
    # after the last session with no later telemetry_start the file lacks the interrogating
    # session's own start (12.7): where the refill lay cannot be told, so nothing is said
    return bad
