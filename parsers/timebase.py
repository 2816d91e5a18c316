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
class Timebase:
    """UTC seconds (ITB epoch) per record, whether each is uncertain, and what was found."""

    utc: np.ndarray
    uncertain: np.ndarray
    problems: list[Problem]


BACKWARD_TOLERANCE_S = 2  # records in one page may be stamped out of order by a second or two


def correct_clocks(
    clock: np.ndarray,
    marks: ClockMarks,
    header_sync: tuple[int, int],
    gap_starts: list[int],
    offsets: np.ndarray,
) -> Timebase:
    """UTC for each record; ``gap_starts`` are record indices that follow a missing page."""
    n = len(clock)
    clk = clock.astype(np.int64)
    problems: list[Problem] = []
    kinds: dict[int, str] = {}
    for i, _, _ in marks.clock_set:
        kinds[i] = "clock_set"
    for i, _ in marks.reset:
        kinds[i] = "reset"
    for i in gap_starts:
        kinds.setdefault(i, "gap")
    if n > 1:
        back = np.flatnonzero(clk[1:] < clk[:-1] - BACKWARD_TOLERANCE_S) + 1
        for i in back.tolist():
            if i not in kinds:
                kinds[i] = "jump"
                problems.append(
                    Problem(
                        "clock_reset",
                        f"pump clock jumps back from {int(clk[i - 1])} s to {int(clk[i])} s with no "
                        "clock-set or reset record: times before it cannot be anchored and are "
                        "marked uncertain",
                        int(offsets[i]),
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
    syncs[nseg - 1].append(header_sync)
    reset_before = {i: cb for i, cb in marks.reset}

    uncertain_seg = [False] * nseg
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

    utc = np.empty(n, dtype=np.int64)
    uncertain = np.zeros(n, dtype=bool)
    for k in range(nseg):
        lo, hi = bounds[k], bounds[k + 1]
        pts = sorted(set(syncs[k]))
        xs = np.array([p for p, _ in pts], dtype=np.float64)
        offs = np.array([u - p for p, u in pts], dtype=np.float64)
        seg = clk[lo:hi]
        if len(pts) == 1 or np.all(offs == offs[0]):
            utc[lo:hi] = seg + int(offs[0])
        elif len(pts) == 2 and seg.min() >= xs[0] and seg.max() <= xs[1]:
            # one drift line between two sync points: the interpolation, without the search
            slope = (offs[1] - offs[0]) / (xs[1] - xs[0])
            line = seg - xs[0]  # float64, then worked in place
            line *= slope
            line += offs[0]
            np.rint(line, out=line)
            out = utc[lo:hi]
            out[:] = line  # exact: whole numbers
            out += seg
        else:
            off = np.interp(seg, xs, offs)
            np.rint(off, out=off)
            out = utc[lo:hi]
            out[:] = off  # exact: whole numbers
            out += seg
        if uncertain_seg[k]:
            uncertain[lo:hi] = True
            if hi > lo and kinds.get(lo) != "jump" and kinds.get(hi) != "jump":
                problems.append(
                    Problem(
                        "clock_uncertain",
                        f"{hi - lo} records from byte {int(offsets[lo])} have no clock sync point "
                        "of their own (next to a page gap): their times are estimated and marked "
                        "uncertain",
                        int(offsets[lo]),
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
                int(offsets[i]),
                None,
                "warning",
            )
        )
    return Timebase(utc, uncertain, problems)


CLOCK_CODES = (
    int(RecordCode.CLOCK_SET),
    int(RecordCode.PUMP_RESET),
    int(RecordCode.TELEMETRY_START),
)
