"""Typed episodes from the log's event table: programs (flex steps grouped), boluses (start
paired with end), refills, telemetry sessions, stall records, alarms, myPTM requests and
clock events.  Everything keeps the byte offsets of its records as evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from parsers import InterrogationLog, Status

from .timeutil import DAY, to_seconds

MIN_PER_DAY = 1440
FLEX_GROUP_S = 600  # flex step records of one program are written together, seconds apart


@dataclass(frozen=True)
class Step:
    """One step of a program: from ``start_min`` (UTC minutes after midnight) to the next step."""

    start_min: int
    daily_dose_mcg: float
    rate_ml_day: float


@dataclass(frozen=True)
class Program:
    """A prescription as programmed: mode, steps (one for a non-flex program), the concentration
    the clinician entered, and where it came from (``log``, ``status`` snapshot, or
    ``inferred`` from the commanded delivery when the log holds no program for a span)."""

    start_s: int
    mode: str
    steps: tuple[Step, ...]
    concentration_mcg_ml: float
    override: bool = False
    offsets: tuple[int, ...] = ()
    source: Literal["log", "status", "inferred"] = "log"
    complete: bool = True
    time_uncertain: bool = False

    @property
    def is_flex(self) -> bool:
        """True for a flex (time-of-day) program with several steps."""
        return self.mode == "flex" and len(self.steps) > 0

    def _durations(self) -> np.ndarray:
        starts = np.array([s.start_min for s in self.steps], dtype=float)
        nxt = np.roll(starts, -1)
        nxt[-1] = starts[0] + MIN_PER_DAY
        return (nxt - starts) / MIN_PER_DAY

    @property
    def daily_dose_mcg(self) -> float:
        """Drug per whole day in mcg (flex: time-weighted over the steps; stopped: 0)."""
        if self.mode == "stopped" or not self.steps:
            return 0.0
        if len(self.steps) == 1:
            return float(self.steps[0].daily_dose_mcg)
        w = self._durations()
        return float(np.dot(w, [s.daily_dose_mcg for s in self.steps]))

    @property
    def rate_ml_day(self) -> float:
        """Volume per whole day in mL."""
        if self.mode == "stopped" or not self.steps:
            return 0.0
        if len(self.steps) == 1:
            return float(self.steps[0].rate_ml_day)
        return float(np.dot(self._durations(), [s.rate_ml_day for s in self.steps]))


@dataclass(frozen=True)
class Bolus:
    """A bolus from its start record, with the end record when it was logged."""

    kind: str
    bolus_id: int
    start_s: int
    end_s: int | None
    dose_mcg: float
    volume_ml: float
    duration_s: int
    delivered_mcg: float | None
    delivered_ml: float | None
    completed: bool | None
    offsets: tuple[int, ...]

    @property
    def planned_end_s(self) -> int:
        """End as logged, else start plus the programmed duration."""
        return self.end_s if self.end_s is not None else self.start_s + max(self.duration_s, 1)

    @property
    def volume_given_ml(self) -> float:
        """Delivered volume if the end was logged, else the programmed volume."""
        return self.delivered_ml if self.delivered_ml is not None else self.volume_ml

    @property
    def dose_given_mcg(self) -> float:
        """Delivered dose (by the programmed concentration) if logged, else the programmed dose."""
        return self.delivered_mcg if self.delivered_mcg is not None else self.dose_mcg


@dataclass(frozen=True)
class Refill:
    """A reservoir refill."""

    time_s: int
    volume_added_ml: float
    expected_residual_ml: float
    measured_residual_ml: float
    concentration_mcg_ml: float
    reservoir_ml: float
    offset: int


@dataclass(frozen=True)
class Session:
    """A programmer (telemetry) session; ``end_s`` None if it has no end record."""

    session_id: int
    start_s: int
    end_s: int | None
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class Mark:
    """A point event (stall, recovery, myPTM request, clock set, reset, alarm) with its values."""

    time_s: int
    offset: int
    values: dict[str, Any] = field(default_factory=dict)
    uncertain: bool = False


@dataclass(frozen=True)
class AlarmSpan:
    """An alarm from raised to cleared (``cleared_s`` None if never cleared in the log)."""

    alarm: str
    raised_s: int
    cleared_s: int | None
    offsets: tuple[int, ...]


@dataclass
class Episodes:
    """Everything the event table says, typed and paired."""

    programs: list[Program] = field(default_factory=list)
    boluses: list[Bolus] = field(default_factory=list)
    refills: list[Refill] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    stalls: list[Mark] = field(default_factory=list)
    recoveries: list[Mark] = field(default_factory=list)
    ptm_requests: list[Mark] = field(default_factory=list)
    alarms: list[AlarmSpan] = field(default_factory=list)
    clock_sets: list[Mark] = field(default_factory=list)
    resets: list[Mark] = field(default_factory=list)
    unmatched_bolus_ends: list[Mark] = field(default_factory=list)

    def in_session(self, t: int, margin_s: int = 0, open_until: int | None = None) -> bool:
        """True if ``t`` falls inside a session (widened by ``margin_s``)."""
        for s in self.sessions:
            end = s.end_s if s.end_s is not None else (open_until if open_until is not None
                                                        else s.start_s + DAY)
            if s.start_s - margin_s <= t <= end + margin_s:
                return True
        return False


def _val(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


_FIELDS = {
    "prescription": ("mode", "step", "step_count", "override", "daily_dose_mcg_day", "rate_ml_day",
                     "concentration_mcg_ml", "step_start_min"),
    "bolus_start": ("kind", "bolus_id", "dose_mcg", "volume_ml", "duration_s"),
    "bolus_end": ("kind", "bolus_id", "dose_mcg", "volume_ml", "completed"),
    "ptm_request": ("granted", "reason", "count_today", "dose_mcg"),
    "refill": ("volume_added_ml", "expected_residual_ml", "measured_residual_ml",
               "concentration_mcg_ml", "reservoir_ml"),
    "alarm_raised": ("alarm", "value"),
    "alarm_cleared": ("alarm", "value"),
    "motor_stall": (),
    "motor_stall_recovery": ("stall_s",),
    "clock_set": ("old_clock", "new_clock"),
    "pump_reset": ("reset_reason", "clock_before"),
    "telemetry_start": ("session_id", "programmer_clock"),
    "telemetry_end": ("session_id",),
    "override_note": ("override_reason", "operator_id", "session_id"),
}


def _marks(events: pd.DataFrame) -> list[tuple[str, Mark]]:
    """(record name, Mark) for every known event record, in time order."""
    if events.empty:
        return []
    times = to_seconds(events["time_utc"])
    names = events["event"].astype(str).to_numpy()
    offsets = events["offset"].to_numpy()
    uncertain = events["time_uncertain"].to_numpy()
    needed = {f for fields in _FIELDS.values() for f in fields} & set(events.columns)
    cols = {c: events[c].to_numpy(dtype=object) for c in needed}
    out = []
    for i in range(len(events)):
        fields = _FIELDS.get(names[i])
        if fields is None:
            continue
        values = {f: _val(cols[f][i]) for f in fields}
        out.append((names[i], Mark(int(times[i]), int(offsets[i]), values, bool(uncertain[i]))))
    return out


def _program_from_group(group: list[Mark]) -> Program:
    first = group[0].values
    flex = first["step"] is not None and first["step"] != 255 and (first["step_count"] or 0) > 0
    steps = tuple(sorted(
        (Step(int(m.values["step_start_min"] or 0) if flex else 0,
              float(m.values["daily_dose_mcg_day"] or 0.0), float(m.values["rate_ml_day"] or 0.0))
         for m in group), key=lambda s: s.start_min))
    count = int(first["step_count"] or 0)
    return Program(
        start_s=group[0].time_s, mode=str(first["mode"]), steps=steps,
        concentration_mcg_ml=float(first["concentration_mcg_ml"] or 0.0),
        override=any(int(m.values["override"] or 0) == 1 for m in group),
        offsets=tuple(m.offset for m in group), source="log",
        complete=(not flex) or len(group) == count,
        time_uncertain=any(m.uncertain for m in group),
    )


def program_from_status(status: Status, start_s: int) -> Program:
    """The status snapshot's program, effective from ``start_s``.

    The snapshot's concentration is the drug in the reservoir; the concentration the
    program was entered with is its dose over its rate (the snapshot's when the rate is 0).
    """
    if status.mode == "flex" and status.flex_steps:
        steps = tuple(Step(int(s.start_min), float(s.daily_dose_mcg_day), float(s.rate_ml_day))
                      for s in sorted(status.flex_steps, key=lambda s: s.start_min))
    else:
        steps = (Step(0, float(status.daily_dose_mcg_day), float(status.rate_ml_day)),)
    entered = float(status.concentration_mcg_ml)
    with_rate = [s for s in steps if s.rate_ml_day > 0 and s.daily_dose_mcg > 0]
    if with_rate:
        entered = with_rate[0].daily_dose_mcg / with_rate[0].rate_ml_day
    mode = str(status.mode)
    if mode == "stopped" and with_rate:
        # the pump stopped itself (end of service, a fault) with its program unchanged: the
        # stored program is still the prescription (docs/log-format.md 12.4, 12.6)
        mode = "flex" if len(steps) > 1 else "simple_continuous"
    return Program(start_s, mode, steps, entered, source="status")


def collect(log: InterrogationLog, events: pd.DataFrame | None = None) -> Episodes:
    """Pair and type the event records of ``log`` (or of ``events``, a subset of them)."""
    ep = Episodes()
    group: list[Mark] = []
    open_boluses: dict[int, Mark] = {}
    open_sessions: dict[int, Mark] = {}
    open_alarms: dict[str, Mark] = {}
    bolus_rows: list[tuple[Mark, Mark | None]] = []

    def flush_group() -> None:
        if group:
            ep.programs.append(_program_from_group(group))
            group.clear()

    for name, m in _marks(log.events if events is None else events):
        v = m.values
        if name == "prescription":
            flex = v["step"] is not None and v["step"] != 255 and (v["step_count"] or 0) > 0
            if group:
                g0 = group[0].values
                same = (flex and g0["step"] != 255 and v["step"] not in
                        {x.values["step"] for x in group} and v["step_count"] == g0["step_count"]
                        and m.time_s - group[0].time_s <= FLEX_GROUP_S and v["step"] != 0)
                if not same:
                    flush_group()
            group.append(m)
            if not flex:
                flush_group()
            continue
        if name == "bolus_start":
            bid = int(v["bolus_id"] or 0)
            if bid in open_boluses:
                bolus_rows.append((open_boluses.pop(bid), None))
            open_boluses[bid] = m
        elif name == "bolus_end":
            bid = int(v["bolus_id"] or 0)
            start = open_boluses.pop(bid, None)
            if start is None:
                ep.unmatched_bolus_ends.append(m)
            else:
                bolus_rows.append((start, m))
        elif name == "refill":
            ep.refills.append(Refill(m.time_s, float(v["volume_added_ml"]),
                                     float(v["expected_residual_ml"]),
                                     float(v["measured_residual_ml"]),
                                     float(v["concentration_mcg_ml"]), float(v["reservoir_ml"]),
                                     m.offset))
        elif name == "telemetry_start":
            sid = int(v["session_id"] or 0)
            if sid in open_sessions:  # a start with no end: close it at the new start
                old = open_sessions.pop(sid)
                ep.sessions.append(Session(sid, old.time_s, None, (old.offset,)))
            open_sessions[sid] = m
        elif name == "telemetry_end":
            sid = int(v["session_id"] or 0)
            start = open_sessions.pop(sid, None)
            if start is not None:
                ep.sessions.append(Session(sid, start.time_s, m.time_s, (start.offset, m.offset)))
        elif name == "motor_stall":
            ep.stalls.append(m)
        elif name == "motor_stall_recovery":
            ep.recoveries.append(m)
        elif name == "ptm_request":
            ep.ptm_requests.append(m)
        elif name == "alarm_raised":
            a = str(v["alarm"])
            if a in open_alarms:
                continue  # raised again while active: keep the first
            open_alarms[a] = m
        elif name == "alarm_cleared":
            a = str(v["alarm"])
            start = open_alarms.pop(a, None)
            if start is not None:
                ep.alarms.append(AlarmSpan(a, start.time_s, m.time_s, (start.offset, m.offset)))
        elif name == "clock_set":
            ep.clock_sets.append(m)
        elif name == "pump_reset":
            ep.resets.append(m)
    flush_group()
    for m in open_boluses.values():
        bolus_rows.append((m, None))
    for sid, m in open_sessions.items():
        ep.sessions.append(Session(sid, m.time_s, None, (m.offset,)))
    for a, m in open_alarms.items():
        ep.alarms.append(AlarmSpan(a, m.time_s, None, (m.offset,)))
    for s, e in bolus_rows:
        sv = s.values
        ep.boluses.append(Bolus(
            kind=str(sv["kind"]), bolus_id=int(sv["bolus_id"] or 0), start_s=s.time_s,
            end_s=None if e is None else e.time_s, dose_mcg=float(sv["dose_mcg"] or 0.0),
            volume_ml=float(sv["volume_ml"] or 0.0), duration_s=int(sv["duration_s"] or 0),
            delivered_mcg=None if e is None else float(e.values["dose_mcg"] or 0.0),
            delivered_ml=None if e is None else float(e.values["volume_ml"] or 0.0),
            completed=None if e is None else bool(e.values["completed"]),
            offsets=(s.offset,) if e is None else (s.offset, e.offset),
        ))
    ep.boluses.sort(key=lambda b: b.start_s)
    ep.sessions.sort(key=lambda s: s.start_s)
    ep.alarms.sort(key=lambda a: a.raised_s)
    return ep
