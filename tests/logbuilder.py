"""A hand-built-log factory for the analysis tests (Tidepool style: events by hand, no
simulator): logs written with ``parsers.write_log`` from the documented meaning of the format
(docs/log-format.md section 12), not through the simulated pump.

``LogBuilder`` collects programs, boluses, refills, stalls, alarms and clock changes at
chosen times, then ``write`` generates one DELIVERY row per interval from them (commanded
from the program and boluses, rotor from commanded minus stalls, reservoir estimate debited
by the rotor) and writes a real ``.itblog`` through ``parsers.write_log``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parsers import Header, LogImage, Record, RecordCode, Status, pack_ring, read_log, write_log
from parsers import format as fmt
from parsers.model import FlexStep, datetime_to_clock

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
H = 3600
D = 86_400
UNIX_ITB = 946_684_800


def iso(clock: int) -> str:
    """An ITB clock (UTC) as ISO text, for truth files and procedures."""
    return (dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=clock)).isoformat()


def unix(clock: int) -> int:
    """An ITB clock as Unix seconds (what findings carry)."""
    return clock + UNIX_ITB


@dataclass
class _Program:
    t: int
    mode: str
    steps: list[tuple[int, float]]  # (start_min, daily dose mcg)
    conc: float
    override: int = 0


@dataclass
class LogBuilder:
    """Times are ITB clock seconds in UTC; ``t(days=, hours=)`` gives one after ``start``."""

    start: dt.datetime = T0
    model_ml: int = 20
    reservoir_ml: float = 20.0
    concentration: float = 2000.0
    interval_s: int = 3600
    phase_s: int = 0  # delivery rows end this many seconds after start + k * interval_s
    page_size: int = 1024
    ring_slots: int = 512
    implant_date: dt.date = dt.date(2023, 1, 1)
    programs: list[_Program] = field(default_factory=list)
    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    boluses: list[tuple[int, int, float]] = field(default_factory=list)  # (t0, t1, volume_ml)
    refills: list[dict[str, Any]] = field(default_factory=list)
    stalls: list[tuple[int, int]] = field(default_factory=list)
    rotor_factors: list[tuple[int, int, float]] = field(default_factory=list)
    cmd_factors: list[tuple[int, int, float]] = field(default_factory=list)
    clock_jumps: list[tuple[int, int]] = field(default_factory=list)  # (utc, pump clock from then)
    auto_empty_alarm: bool = True
    _bolus_id: int = 0
    _session: int = 0

    @property
    def t0(self) -> int:
        return datetime_to_clock(self.start)

    def t(self, days: float = 0, hours: float = 0, minutes: float = 0) -> int:
        """A time after the start."""
        return self.t0 + int(days * D + hours * H + minutes * 60)

    # ----- events ------------------------------------------------------------------------
    def event(self, t: int, code: RecordCode, **values: Any) -> LogBuilder:
        """Any record at ``t``."""
        self.events.append((t, int(code), values))
        return self

    def session(self, t: int, duration_s: int = 300) -> LogBuilder:
        """A programmer session [t, t + duration]."""
        self._session += 1
        self.event(t, RecordCode.TELEMETRY_START, session_id=self._session,
                   programmer_clock=t)
        self.event(t + duration_s, RecordCode.TELEMETRY_END, session_id=self._session)
        return self

    def program(self, t: int, dose: float = 200.0, *, conc: float | None = None,
                mode: str = "simple_continuous", flex: list[tuple[int, float]] | None = None,
                override: int = 0, session: bool = True) -> LogBuilder:
        """A program change (flex: list of (start_min, daily dose)) in a session."""
        conc = self.concentration if conc is None else conc
        if session:
            self.session(t - 10)
        if flex:
            mode = "flex"
            steps = sorted(flex)
        else:
            steps = [(0, dose)]
        self.programs.append(_Program(t, mode, steps, conc, override))
        if mode == "flex":
            for i, (sm, d) in enumerate(steps):
                self.event(t, RecordCode.PRESCRIPTION, mode="flex", step=i, step_count=len(steps),
                           override=override, daily_dose_mcg_day=d, rate_ml_day=d / conc,
                           concentration_mcg_ml=conc, step_start_min=sm)
        else:
            d = 0.0 if mode == "stopped" else dose
            self.event(t, RecordCode.PRESCRIPTION, mode=mode, step=255, step_count=0,
                       override=override, daily_dose_mcg_day=d, rate_ml_day=d / conc,
                       concentration_mcg_ml=conc, step_start_min=0)
        return self

    def bolus(self, t: int, dose: float, *, kind: str = "clinician", duration_s: int = 60,
              session: bool | None = None, ptm_request: bool | None = None,
              conc: float | None = None) -> LogBuilder:
        """A bolus (by default with the session or myPTM request a real one has)."""
        conc = conc or self._program_at(t).conc
        vol = dose / conc
        self._bolus_id += 1
        if session is None:
            session = kind != "patient"
        if ptm_request is None:
            ptm_request = kind == "patient"
        if session:
            self.session(t - 30, duration_s + 60)
        if ptm_request:
            self.event(t, RecordCode.PTM_REQUEST, granted=1, reason="granted", count_today=1,
                       dose_mcg=dose)
        self.event(t, RecordCode.BOLUS_START, kind=kind, bolus_id=self._bolus_id, dose_mcg=dose,
                   volume_ml=vol, duration_s=duration_s)
        self.event(t + duration_s, RecordCode.BOLUS_END, kind=kind, completed=1,
                   bolus_id=self._bolus_id, dose_mcg=dose, volume_ml=vol)
        self.boluses.append((t, t + duration_s, vol))
        return self

    def refill(self, t: int, volume_ml: float = 20.0, *, measured: float | None = None,
               expected: float | None = None, conc: float | None = None) -> LogBuilder:
        """A refill in a session; ``measured`` defaults to the pump's estimate (no discrepancy)."""
        self.session(t - 60, 600)
        self.refills.append({"t": t, "volume": volume_ml, "measured": measured,
                             "expected": expected, "conc": conc or self.concentration})
        return self

    def stall(self, t0: int, t1: int | None, *, record: bool = True,
              recovery_at: int | str | None = "auto") -> LogBuilder:
        """The rotor stops from t0 to t1 (None: to the end); records as the pump logs them."""
        self.stalls.append((t0, t1 if t1 is not None else 2**40))
        if record:
            self.event(t0, RecordCode.MOTOR_STALL)
            self.event(t0, RecordCode.ALARM_RAISED, alarm="motor_stall", value=0)
        rec_t = t1 if recovery_at == "auto" else recovery_at
        if record and rec_t is not None:
            self.event(int(rec_t), RecordCode.MOTOR_STALL_RECOVERY, stall_s=int(rec_t) - t0)
            self.event(int(rec_t), RecordCode.ALARM_CLEARED, alarm="motor_stall", value=0)
        return self

    def alarm(self, t: int, name: str, cleared: int | None = None) -> LogBuilder:
        """An alarm raised at ``t`` (and cleared at ``cleared``)."""
        self.event(t, RecordCode.ALARM_RAISED, alarm=name, value=0)
        if cleared is not None:
            self.event(cleared, RecordCode.ALARM_CLEARED, alarm=name, value=0)
        return self

    def clock_jump(self, t: int, new_clock: int, kind: str | None = "reset") -> LogBuilder:
        """From ``t`` the pump clock reads ``new_clock`` (``reset``/``set`` log a record)."""
        old = self._clock(t)
        self.clock_jumps.append((t, new_clock))
        if kind == "reset":
            self.event(t, RecordCode.PUMP_RESET, reset_reason="watchdog", clock_before=old)
        elif kind == "set":
            self.event(t, RecordCode.CLOCK_SET, old_clock=old, new_clock=new_clock)
        return self

    # ----- generation ----------------------------------------------------------------------
    def _program_at(self, t: int) -> _Program:
        before = [p for p in self.programs if p.t <= t]
        if before:
            return max(before, key=lambda p: p.t)
        return _Program(self.t0, "stopped", [(0, 0.0)], self.concentration)

    def _clock(self, t: int) -> int:
        jumps = [j for j in self.clock_jumps if j[0] <= t]
        if not jumps:
            return t
        jt, nc = max(jumps)
        return nc + (t - jt)

    def _minute_rates(self, grid: np.ndarray) -> np.ndarray:
        """Commanded mL per minute on a minute grid (program by the pump clock + boluses)."""
        out = np.zeros(len(grid))
        pump = np.array([self._clock(int(t)) for t in grid]) if self.clock_jumps else grid
        for i, p in enumerate(sorted(self.programs, key=lambda p: p.t)):
            nxt = sorted(self.programs, key=lambda p: p.t)
            end = nxt[i + 1].t if i + 1 < len(nxt) else 2**40
            m = (grid >= p.t) & (grid < end)
            if p.mode == "stopped" or not m.any():
                continue
            mod = (pump[m] % D) // 60
            starts = np.array([s for s, _ in p.steps])
            doses = np.array([d for _, d in p.steps])
            k = np.searchsorted(starts, mod, side="right") - 1  # -1: last step (before midnight)
            out[m] = doses[k] / p.conc / 1440.0
        for t0, t1, vol in self.boluses:
            m = (grid >= t0) & (grid < t1)
            if m.any():
                out[m] += vol / m.sum()
        for t0, t1, f in self.cmd_factors:
            out[(grid >= t0) & (grid < t1)] *= f
        return out

    def write(self, path: Path, until: int, *, status: dict[str, Any] | None = None,
              damage_pages: tuple[int, ...] = (), header: dict[str, Any] | None = None,
              drop_after_write: bool = False) -> Path:
        """Generate delivery rows up to ``until`` (the interrogation) and write the file."""
        iv = self.interval_s
        first = self.t0 + self.phase_s
        n_rows = (until - first) // iv
        grid = np.arange(first, first + n_rows * iv, 60, dtype=np.int64)
        cmd_min = self._minute_rates(grid)
        stalled_min = np.zeros(len(grid), dtype=bool)
        for a, b in self.stalls:
            stalled_min |= (grid >= a) & (grid < b)
        rot_min = np.where(stalled_min, 0.0, cmd_min)
        for a, b, f in self.rotor_factors:
            m = (grid >= a) & (grid < b)
            rot_min[m] *= f
        recs: list[tuple[int, int, Record]] = []
        est = self.reservoir_ml
        refills = sorted(self.refills, key=lambda r: r["t"])
        ri = 0
        empty_raised = False
        for k in range(n_rows):
            a, b = first + k * iv, first + (k + 1) * iv
            sl = slice(k * (iv // 60), (k + 1) * (iv // 60))
            while ri < len(refills) and refills[ri]["t"] < b:
                r = refills[ri]
                frac_done = (r["t"] - a) / iv
                est_at = est - rot_min[sl].sum() * frac_done
                expected = r["expected"] if r["expected"] is not None else max(est_at, 0.0)
                measured = r["measured"] if r["measured"] is not None else round(expected, 1)
                recs.append((r["t"], 1, Record(self._clock(r["t"]), RecordCode.REFILL, {
                    "volume_added_ml": r["volume"], "expected_residual_ml": expected,
                    "measured_residual_ml": measured, "concentration_mcg_ml": r["conc"],
                    "reservoir_ml": r["volume"]})))
                if empty_raised:
                    recs.append((r["t"], 1, Record(self._clock(r["t"]), RecordCode.ALARM_CLEARED,
                                                   {"alarm": "empty_reservoir", "value": 0})))
                    empty_raised = False
                est = r["volume"] + rot_min[sl].sum() * frac_done
                ri += 1
            cmd, rot = cmd_min[sl].sum(), rot_min[sl].sum()
            est = max(0.0, est - rot)
            prog = self._program_at(b - 1)
            recs.append((b, 2, Record(self._clock(b), RecordCode.DELIVERY, {
                "interval_s": iv, "commanded_ml": cmd, "rotor_ml": rot,
                "stalled_s": int(stalled_min[sl].sum() * 60), "reservoir_ml": est,
                "mode": prog.mode})))
            if self.auto_empty_alarm and est <= 0.5 and not empty_raised:
                recs.append((b, 3, Record(self._clock(b), RecordCode.ALARM_RAISED,
                                          {"alarm": "empty_reservoir", "value": 0})))
                empty_raised = True
        for t, code, values in self.events:
            recs.append((t, 0, Record(self._clock(t), code, values)))
        recs.sort(key=lambda x: (x[0], x[1]))
        records = [r for _, _, r in recs]
        pages = pack_ring(records, self.page_size, self.ring_slots)
        last = self._program_at(until)
        flex = tuple(FlexStep(s, d, d / last.conc) for s, d in last.steps) \
            if last.mode == "flex" else ()
        drug = refills[-1]["conc"] if refills else self.concentration  # the reservoir's drug
        st = dict(reservoir_ml=round(est, 6), low_reservoir_alarm_ml=2.0, drug_name="baclofen",
                  concentration_mcg_ml=drug, mode=last.mode,
                  daily_dose_mcg_day=0.0 if last.mode == "stopped" else (
                      sum(d for _, d in last.steps) / len(last.steps)),
                  rate_ml_day=0.0 if last.mode == "stopped" else (
                      sum(d for _, d in last.steps) / len(last.steps) / last.conc),
                  flex_steps=flex,
                  last_refill_clock=self._clock(refills[-1]["t"]) if refills else 0)
        st.update(status or {})
        hd = dict(model_ml=self.model_ml, serial="TEST0001", firmware="T-1",
                  implant_date=self.implant_date, pump_clock=self._clock(until),
                  programmer_clock=until, page_size=self.page_size, ring_slots=self.ring_slots,
                  page_count=len(pages))
        hd.update(header or {})
        path = write_log(path, LogImage(Header(**hd), Status(**st), pages))
        if damage_pages:
            data = bytearray(path.read_bytes())
            start = fmt.HEADER_SIZE + fmt.STATUS_SIZE
            for i in damage_pages:
                data[start + i * self.page_size + 40] ^= 0xFF
            path.write_bytes(bytes(data))
        return path


def analyse_built(b: LogBuilder, tmp_path: Path, until: int, *, name: str = "log",
                  status: dict[str, Any] | None = None, damage_pages: tuple[int, ...] = (),
                  header: dict[str, Any] | None = None, **kwargs: Any):
    """Write ``b`` up to ``until`` and run ``analysis.analyse`` on it."""
    from analysis import analyse

    path = b.write(tmp_path / f"{name}.itblog", until, status=status, damage_pages=damage_pages,
                   header=header)
    return analyse(read_log(path), **kwargs)


def kinds(assessment: Any) -> list[str]:
    """Finding kinds of an assessment."""
    return [f.kind for f in assessment.findings]


def one(assessment: Any, kind: str) -> Any:
    """The single finding of ``kind`` (fails if there is not exactly one)."""
    found = [f for f in assessment.findings if f.kind == kind]
    assert len(found) == 1, f"expected one {kind}, got {[f.kind for f in assessment.findings]}"
    return found[0]
