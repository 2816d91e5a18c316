"""Is the pump delivering? One reading of every piece of evidence, per delivery row and now.

A log says whether drug is flowing in three independent ways (docs/log-format.md section 12):

- **history**: each delivery row's commanded and rotor-confirmed volume, stalled seconds,
  reservoir estimate and mode;
- **logged**: motor-stall and recovery records, prescription records (a programmed stop),
  alarm records;
- **status**: what the pump reports about itself at interrogation (motor state, active
  alarms, reservoir, mode, battery).

The detectors do not hunt for one record: they read this state.  A row is *not delivering*
when any of its own fields says so (the rotor still, nothing commanded while the program asks
for drug, an empty reservoir), whatever the records say; the status is read as the state
*now*.  Where sources disagree the caller reports it and the more dangerous reading decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinical.rules import Rules
from parsers import InterrogationLog

from .findings import Finding, FindingDetails

#: Status alarms that mean the pump may not be delivering (docs/log-format.md section 12).
CRITICAL_ALARMS: tuple[str, ...] = ("motor_stall", "empty_reservoir", "eos", "low_battery_reset",
                                     "memory_error")


@dataclass(frozen=True)
class RowState:
    """Per delivery row (same order as ``Reconstruction.rows``), what its fields say."""

    rotor_still: np.ndarray  # the rotor stood still for part of the row (stalled_s, or short of commanded)
    stalled_s: np.ndarray  # seconds without rotation: stalled_s, or estimated from the rotor's deficit
    commanded_none: np.ndarray  # the pump commanded (almost) nothing while the program asks for drug
    stopped_mode: np.ndarray  # the row's mode is ``stopped``
    empty: np.ndarray  # the reservoir estimate is at or below the empty level
    interval_s: np.ndarray  # each row's length (s)
    stopped_s: np.ndarray  # seconds of the program's volume not commanded (a stop, estimated)
    still_fraction: float = 0.5  # ``rotor_still_fraction``: a row this much without rotation is "still"

    @property
    def mostly_still(self) -> np.ndarray:
        """Rows in which the rotor stood still for ``still_fraction`` of the row or more."""
        return self.rotor_still & (self.stalled_s >= self.still_fraction * self.interval_s)

    @property
    def mostly_stopped(self) -> np.ndarray:
        """Rows that commanded (almost) nothing, or whose mode is ``stopped``."""
        return self.commanded_none | self.stopped_mode

    @property
    def not_delivering(self) -> np.ndarray:
        """Rows in which, by their own fields, drug did not flow for most of the row."""
        return self.mostly_stopped | self.empty | self.mostly_still


def row_state(rows: pd.DataFrame, rules: Rules) -> RowState:
    """Read each delivery row on its own (no records, no status).

    A deficit counts only beyond the noise of counted strokes and timing: more than
    ``min_excess_ml`` and more than ``rotor_shortfall_fraction`` of the row.  Smaller,
    sustained deficits are the ``rotor_shortfall`` detector's business."""
    n = len(rows)
    if n == 0:
        z = np.zeros(0, dtype=bool)
        f = np.zeros(0)
        return RowState(z, f, z, z, z, f, f)
    none_frac = rules.number("delivery", "commanded_none_fraction")
    noise = rules.number("delivery", "rotor_shortfall_fraction")
    min_ml = rules.number("delivery", "min_excess_ml")
    empty_ml = rules.number("pump", "empty_reservoir_ml")
    iv = rows["interval_s"].to_numpy(dtype=float)
    cmd = rows["commanded_ml"].to_numpy(dtype=float)
    rot = rows["rotor_ml"].to_numpy(dtype=float)
    presc = rows["prescribed_ml"].to_numpy(dtype=float) if "prescribed_ml" in rows else cmd
    logged = rows["stalled_s"].to_numpy(dtype=float)
    mode = rows["mode"].astype(str).to_numpy()
    stopped_mode = mode == "stopped"
    # the rotor short of what was commanded beyond stroke rounding and timing: a stall the
    # row's stalled_s may not carry (docs/log-format.md 12.12)
    gap = cmd - rot
    short = (cmd > min_ml) & (gap > np.maximum(min_ml, noise * cmd))
    est = np.where(short, iv * np.clip(gap / np.where(cmd > 0, cmd, 1.0), 0.0, 1.0), 0.0)
    stalled = np.maximum(logged, est)
    rotor_still = stalled > 0
    # the pump commanding less than the program in effect asks for: a stop, record or not
    asks = presc > min_ml
    miss = presc - cmd
    stop_part = asks & (miss > np.maximum(min_ml, noise * presc))
    stopped = np.where(stop_part, iv * np.clip(miss / np.where(presc > 0, presc, 1.0), 0.0, 1.0), 0.0)
    stopped = np.where(stopped_mode & (cmd <= min_ml), iv, stopped)
    commanded_none = asks & ~stopped_mode & (cmd < none_frac * presc) & (miss > min_ml)
    empty = rows["reservoir_ml"].to_numpy(dtype=float) <= empty_ml
    return RowState(rotor_still, stalled, commanded_none, stopped_mode, empty, iv, stopped,
                    rules.number("delivery", "rotor_still_fraction"))


