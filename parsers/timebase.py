"""Pump clock to UTC: drift between sync points, clock sets and resets as hard boundaries.

The pump stamps records with its own clock, which drifts and can be set or reset.  Records
are split into *segments* at every clock-set record, pump reset, unexplained backward jump
and page gap.  Within a segment the offset (UTC minus pump clock) is interpolated linearly
between sync points, where both clocks are known: each telemetry session start (the
programmer's UTC), each clock set, and the header (the interrogation itself).  A segment
with no sync point of its own is linked to its neighbour through a reset's recorded clock;
failing that it borrows its neighbour's offset and its times are marked uncertain
(Tidepool's rule: a clock reset is a hard boundary, never silently bridged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .model import Problem
from .records import RecordCode


@dataclass
class ClockMarks:
    """Clock-related records, by record index (storage order)."""

    clock_set: list[tuple[int, int, int]] = field(default_factory=list)  # (i, old, new)
    reset: list[tuple[int, int]] = field(default_factory=list)  # (i, clock_before)
    telemetry: list[tuple[int, int]] = field(default_factory=list)  # (i, programmer_clock)


@dataclass
class Segment:
    """Records ``lo``..``hi`` (storage positions) share one clock history: their offset (UTC
    minus pump clock) is interpolated between sync points ``xs`` (pump clock) with offsets
    ``offs``."""

    lo: int
    hi: int
    xs: np.ndarray  # float64 pump clock of each sync point, ascending
    offs: np.ndarray  # float64 UTC minus pump clock at each
    uncertain: bool

    def apply(self, clock: np.ndarray, out: np.ndarray) -> None:
        """UTC seconds (ITB epoch) for pump clocks ``clock`` into ``out`` (int64), a block
        at a time so the float temporaries stay in cache."""
        xs, offs = self.xs, self.offs
        constant = len(xs) == 1 or bool(np.all(offs == offs[0]))
        for b in range(0, len(clock), _BLOCK):
            c, o = clock[b : b + _BLOCK], out[b : b + _BLOCK]
            o[:] = c
            if constant:
                o += int(offs[0])
            elif len(c) > 1 and np.all(c[1:] >= c[:-1]):
                interp_sorted(c, o, xs, offs)
            else:  # clocks out of order inside the block (a second or two of jitter)
                line = np.interp(c, xs, offs)
                np.rint(line, out=line)
                np.add(o, line, out=o, casting="unsafe")  # exact: whole numbers


def interp_sorted(c: np.ndarray, o: np.ndarray, xs: np.ndarray, offs: np.ndarray) -> None:
    """``o += rint(np.interp(c, xs, offs))`` for ascending ``c``, with the same arithmetic as
    ``np.interp`` but one straight line per stretch between sync points instead of a binary
    search per record (several times faster)."""
    # pieces: before xs[0] | between xs[j-1] and xs[j] | from xs[-1] on (np.interp clamps)
    cuts = np.concatenate(([0], np.searchsorted(c, xs, side="left"), [len(c)]))
    for piece in np.flatnonzero(cuts[1:] > cuts[:-1]).tolist():
        lo, hi = int(cuts[piece]), int(cuts[piece + 1])
        if piece == 0 or piece == len(xs):
            o[lo:hi] += int(offs[0] if piece == 0 else offs[-1])
            continue
        j = piece - 1  # c in [xs[j], xs[j + 1])
        line = o[lo:hi] - xs[j]
        line *= (offs[j + 1] - offs[j]) / (xs[j + 1] - xs[j])
        line += offs[j]
        np.rint(line, out=line)
        np.add(o[lo:hi], line, out=o[lo:hi], casting="unsafe")


_BLOCK = 1 << 16


@dataclass
class Timebase:
    """The clock history of a log, as segments in storage order, and what was found.

    Apply it to any subset of the records (a table's rows, in storage order) with
    :meth:`seconds`, giving where each segment starts in that subset."""

    segments: list[Segment]
    problems: list[Problem]

    @property
    def starts(self) -> np.ndarray:
        """Storage position of each segment's first record."""
        return np.array([s.lo for s in self.segments], dtype=np.int64)

    def seconds(self, clock: np.ndarray, row_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """UTC seconds (ITB epoch, int64) and an uncertain flag for rows with pump clocks
        ``clock``; segment ``k`` covers rows ``row_starts[k]`` up to the next start."""
        out = np.empty(len(clock), dtype=np.int64)
        uncertain = np.zeros(len(clock), dtype=bool)
        ends = [*row_starts[1:].tolist(), len(clock)]
        for seg, lo, hi in zip(self.segments, row_starts.tolist(), ends, strict=True):
            seg.apply(clock[lo:hi], out[lo:hi])
            if seg.uncertain:
                uncertain[lo:hi] = True
        return out, uncertain

    def seconds_at(self, clock: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """UTC seconds for the records at storage ``positions`` (``clock``: every record's
        pump clock)."""
        positions = np.asarray(positions, dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        ranked = positions[order]
        utc, _ = self.seconds(clock[ranked], np.searchsorted(ranked, self.starts))
        out = np.empty_like(utc)
        out[order] = utc
        return out


def backward_jumps(clock: np.ndarray, tolerance: int) -> np.ndarray:
    """Positions where the pump clock steps back by more than ``tolerance`` seconds."""
    found = []
    for b in range(1, len(clock), _BLOCK):
        cur = clock[b : b + _BLOCK].astype(np.int64)
        prev = clock[b - 1 : b - 1 + len(cur)].astype(np.int64)
        prev -= tolerance
        hits = np.flatnonzero(cur < prev)
        if len(hits):
            found.append(hits + b)
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


BACKWARD_TOLERANCE_S = 2  # records in one page may be stamped out of order by a second or two
# When the end of the history is lost, the header's clocks (the pump's clock now) describe the
# last records kept only if they agree with what else dates them, within drift: this much,
# plus HEADER_AGREE_PPM of the time between.  A lost clock set or reset breaks it.
HEADER_AGREE_S = 600
HEADER_AGREE_PPM = 200


def _agree(point: tuple[int, int | float], header: tuple[int, int]) -> bool:
    """True when sync point ``point`` and the header's point give offsets that differ by no
    more than clock drift between them."""
    (p, u), (hp, hu) = point, header
    return abs((hu - hp) - (u - p)) <= HEADER_AGREE_S + HEADER_AGREE_PPM * 1e-6 * abs(hp - p)


def correct_clocks(
    clock: np.ndarray,
    marks: ClockMarks,
    header_sync: tuple[int, int],
    gap_starts: list[int],
    offset_of: Callable[[int], int],
    *,
    tail_missing: bool = False,
) -> Timebase:
    """The clock history of records with pump clocks ``clock`` (storage order);
    ``gap_starts`` are record positions that follow a missing page and ``offset_of`` gives a
    record's byte offset, for the problems found.

    ``tail_missing`` says the newest history may be lost (a cut file, missing newest pages):
    a clock set or reset may then lie between the last record kept and the interrogation, so
    the header's sync point is given to the last segment only where it agrees with the
    segment's own sync points or the reset it starts with; otherwise that segment is dated
    without it and, having no sync point after it, marked uncertain."""
    n = len(clock)
    clk = clock  # point look-ups only, each wrapped in int()
    problems: list[Problem] = []
    kinds: dict[int, str] = {}
    for i, _, _ in marks.clock_set:
        kinds[i] = "clock_set"
    for i, _ in marks.reset:
        kinds[i] = "reset"
    for i in gap_starts:
        kinds.setdefault(i, "gap")
    if n > 1:
        for i in backward_jumps(clock, BACKWARD_TOLERANCE_S).tolist():
            if i not in kinds:
                kinds[i] = "jump"
                problems.append(
                    Problem(
                        "clock_reset",
                        f"pump clock jumps back from {int(clk[i - 1])} s to {int(clk[i])} s with no "
                        "clock-set or reset record: times before it are anchored only by a sync "
                        "point of their own (a telemetry session); without one they are estimated "
                        "from a neighbouring segment and marked uncertain",
                        offset_of(i),
                    )
                )
    starts = sorted({0, *[i for i in kinds if 0 < i < n]}) if n else [0]
    bounds = [*starts, n]
    nseg = len(starts)
    seg_of = lambda i: int(np.searchsorted(starts, i, side="right") - 1)  # noqa: E731
    syncs: list[list[tuple[int, int]]] = [[] for _ in range(nseg)]
    for i, pc in marks.telemetry:
        syncs[seg_of(i)].append((int(clk[i]), pc))
    for i, old, new in marks.clock_set:
        k = seg_of(i)
        syncs[k].append((new, new))
        if k > 0 and starts[k] == i:
            syncs[k - 1].append((old, new))
    last = nseg - 1
    own_last = bool(syncs[last])
    # with the end of the history lost, the header's point is checked before it is used: not
    # at all if the pump clock now is before the last record (another clock), against the
    # segment's own sync points, or (``pending``) against the reset the segment starts with
    pending = False
    header_fits = True
    if tail_missing and n:
        if header_sync[0] < int(clk[n - 1]) - BACKWARD_TOLERANCE_S:
            header_fits = False
        elif own_last:
            header_fits = _agree(max(syncs[last]), header_sync)
        else:
            pending = True
    if header_fits and not pending:
        syncs[last].append(header_sync)
    reset_before = {i: cb for i, cb in marks.reset}

    uncertain_seg = [False] * nseg
    why_uncertain = ["gap"] * nseg
    resolved = [bool(s) for s in syncs]

    def offset_at(k: int, t: int) -> float:
        pts = sorted(syncs[k])
        return float(np.interp(t, [p for p, _ in pts], [u - p for p, u in pts]))

    while not all(resolved):
        progressed = False
        for k in range(nseg):
            if resolved[k]:
                continue
            nxt = k + 1
            if nxt < nseg and resolved[nxt] and starts[nxt] in reset_before:
                b = starts[nxt]
                utc_reset = int(clk[b]) + offset_at(nxt, int(clk[b]))
                syncs[k].append((reset_before[b], round(utc_reset)))
                resolved[k] = progressed = True
            elif k > 0 and resolved[k - 1] and starts[k] in reset_before:
                cb = reset_before[starts[k]]
                utc_reset = cb + offset_at(k - 1, cb)
                syncs[k].append((int(clk[starts[k]]), round(utc_reset)))
                resolved[k] = progressed = True
        if progressed:
            continue
        for k in range(nseg):  # no certain link left: borrow a neighbour's edge offset
            if resolved[k]:
                continue
            if k == last and pending:  # the end is lost: the header's clocks, uncertain
                syncs[k].append(header_sync)
                resolved[k] = uncertain_seg[k] = True
                why_uncertain[k] = "tail"
                pending = False
                break
            if k + 1 < nseg and resolved[k + 1]:
                t = int(clk[starts[k + 1]])
                off = offset_at(k + 1, t)
            elif k > 0 and resolved[k - 1]:
                t = int(clk[bounds[k] - 1])
                off = offset_at(k - 1, t)
            else:
                continue
            edge = int(clk[bounds[k + 1] - 1]) if k + 1 < nseg else int(clk[starts[k]])
            syncs[k].append((edge, round(edge + off)))
            resolved[k] = uncertain_seg[k] = True
            break

    if tail_missing and n and not own_last and not uncertain_seg[last] and header_sync not in syncs[last]:
        # dated through the reset it starts with, and nothing after it: uncertain unless the
        # header's clock fits that dating (no clock set was lost)
        if pending and syncs[last] and _agree(syncs[last][0], header_sync):
            syncs[last].append(header_sync)
        else:
            uncertain_seg[last] = True
            why_uncertain[last] = "reset"

    segments = []
    for k in range(nseg):
        lo, hi = bounds[k], bounds[k + 1]
        pts = sorted(set(syncs[k]))
        xs = np.array([p for p, _ in pts], dtype=np.float64)
        offs = np.array([u - p for p, u in pts], dtype=np.float64)
        segments.append(Segment(lo, hi, xs, offs, uncertain_seg[k]))
        if uncertain_seg[k] and hi > lo and kinds.get(lo) != "jump" and kinds.get(hi) != "jump":
            problems.append(
                Problem(
                    "clock_uncertain",
                    f"{hi - lo} records from byte {offset_of(lo)} " + _UNCERTAIN[why_uncertain[k]],
                    offset_of(lo),
                    None,
                    "warning",
                )
            )
    for i, cb in marks.reset:
        problems.append(
            Problem(
                "pump_reset",
                f"pump reset: its clock restarted (was {cb} s, now {int(clk[i])} s); times before "
                "the reset are linked through the clock it recorded",
                offset_of(i),
                None,
                "warning",
            )
        )
    return Timebase(segments, problems)


_UNCERTAIN = {
    "gap": "have no clock sync point of their own (next to a page gap): their times are "
    "estimated and marked uncertain",
    "tail": "have no clock sync point of their own and the end of the history is lost (a clock "
    "set or reset may be lost with it): their times are estimated from the header's clocks "
    "and marked uncertain",
    "reset": "follow a pump reset, and the history kept holds no clock set or session after it; "
    "the end of the history is lost and the header's clock does not fit them (the clock was set "
    "in the lost part): their times are estimated through the clock the reset recorded and "
    "marked uncertain",
}

CLOCK_CODES = (
    int(RecordCode.CLOCK_SET),
    int(RecordCode.PUMP_RESET),
    int(RecordCode.TELEMETRY_START),
)
