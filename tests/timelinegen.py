"""Random pump timelines with ground truth, written from ``docs/log-format.md`` alone.

This generator is independent of the simulated pump (``itb_device``) and of the analysis
(``analysis``): it knows the format only through the documentation (sections 1-12, chiefly
section 12 "What a pump writes" and 12.12 "not delivering") and writes logs with
:func:`parsers.write_log` / :func:`parsers.pack_ring`.  Record builders come from
``logfactory`` (``rec``).

Each case (:func:`generate`, a pure function of its seed) is

* a pump (20 or 40 mL), a drug concentration, a simple-continuous program (50-900 mcg/day),
  sometimes a program change days before;
* hourly delivery rows (``interval_s`` 3600) tiling the pump's running time from a random
  history start, ending on the hour or at a random minute and second (12.1);
* several days of history, an MRI or diathermy window and an interrogation 2-4 h after the
  procedure ended, with the interrogating session's own ``telemetry_start`` (12.7);
* one "truth" scenario (normal, MRI stall in several variants, silent rotor stop, stop with no
  record, stalled status with damaged or truncated history, over-delivery after diathermy,
  empty reservoir, large dose cut) and sometimes damage or a wrapped ring;
* the ground truth: :class:`Truth`.

The model (each rule cites the section it comes from):

* commanded volume = program rate integrated over the row, zero only under a stop (12.2);
* rotor volume = whole strokes of 0.00025 mL (the simulated pump's stroke, 12.2), the fraction
  carried to the next row; nothing while stalled; factor x commanded while over-delivering;
* ``stalled_s`` = seconds of the row the rotor stood still (or 0 in the "stalled_s zero"
  variants, which 12.11 says an analyst must tolerate);
* reservoir estimate debited by counted strokes, never below 0, set to ``volume_added`` by a
  refill; rows carry the estimate at their end, the status the estimate at interrogation (12.3);
* reservoir alarms checked at row ends, raised after the row (12.1, 12.5);
* stall records: ``motor_stall`` + ``alarm_raised motor_stall`` when the rotor stops,
  ``motor_stall_recovery`` (``stall_s``) + ``alarm_cleared`` when it turns again (12.2);
  a delayed recovery record is simply absent (the second interrogation after has not come);
  a recovery made by the interrogation is stamped with the session's ``telemetry_start``;
* status ``motor_state`` follows the rotor; ``active_alarms`` the replayed alarm records,
  except in the "inconsistent status" variants (12.6);
* programs only in sessions (``telemetry_start`` ... ``telemetry_end``); refills only in
  sessions; the interrogating session has no ``telemetry_end`` (12.4, 12.7, 12.8).

Run ``python tests/timelinegen.py SEED [OUT.itblog]`` to print a case (and write its log).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import parsers
from parsers import Header, LogImage, Record, RecordCode, Status
from parsers.model import ITB_EPOCH
from parsers.writer import encode_log

try:  # pytest puts tests/ on sys.path; as a script, this file's folder is on it
    import logfactory as lf
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import logfactory as lf

MIN = 60
HOUR = 3600
DAY = 86_400
ROW_S = 3600  # interval_s of every row
STROKE_ML = 0.00025  # the simulated pump's stroke (12.2: "an assumption"); a whole number per row
EMPTY_ML = 0.5  # [pump] empty_reservoir_ml
LOW_ALARM_ML = 2.0  # status low_reservoir_alarm_ml we write
COMMANDED_NONE_FRACTION = 0.1  # [delivery] commanded_none_fraction
MIN_EXCESS_ML = 0.0005  # [delivery] min_excess_ml
CRITICAL_ALARMS = frozenset({"empty_reservoir", "eos", "motor_stall", "memory_error", "low_battery_reset"})
PAGES_START = 384
T_BASE = 820_000_000  # 2025-12-24 (ITB clock): interrogations fall in 2026

SCENARIOS: tuple[tuple[str, int], ...] = (
    ("normal", 22),
    ("stall", 26),
    ("silent_rotor_zero", 9),
    ("stop_no_record", 10),
    ("status_stalled_damaged", 8),
    ("over_delivery", 9),
    ("empty_reservoir", 8),
    ("dose_cut", 8),
)

# Sort keys for records written in the same second (12.1 "Order at an interval's end", 12.7).
_ORDER = {
    "row": 0,
    "res_alarm": 1,
    "stall": 2,
    "stall_alarm": 3,
    "tstart": 4,
    "recovery": 5,
    "recovery_alarm": 6,
    "prescription": 7,
    "refill": 8,
    "tend": 10,
}


def utc(u: float) -> dt.datetime:
    """UTC seconds since the ITB epoch as an aware datetime."""
    return ITB_EPOCH + dt.timedelta(seconds=float(u))


# ---------------------------------------------------------------------------------------------
# The physical timeline: piecewise-constant rates between breakpoints


@dataclass(frozen=True)
class Span:
    """A stretch of time where the pump does something other than run its program.

    kind: ``stall`` (rotor still, commanded goes on), ``stop`` (nothing commanded, rotor
    still), ``fast`` (rotor at ``factor`` x commanded), ``empty`` (strokes counted but no drug
    leaves: the estimate is at or below the empty level).  ``b`` None: to the interrogation and
    beyond.
    """

    kind: str
    a: float
    b: float | None
    factor: float = 1.0
    count_stalled_s: bool = True
    pinned_start: bool = False  # a record marks the start (motor_stall)
    pinned_end: bool = False  # a record marks the end (motor_stall_recovery)

    def covers(self, u: float) -> bool:
        return self.a <= u and (self.b is None or u < self.b)


@dataclass
class Timeline:
    H0: int  # history start (UTC s); the first row ends at H0 + ROW_S
    T: int  # interrogation (programmer UTC)
    conc: float  # mcg/mL, program and reservoir
    programs: list[tuple[float, float]]  # (from UTC s, daily dose mcg/day), first from -inf
    spans: list[Span] = field(default_factory=list)

    def breakpoints(self) -> list[float]:
        pts = {p for p, _ in self.programs if math.isfinite(p)}
        for s in self.spans:
            pts.add(s.a)
            if s.b is not None:
                pts.add(s.b)
        return sorted(pts)

    def dose(self, u: float) -> float:
        d = self.programs[0][1]
        for p, dd in self.programs:
            if u >= p:
                d = dd
        return d

    def _in(self, kind: str, u: float) -> Span | None:
        for s in self.spans:
            if s.kind == kind and s.covers(u):
                return s
        return None

    def cmd_rate(self, u: float) -> float:  # mL/day
        return 0.0 if self._in("stop", u) else self.dose(u) / self.conc

    def rotor_rate(self, u: float) -> float:
        if self._in("stall", u) or self._in("stop", u):
            return 0.0
        fast = self._in("fast", u)
        return self.cmd_rate(u) * (fast.factor if fast else 1.0)

    def delivered_rate(self, u: float) -> float:  # drug actually leaving, mL/day
        return 0.0 if self._in("empty", u) else self.rotor_rate(u)

    def stalled(self, u: float) -> float:
        s = self._in("stall", u)
        return 1.0 if (s is not None and s.count_stalled_s) else 0.0

    def integrate(self, f, a: float, b: float) -> float:
        """∫_a^b f(u) du for a piecewise-constant f (value taken mid-piece)."""
        if b <= a:
            return 0.0
        pts = [a] + [p for p in self.breakpoints() if a < p < b] + [b]
        return sum(f((x + y) / 2) * (y - x) for x, y in itertools.pairwise(pts))

    def rotor_ml(self, a: float, b: float) -> float:
        return self.integrate(self.rotor_rate, a, b) / DAY

    def missed_excess_mcg(self, a: float, b: float) -> tuple[float, float]:
        """Drug prescribed but not delivered, and delivered above the prescription, over [a, b]."""
        miss = self.integrate(lambda u: max(0.0, self.dose(u) - self.delivered_rate(u) * self.conc), a, b)
        exc = self.integrate(lambda u: max(0.0, self.delivered_rate(u) * self.conc - self.dose(u)), a, b)
        return miss / DAY, exc / DAY

    def prescribed_mcg(self, a: float, b: float) -> float:
        return self.integrate(self.dose, a, b) / DAY


# ---------------------------------------------------------------------------------------------
# Ground truth and the case


@dataclass
class Truth:
    scenario: str
    delivering_now: bool
    not_delivering_spans: list[tuple[dt.datetime, dt.datetime | None]]
    minutes_not_delivering_in_window: float
    damaged: bool
    missed_mcg: float  # truth, procedure (window) start to the interrogation
    excess_mcg: float
    missed_ambiguity_mcg: float  # what the log cannot place (row resolution), added to tolerance
    excess_ambiguity_mcg: float
    history_covers_window: bool
    #: sources in the (surviving) log that say the pump is not delivering at interrogation (12.12)
    log_not_delivering_now: list[str]
    normal: bool  # nothing in the log needs action: expect OK
    dose_cut_fraction: float | None = None  # recent large decrease (1 - new/old)
    dose_cut_hours_before: float | None = None
    over_delivery_factor: float | None = None  # rotor x program in/after diathermy
    over_delivery_minutes: float | None = None
    #: per not-delivering span: drug missed over the whole span (to the interrogation if ongoing)
    #: and what the log cannot place (boundaries with no record, at row resolution)
    span_missed_mcg: list[tuple[float, float]] = field(default_factory=list)
    history_start: dt.datetime | None = None  # start of the first row the file still holds


@dataclass
class Case:
    seed: int
    scenario: str
    params: dict
    kind: str
    proc_start: dt.datetime
    proc_end: dt.datetime
    start_arg: dt.datetime | None  # what the check is given as --start
    window_start: dt.datetime  # the check's window start (start_arg or end - default window)
    interrogated_at: dt.datetime
    daily_dose: float
    image: LogImage
    damage: tuple[str, int, int] | None  # ("flip", byte, bit) or ("truncate", n_bytes, 0)
    truth: Truth

    def data(self) -> bytes:
        raw = encode_log(self.image)
        if self.damage is None:
            return raw
        what, where, bit = self.damage
        if what == "flip":
            b = bytearray(raw)
            b[where] ^= 1 << bit
            return bytes(b)
        return raw[:where]

    def write(self, path: str | Path) -> Path:
        """The log file: written with ``parsers.write_log``, then damaged at byte level."""
        path = Path(path)
        parsers.write_log(path, self.image)
        if self.damage is not None:
            path.write_bytes(self.data())
        return path

    def describe(self) -> str:
        t = self.truth
        z = "%Y-%m-%d %H:%M:%S"
        lines = [
            f"seed={self.seed} scenario={self.scenario} "
            + " ".join(f"{k}={v}" for k, v in self.params.items()),
            f"  {self.kind} {self.proc_start:{z}}..{self.proc_end:{z}}Z "
            f"start_arg={'given' if self.start_arg else 'none'} window_start={self.window_start:{z}}Z "
            f"interrogated={self.interrogated_at:{z}}Z dose={self.daily_dose:.1f} mcg/day",
            f"  truth: delivering_now={t.delivering_now} min_not_delivering_in_window="
            f"{t.minutes_not_delivering_in_window:.0f} damaged={t.damaged} missed={t.missed_mcg:.2f}"
            f"(±amb {t.missed_ambiguity_mcg:.2f}) excess={t.excess_mcg:.2f} normal={t.normal} "
            f"log_not_delivering_now={t.log_not_delivering_now}",
            "  spans: "
            + ", ".join(
                f"{a:%m-%d %H:%M:%S}..{'ongoing' if b is None else f'{b:%m-%d %H:%M:%S}'}"
                for a, b in t.not_delivering_spans
            ),
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Building a case


def _choose_concentration(rng: random.Random, doses: list[float], model: int) -> tuple[float, int]:
    cap = {20: 0.7, 40: 1.6}
    for m in (model, 40):
        options = [c for c in (500.0, 1000.0, 2000.0) if min(doses) / c >= 0.05 and max(doses) / c <= cap[m]]
        if options:
            weights = {500.0: 1, 1000.0: 2, 2000.0: 3}
            return rng.choices(options, [weights[c] for c in options])[0], m
    raise ValueError(f"no concentration fits {doses}")


def _projection_ok(est_now: float, used_since_refill: float, rate: float) -> bool:
    """The worst-case projection of docs/clinical-rules.md [reservoir] stays 2 mL above the safe
    residual (4 mL) for a week: est - 14.5% of what was used - 7 days x rate x 1.145."""
    return est_now - 0.145 * used_since_refill - 7 * rate * 1.145 >= 6.0


def generate(seed: int) -> Case:
    rng = random.Random(seed)
    names, weights = zip(*SCENARIOS, strict=True)
    scen = rng.choices(names, weights)[0]
    p: dict = {}

    model = rng.choice([20, 40])
    kind = "diathermy" if scen == "over_delivery" else rng.choice(["mri", "mri", "diathermy"])

    # ---- times (UTC seconds since the ITB epoch)
    T = T_BASE + rng.randrange(0, 300 * DAY) + rng.randrange(DAY)
    off = rng.randint(-40, 40)  # pump clock - UTC (well inside max_clock_drift_min)
    after = rng.randint(2 * HOUR + 60, 4 * HOUR)
    E = T - after
    dur = rng.randint(20 * MIN, 90 * MIN) if kind == "mri" else rng.randint(60 * MIN, 240 * MIN)
    S = E - dur
    give_start = rng.random() < 0.85
    ws = S if give_start else E - (2 if kind == "mri" else 6) * HOUR
    hist_days = rng.uniform(3.2 if scen == "dose_cut" else 2.0, 7.0)
    H0 = ws - int(hist_days * DAY)
    on_hour = rng.random() < 0.35
    H0 -= H0 % HOUR if on_hour else rng.randrange(HOUR)
    p["phase"] = "on_hour" if on_hour else f"ends_at_:{(H0 % HOUR) // 60:02d}:{H0 % 60:02d}"
    p["clock_offset_s"] = off
    n_rows = (T - H0) // ROW_S
    last = H0 + n_rows * ROW_S  # end of the last row (<= T)
    T_ts = T - (0 if rng.random() < 0.4 else rng.randint(0, 180))  # interrogating session start

    # ---- program(s)
    d = round(rng.uniform(50, 900), 1)
    programs: list[tuple[float, float]] = [(-math.inf, d)]
    change_at = None
    if scen == "dose_cut":
        d_old = round(rng.uniform(300, 900), 1)
        d = round(max(50.0, d_old * rng.uniform(0.05, 0.5)), 1)
        change_at = T - int(rng.uniform(1.2, 2.5) * DAY)
        programs = [(-math.inf, d_old), (change_at, d)]
        p["dose_cut"] = f"{d_old}->{d}"
    elif rng.random() < 0.25:  # a titration step that the rules allow (4.1.4; < 30% decrease)
        if rng.random() < 0.6:
            d_prev = round(d / (1 + rng.uniform(0.05, 0.14)), 1)
        else:
            d_prev = round(d / (1 - rng.uniform(0.03, 0.2)), 1)
        if 50 <= d_prev <= 900:
            change_at = rng.randint(H0 + 14 * HOUR, ws - 20 * HOUR)
            programs = [(-math.inf, d_prev), (change_at, d)]
            p["program_change"] = f"{d_prev}->{d}"
    conc, model = _choose_concentration(rng, [dd for _, dd in programs], model)
    p["model_ml"] = model
    p["conc"] = conc
    tl = Timeline(H0, T, conc, programs)
    rate_now = d / conc

    # ---- the scenario's physical events and how the pump logs them
    recs: list[tuple[float, int, int, Record]] = []  # (utc, order, seq, record)
    seq = [0]

    def add(u: float, order: str, code: int, **values) -> None:
        seq[0] += 1
        recs.append((u, _ORDER[order], seq[0], lf.rec(code, round(u) + off, **values)))

    status_motor = "running"
    status_mode = "simple_continuous"
    status_alarm_extra: set[str] = set()  # alarm bits beyond what the records replay
    status_alarm_drop: set[str] = set()
    row_mode_stopped = False
    damage_kind = None
    allow_wrap = True
    empty_at = None
    over = None

    def stall_start() -> int:
        return S if rng.random() < 0.3 else S + rng.randint(0, dur)

    if scen in ("stall", "silent_rotor_zero", "status_stalled_damaged"):
        t_s = stall_start()
        if scen == "status_stalled_damaged":
            variant, records, stalled_ok = "never", True, rng.random() < 0.7
        elif scen == "silent_rotor_zero":
            variant = rng.choice(["recovered", "in_progress", "never", "never"])
            records, stalled_ok = False, False
        else:
            variant = rng.choice(
                [
                    "recovered",
                    "recovered",
                    "short",
                    "in_progress",
                    "never",
                    "never",
                    "delayed_record",
                    "telemetry_mode",
                ]
            )
            records = True if variant in ("delayed_record", "telemetry_mode") else rng.random() < 0.6
            stalled_ok = rng.random() < 0.6
        if variant == "in_progress" and T_ts - last <= 3 * MIN:
            variant = "never"
        if variant == "short" and t_s + 25 * MIN > last:
            variant = "recovered"
        R: float | None
        if variant == "recovered":
            R = rng.randint(t_s + 30 * MIN, last - 5 * MIN)
        elif variant == "short":
            R = t_s + rng.randint(5 * MIN, 25 * MIN)
        elif variant == "in_progress":
            R = rng.randint(last + MIN, T_ts - MIN)
        elif variant == "delayed_record":
            R = rng.randint(t_s + 30 * MIN, T_ts - MIN)
        elif variant == "telemetry_mode":
            R = T_ts
        else:
            R = None
        pinned_end = records and variant not in ("delayed_record", "never") and R is not None
        tl.spans.append(
            Span("stall", t_s, R, count_stalled_s=stalled_ok, pinned_start=records, pinned_end=pinned_end)
        )
        p.update(variant=variant, records=records, stalled_s="consistent" if stalled_ok else "zero")
        if records:
            add(t_s, "stall", RecordCode.MOTOR_STALL)
            add(t_s, "stall_alarm", RecordCode.ALARM_RAISED, alarm="motor_stall", value=0)
            if variant in ("recovered", "short", "in_progress", "telemetry_mode"):
                rec_order = "recovery"
                add(R, rec_order, RecordCode.MOTOR_STALL_RECOVERY, stall_s=int(R - t_s))
                add(R, "recovery_alarm", RecordCode.ALARM_CLEARED, alarm="motor_stall", value=0)
        if variant == "never":
            consistent = scen == "status_stalled_damaged" or rng.random() < 0.6
            p["status"] = "consistent" if consistent else "inconsistent_running"
            if consistent:
                status_motor = "stalled"  # 12.6: follows the rotor
                if not records and rng.random() < 0.5:
                    status_alarm_extra.add("motor_stall")
            elif not records and rng.random() < 0.3:
                status_alarm_extra.add("motor_stall")
        if scen == "status_stalled_damaged":
            damage_kind = rng.choice(["flip", "truncate"])
            allow_wrap = damage_kind == "flip"
    elif scen == "stop_no_record":
        t_s = stall_start()
        variant = rng.choice(["recovered", "in_progress", "never", "never"])
        if variant == "in_progress" and T_ts - last <= 3 * MIN:
            variant = "never"
        R = {
            "recovered": lambda: rng.randint(t_s + 30 * MIN, last - 5 * MIN),
            "in_progress": lambda: rng.randint(last + MIN, T_ts - MIN),
            "never": lambda: None,
        }[variant]()
        tl.spans.append(Span("stop", t_s, R))
        row_mode_stopped = rng.random() < 0.7
        p.update(variant=variant, row_mode="stopped" if row_mode_stopped else "program")
        if variant == "never":
            status_mode = "stopped" if rng.random() < 0.7 else "simple_continuous"
            p["status_mode"] = status_mode
    elif scen == "over_delivery":
        f = round(rng.uniform(1.3, 3.0), 2)
        t0 = S + rng.randint(0, dur + 30 * MIN)
        t0 = min(t0, last - 60 * MIN)
        t1 = min(t0 + rng.randint(90 * MIN, 150 * MIN), last)
        tl.spans.append(Span("fast", t0, t1, factor=f))
        over = (f, (t1 - t0) / 60)
        p.update(factor=f, fast_minutes=round((t1 - t0) / 60))
    elif scen == "empty_reservoir":
        if rng.random() < 0.3:
            empty_at = rng.randint(ws, last - 30 * MIN)
            p["empty"] = "in_window"
        else:
            empty_at = rng.randint(max(H0 + 6 * HOUR, ws - 3 * DAY), ws - 2 * HOUR)
            p["empty"] = "before_window"

    # ---- sessions in the history: refill, program change
    sid = [rng.randint(3, 60)]

    def session(u_start: float, body) -> None:
        sid[0] += 1
        add(u_start, "tstart", RecordCode.TELEMETRY_START, session_id=sid[0], programmer_clock=int(u_start))
        end = body(u_start)
        add(end + rng.randint(60, 600), "tend", RecordCode.TELEMETRY_END, session_id=sid[0])

    def prescription(u: float, dose: float) -> None:
        add(
            u,
            "prescription",
            RecordCode.PRESCRIPTION,
            mode="simple_continuous",
            step=255,
            step_count=0,
            override=0,
            daily_dose_mcg_day=dose,
            rate_ml_day=dose / conc,
            concentration_mcg_ml=conc,
            step_start_min=0,
        )

    if change_at is not None:
        old = programs[0][1]
        if change_at - H0 > 18 * HOUR and rng.random() < 0.4:  # an earlier record of the old program
            u_p = rng.randint(H0 + 13 * HOUR, int(change_at) - 4 * HOUR)
            session(u_p - rng.randint(30, 300), lambda u0, u_p=u_p: (prescription(u_p, old), u_p)[1])
            p["old_program_record"] = True
        session(change_at - rng.randint(30, 300), lambda u0: (prescription(change_at, d), change_at)[1])
    elif rng.random() < 0.3:
        u_p = rng.randint(H0 + 13 * HOUR, ws - 20 * HOUR)
        session(u_p - rng.randint(30, 300), lambda u0: (prescription(u_p, d), u_p)[1])
        p["program_record"] = True

    # ---- reservoir: refills and the estimate (12.3)
    def V(u: float) -> float:  # continuous rotor volume since H0, mL
        return tl.rotor_ml(H0, u)

    refills: list[tuple[float, float]] = []  # (utc, volume_added = new estimate)
    last_refill_u: float | None = None
    refill_in_history = scen != "empty_reservoir" and rng.random() < 0.5
    rate_old = programs[0][1] / conc
    est_start: float
    if scen == "empty_reservoir":
        est_start = EMPTY_ML + V(empty_at)
        if est_start > model - 0.3:
            raise AssertionError("history too long for the reservoir")  # not reached: rates are capped
        first_fill_days = min(170.0 - hist_days, (model - est_start) / rate_old)
        last_refill_u = H0 - first_fill_days * DAY
    else:
        used_hist = V(T)
        if not refill_in_history:
            est_now = 6.0 + 8 * rate_now + 0.145 * model + rng.uniform(0.5, 3.0)
            est_start = est_now + used_hist
            x_days = (model - est_start) / rate_old if est_start < model else 0
            if est_start > model - 0.5 or not _projection_ok(est_now, model - est_now, rate_now):
                refill_in_history = True
            else:
                last_refill_u = H0 - min(170.0 - hist_days, x_days) * DAY
        if refill_in_history:
            u_r = rng.randint(H0 + HOUR, H0 + 12 * HOUR)
            vol = round(model - rng.uniform(0, 1.0), 1)
            est_pre = 5.2 + 9.2 * rate_old + rng.uniform(0, 1.5)
            est_pre = min(est_pre, model - V(u_r) - 0.2)
            est_start = est_pre + V(u_r)
            refills.append((u_r, vol))
            last_refill_u = u_r
            est_now = vol - (V(T) - V(u_r))
            if scen in ("normal", "dose_cut") and not _projection_ok(est_now, vol - est_now, rate_now):
                raise AssertionError(f"seed {seed}: reservoir too small for {rate_now} mL/day")
            measured = round(est_pre, 1)

            def refill_body(u0: float, u_r=u_r, vol=vol, est_pre=est_pre, measured=measured) -> float:
                add(
                    u_r,
                    "refill",
                    RecordCode.REFILL,
                    volume_added_ml=vol,
                    expected_residual_ml=est_pre,
                    measured_residual_ml=measured,
                    concentration_mcg_ml=conc,
                    reservoir_ml=vol,
                )
                return u_r

            session(u_r - rng.randint(60, 600), refill_body)
    p["refill"] = "in_history" if refills else "before_history"

    # Empty-reservoir truth span: the continuous estimate reaches the empty level (12.3, 12.12-6)
    if empty_at is not None:
        tl.spans.append(Span("empty", empty_at, None))

    stroke_base = [(H0, est_start, 0)] + [(u, v, None) for u, v in refills]

    def strokes(u: float) -> int:
        return math.floor(V(u) / STROKE_ML + 1e-9)

    base_strokes = [(u, v, strokes(u)) for u, v, _ in stroke_base]

    def estimate(u: float) -> float:
        b = base_strokes[0]
        for item in base_strokes:
            if item[0] <= u:
                b = item
        return max(0.0, b[1] - STROKE_ML * (strokes(u) - b[2]))

    # ---- delivery rows and reservoir alarms at row ends (12.1, 12.5)
    active: set[str] = set()
    if est_start < LOW_ALARM_ML:
        active.add("low_reservoir")  # raised before the history: shows only in the status
    if est_start <= EMPTY_ML:
        active.add("empty_reservoir")
    prev_strokes = strokes(H0)
    for k in range(1, n_rows + 1):
        a, b = H0 + (k - 1) * ROW_S, H0 + k * ROW_S
        cmd = tl.integrate(tl.cmd_rate, a, b) / DAY
        n_b = strokes(b)
        rotor = (n_b - prev_strokes) * STROKE_ML
        prev_strokes = n_b
        stalled_s = round(tl.integrate(tl.stalled, a, b))
        est = estimate(b)
        mode = "stopped" if (row_mode_stopped and tl._in("stop", b - 1)) else "simple_continuous"
        add(
            b,
            "row",
            RecordCode.DELIVERY,
            interval_s=ROW_S,
            commanded_ml=cmd,
            rotor_ml=rotor,
            stalled_s=stalled_s,
            reservoir_ml=est,
            mode=mode,
        )
        for u_r, _v in refills:  # a refill clears the reservoir alarms (12.8)
            if a < u_r <= b:
                for al in sorted(active & {"low_reservoir", "empty_reservoir"}):
                    add(u_r, "refill", RecordCode.ALARM_CLEARED, alarm=al, value=0)
                active -= {"low_reservoir", "empty_reservoir"}
        if est < LOW_ALARM_ML and "low_reservoir" not in active:
            add(b, "res_alarm", RecordCode.ALARM_RAISED, alarm="low_reservoir", value=int(est * 1e6))
            active.add("low_reservoir")
        if est <= EMPTY_ML and "empty_reservoir" not in active:
            add(b, "res_alarm", RecordCode.ALARM_RAISED, alarm="empty_reservoir", value=int(est * 1e6))
            active.add("empty_reservoir")

    # ---- the interrogating session (12.7): telemetry_start, no telemetry_end
    sid[0] += 1
    add(T_ts, "tstart", RecordCode.TELEMETRY_START, session_id=sid[0], programmer_clock=int(T_ts))

    # ---- records in storage order, pages, ring
    recs.sort(key=lambda r: (r[0], r[1], r[2]))
    records = [r[3] for r in recs]
    page_size = rng.choice([256, 512, 1024])
    rpp = (page_size - 20) // 32
    total_pages = (len(records) + rpp - 1) // rpp
    ring_slots = total_pages + rng.randint(0, 40)
    if allow_wrap and rng.random() < 0.3:
        # drop pages wholly before ws - 36 h (the start of history loses its sessions, 12.10)
        keep_from_u = ws - 36 * HOUR
        first_keep = next(i for i, r in enumerate(recs) if r[0] >= keep_from_u) // rpp
        if first_keep >= 1:
            ring_slots = max(2, total_pages - rng.randint(1, first_keep))
            p["ring"] = f"wrapped({ring_slots}/{total_pages})"
    pages = parsers.pack_ring(records, page_size, ring_slots)
    kept_seqs = {pg.seq for pg in pages}
    file_index = {pg.seq: i for i, pg in enumerate(pages)}
    rec_seq = [i // rpp for i in range(len(records))]

    # ---- damage in the window (flip a bit in one page, or cut the file)
    damage = None
    lost_seqs: set[int] = set()
    if damage_kind is None and scen != "status_stalled_damaged" and rng.random() < 0.10:
        damage_kind = "flip"
    if damage_kind is not None:
        window_pages = sorted(
            {
                rec_seq[i]
                for i, r in enumerate(recs)
                if r[3].code == RecordCode.DELIVERY and r[0] > ws - HOUR and r[0] - ROW_S < T
            }
            & kept_seqs
        )
        if scen == "status_stalled_damaged" and rng.random() < 0.5:
            stall_pages = [rec_seq[i] for i, r in enumerate(recs) if r[3].code == RecordCode.MOTOR_STALL]
            ok = stall_pages and stall_pages[0] in kept_seqs
            target = stall_pages[0] if ok else rng.choice(window_pages)
        else:
            target = rng.choice(window_pages)
        idx = file_index[target]
        if damage_kind == "flip":
            count = len(pages[idx].records)
            byte = PAGES_START + idx * page_size + 16 + rng.randrange(32 * count)
            damage = ("flip", byte, rng.randrange(8))
            lost_seqs = {target}
        else:
            cut = PAGES_START + idx * page_size + rng.randrange(1, page_size)
            damage = ("truncate", cut, 0)
            lost_seqs = {s for s in kept_seqs if file_index[s] >= idx}
        p["damage"] = f"{damage_kind}(page seq {target})"
    surviving = [i for i in range(len(records)) if rec_seq[i] in kept_seqs and rec_seq[i] not in lost_seqs]

    # ---- status (12.6)
    replayed: set[str] = set(a for a in active)
    for r in records:  # stall alarms replayed in storage order
        if r.code == RecordCode.ALARM_RAISED and r.values["alarm"] == "motor_stall":
            replayed.add("motor_stall")
        if r.code == RecordCode.ALARM_CLEARED and r.values["alarm"] == "motor_stall":
            replayed.discard("motor_stall")
    alarms = (replayed | status_alarm_extra) - status_alarm_drop
    alarm_order = [
        "low_reservoir",
        "empty_reservoir",
        "eri",
        "eos",
        "motor_stall",
        "memory_error",
        "low_battery_reset",
    ]
    est_T = estimate(T)
    status = Status(
        reservoir_ml=round(est_T, 6),
        low_reservoir_alarm_ml=LOW_ALARM_ML,
        drug_name="baclofen",
        concentration_mcg_ml=conc,
        mode=status_mode,
        daily_dose_mcg_day=d,
        rate_ml_day=round(d / conc, 6),
        active_alarms=tuple(a for a in alarm_order if a in alarms),
        motor_state=status_motor,
        last_refill_clock=round(last_refill_u) + off if last_refill_u is not None else 0,
    )
    implant = (utc(T) - dt.timedelta(days=rng.randint(400, 2200))).date()
    header = Header(
        model_ml=model,
        serial=f"NGP{rng.randrange(10**6):06d}H",
        firmware="8637-2.1",
        implant_date=implant,
        pump_clock=T + off,
        programmer_clock=T,
        programmer_id="PRG-IND1",
        page_size=page_size,
        ring_slots=ring_slots,
        page_count=len(pages),
    )
    image = LogImage(header, status, pages)

    # ---- ground truth
    nd = sorted((s for s in tl.spans if s.kind in ("stall", "stop", "empty")), key=lambda s: s.a)
    merged: list[list] = []
    for s in nd:
        if merged and (merged[-1][1] is None or s.a <= merged[-1][1]):
            if merged[-1][1] is not None:
                merged[-1][1] = None if s.b is None else max(merged[-1][1], s.b)
        else:
            merged.append([s.a, s.b])
    spans_dt = [(utc(a), None if b is None or b > T else utc(b)) for a, b in merged]
    minutes = sum(max(0.0, min(T, T if b is None else b) - max(ws, a)) for a, b in merged) / 60
    delivering_now = not any(b is None or b > T for _a, b in merged)
    missed, excess = tl.missed_excess_mcg(ws, T)

    # What the log cannot place to better than one row (or the interval in progress)
    def cell(x: float) -> tuple[float, float]:
        if x >= last:
            return last, T
        k = int((x - H0) // ROW_S)
        return H0 + k * ROW_S, H0 + (k + 1) * ROW_S

    amb_m = amb_e = 0.0
    for s in tl.spans:
        for x, pinned in ((s.a, s.pinned_start), (s.b, s.pinned_end)):
            if x is None or x > T or x < ws - ROW_S or pinned:
                continue
            a, b = cell(x)
            if a >= last:  # the interval in progress: no row speaks (12.1)
                if s.kind != "fast":
                    amb_m += tl.prescribed_mcg(a, b)
            elif s.kind == "empty":  # volumes do not show it; the estimate at row ends does
                amb_m += tl.prescribed_mcg(a, b)
            elif a < ws < b:  # a row straddling the window start: its shortfall's place is unknown
                share = min(tl.prescribed_mcg(a, ws), tl.prescribed_mcg(ws, b))
                if s.kind == "fast":
                    amb_e += share * (s.factor - 1)
                else:
                    amb_m += share

    span_missed: list[tuple[float, float]] = []
    for a0, b0 in merged:
        m, _e = tl.missed_excess_mcg(a0, T if b0 is None else min(b0, T))
        amb = 0.0
        for sp in tl.spans:
            if sp.kind not in ("stall", "stop", "empty"):
                continue
            for x, pinned in ((sp.a, sp.pinned_start), (sp.b, sp.pinned_end)):
                if x is None or x > T or pinned:
                    continue
                a, b = cell(x)
                if a >= last or sp.kind == "empty":
                    amb += tl.prescribed_mcg(a, b)
        span_missed.append((m, amb))

    # Evidence in the surviving log that the pump is not delivering now (12.12)
    ev: list[str] = []
    if status.motor_state == "stalled":
        ev.append("status motor_state stalled")
    for a in status.active_alarms:
        if a in CRITICAL_ALARMS:
            ev.append(f"status alarm {a}")
    if status.reservoir_ml <= EMPTY_ML:
        ev.append("status reservoir at/below empty")
    if status.mode == "stopped" and status.daily_dose_mcg_day > 0:
        ev.append("status mode stopped (program not stopped)")
    lost_after = lambda s: any(q > s for q in lost_seqs)  # noqa: E731
    open_stall = None
    for i in surviving:
        r = records[i]
        if r.code == RecordCode.MOTOR_STALL:
            open_stall = i
        elif r.code == RecordCode.MOTOR_STALL_RECOVERY:
            open_stall = None
    if open_stall is not None and not lost_after(rec_seq[open_stall] - 1):
        ev.append("open motor_stall record")
    surviving_rows = [i for i in surviving if records[i].code == RecordCode.DELIVERY]
    if surviving_rows and not lost_after(rec_seq[surviving_rows[-1]]):
        # The whole last row shows no delivery (a partly short row may be the rotor restarting),
        # and no recovery record is stamped in it or after it.
        last_rec = records[surviving_rows[-1]]
        lr = last_rec.values
        prog_ml = rate_now * ROW_S / DAY
        later_recovery = any(
            records[i].code == RecordCode.MOTOR_STALL_RECOVERY
            and records[i].clock > last_rec.clock - lr["interval_s"]
            for i in surviving
        )
        shows = (
            (lr["rotor_ml"] <= STROKE_ML and lr["commanded_ml"] - lr["rotor_ml"] > MIN_EXCESS_ML)
            or lr["commanded_ml"] < COMMANDED_NONE_FRACTION * prog_ml
            or lr["stalled_s"] >= lr["interval_s"]
            or lr["reservoir_ml"] <= EMPTY_ML
        )
        if shows and not later_recovery:
            ev.append("rows show no delivery up to the last row")

    dose_cut = None
    if scen == "dose_cut":
        dose_cut = (1 - d / programs[0][1], (T - change_at) / HOUR)
    first_kept_row = next((records[i] for i in surviving if records[i].code == RecordCode.DELIVERY), None)
    covers = (
        damage is None and first_kept_row is not None and (first_kept_row.clock - off - ROW_S) <= ws - HOUR
    )
    truth = Truth(
        scenario=scen,
        delivering_now=delivering_now,
        not_delivering_spans=spans_dt,
        minutes_not_delivering_in_window=minutes,
        damaged=damage is not None,
        missed_mcg=missed,
        excess_mcg=excess,
        missed_ambiguity_mcg=amb_m,
        excess_ambiguity_mcg=amb_e,
        history_covers_window=covers,
        span_missed_mcg=span_missed,
        history_start=None if first_kept_row is None else utc(first_kept_row.clock - off - ROW_S),
        log_not_delivering_now=ev,
        normal=scen == "normal" and damage is None,
        dose_cut_fraction=None if dose_cut is None else dose_cut[0],
        dose_cut_hours_before=None if dose_cut is None else dose_cut[1],
        over_delivery_factor=None if over is None else over[0],
        over_delivery_minutes=None if over is None else over[1],
    )
    return Case(
        seed=seed,
        scenario=scen,
        params=p,
        kind=kind,
        proc_start=utc(S),
        proc_end=utc(E),
        start_arg=utc(S) if give_start else None,
        window_start=utc(ws),
        interrogated_at=utc(T),
        daily_dose=d,
        image=image,
        damage=damage,
        truth=truth,
    )


def check_command(case: Case, path: str) -> str:
    """The ``itb check`` command line that reproduces the case's check."""
    z = "%Y-%m-%dT%H:%M:%SZ"
    start = f" --start {case.start_arg:{z}}" if case.start_arg else ""
    return f"itb check {path} --after {case.kind} --end {case.proc_end:{z}}{start} --tz UTC"


if __name__ == "__main__":  # pragma: no cover
    c = generate(int(sys.argv[1]))
    print(c.describe())
    if len(sys.argv) > 2:
        c.write(sys.argv[2])
        print(check_command(c, sys.argv[2]))