def stall_like_runs(short_s: np.ndarray, mostly: np.ndarray, joined: np.ndarray,
                    forced: np.ndarray, min_s: float) -> list[tuple[int, int]]:
    """(first, last) rows of each stall (or stop) the rows show.  A stall is a run of rows
    mostly without delivery (``mostly``), with the partial row on each side; or, with no such
    row, one or two adjacent rows with a deficit (``short_s`` > 0) and no deficit around them
    (a short stall across a row boundary).  It must add up to ``min_s`` or more, or hold a
    ``forced`` row (logged stalled seconds, a stop mode).  A longer run of partial deficits is
    not a stall but a sustained shortfall, left to the ``rotor_shortfall`` detector."""
    cand = short_s > 0
    n = len(short_s)
    out: list[tuple[int, int]] = []
    i = 0
    while i < n:  # maximal runs of adjacent rows with a deficit
        if not cand[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and cand[j + 1] and joined[j + 1]:
            j += 1
        pieces: list[tuple[int, int]] = []
        if mostly[i: j + 1].any():
            k = i
            while k <= j:
                if not mostly[k]:
                    k += 1
                    continue
                m = k
                while m + 1 <= j and mostly[m + 1]:
                    m += 1
                a = k - 1 if k - 1 >= i and not mostly[k - 1] else k
                b = m + 1 if m + 1 <= j and not mostly[m + 1] else m
                if pieces and a <= pieces[-1][1]:
                    a = pieces[-1][0]
                    pieces.pop()
                pieces.append((a, b))
                k = m + 1
        elif j - i <= 1:
            pieces.append((i, j))
        else:
            pieces += [(x, x) for x in range(i, j + 1) if forced[x]]
        out += [(a, b) for a, b in pieces if forced[a: b + 1].any() or short_s[a: b + 1].sum() >= min_s]
        i = j + 1
    return out


@dataclass(frozen=True)
class StatusNow:
    """What the pump reports about itself at interrogation (``known`` False: status damaged)."""

    known: bool
    motor_stalled: bool
    stopped: bool
    battery_eos: bool
    reservoir_empty: bool
    alarms: tuple[str, ...]

    @property
    def critical_alarms(self) -> tuple[str, ...]:
        """Active alarms that say the pump may not be delivering."""
        return tuple(a for a in self.alarms if a in CRITICAL_ALARMS)

    def not_delivering(self) -> list[str]:
        """Why the status says no drug is flowing now (empty if it does not say so)."""
        if not self.known:
            return []
        out = []
        if self.motor_stalled:
            out.append("the pump reports its motor STALLED now")
        if self.battery_eos:
            out.append("the pump reports its battery at end of service")
        elif self.stopped:
            out.append("the pump reports it is STOPPED now")
        if self.reservoir_empty:
            out.append("the pump reports its reservoir EMPTY now")
        return out


def status_now(log: InterrogationLog, rules: Rules) -> StatusNow:
    """The status snapshot read as the state at interrogation."""
    st = log.status
    if not log.status_ok:
        return StatusNow(False, False, False, False, False, ())
    empty_ml = rules.number("pump", "empty_reservoir_ml")
    alarms = tuple(str(a) for a in st.active_alarms)
    return StatusNow(
        known=True,
        motor_stalled=bool(st.motor_stalled),
        stopped=st.mode == "stopped",
        battery_eos=st.battery_state == "eos",
        reservoir_empty=float(st.reservoir_ml) <= empty_ml,
        alarms=alarms,
    )


#: Columns of :func:`delivery_spans`.
SPAN_COLUMNS = ("start_utc", "end_utc", "state", "source", "finding", "note")


def _source(kind: str, details: FindingDetails) -> str:
    notes = " ".join(str(x) for x in details.notes or ())
    if kind in ("motor_stall", "stall_ongoing"):
        if "status reports the motor STALLED" in notes:
            return "status"
        return "logged" if details.logged else "history"
    if kind == "pump_stopped":
        return {"programmed": "logged", "eos": "logged", "status": "status"}.get(details.how or "", "history")
    if kind == "battery_eos":
        return "status" if details.source == "status" else "logged"
    if kind == "refill_over_infusion":
        return "logged"
    return "history"


def delivery_spans(findings: list[Finding], window: tuple[int, int], status: StatusNow,
                   unknown: list[tuple[int, int]]) -> pd.DataFrame:
    """The delivery state over the analysed window, one row per span, each with the source
    that shows it: ``not_delivering`` (stall, stop, empty reservoir, drug that never reached
    the reservoir), ``over_delivering``, ``unknown`` (history missing or clock untrusted) and
    ``delivering`` for the rest.  Sources: ``logged`` (records), ``history`` (delivery rows),
    ``status`` (what the pump reports now), ``none``.  A not-delivering span still open at
    interrogation while the status reports the pump running carries a note that they
    disagree.  Spans may overlap (a stall inside an unknown span); ``delivering`` fills only
    what no other span covers."""
    w0, w1 = window
    rows: list[tuple] = []
    for f in findings:
        if f.start_s is None:
            continue
        end = f.end_s if f.end_s is not None else w1
        drug_missing = f.kind == "refill_over_infusion" and f.details.drug_missing
        if f.kind in ("motor_stall", "pump_stopped", "empty_reservoir", "battery_eos") or drug_missing:
            note = ""
            if f.end_s is None and status.known and not status.not_delivering():
                note = "the status reports the pump running now: the sources disagree"
            rows.append((f.start_s, end, "not_delivering", _source(f.kind, f.details), f.kind, note))
        elif f.kind == "over_delivery":
            rows.append((f.start_s, end, "over_delivering", "history", f.kind, ""))
    rows += [(a, b, "unknown", "none", "history_gap", "history missing, damaged or clock untrusted")
             for a, b in unknown]
    covered = sorted((r[0], r[1]) for r in rows)
    t = w0
    for a, b in covered:
        if a > t:
            rows.append((t, a, "delivering", "history", "", ""))
        t = max(t, b)
    if t < w1:
        rows.append((t, w1, "delivering", "history", "", ""))
    rows.sort(key=lambda r: (r[0], r[1]))
    df = pd.DataFrame(rows, columns=list(SPAN_COLUMNS))
    for c in ("start_utc", "end_utc"):
        df[c] = pd.to_datetime(df[c].astype("int64"), unit="s", utc=True)
    return df
