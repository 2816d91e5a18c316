"""A simulated SynchroMed-II-style pump: a model of the device, not a log generator.

The model advances in sub-steps between events (history boundaries, flex-step changes,
boluses, exposures, faults).  In each sub-step the pump commands a volume from its
program, the rotor turns in discrete strokes (or not, when stalled), the pump debits its
*estimated* reservoir by the strokes it counted, and the drug that really leaves the
reservoir (strokes x the pump's true accuracy) travels down the catheter, which may be
kinked or leaking.  The pump logs what it can see; :class:`Truth` keeps what it cannot:
how much drug actually reached the intrathecal space, sub-step by sub-step.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from clinical.rules import Rules, get_rules
from parsers.model import Header, LogImage, Record, Status
from parsers.records import RecordCode

from .. import safety
from ..errors import PumpRefused
from ..prescription import DAY_MIN, MODES, PUMP_BOLUS_KINDS, Prescription
from .logmemory import LogMemory

DAY_S = 86_400
R = RecordCode
U32_MAX = 0xFFFF_FFFF
BOLUS_KEYS_KEPT = 64  # idempotency keys of the most recent boluses the pump remembers
_TEXT_FIELDS = {"serial": 16, "firmware": 12, "drug_name": 16}  # header/status text, bytes


@dataclass
class PtmSettings:
    """Patient-activated bolus (myPTM) settings."""

    enabled: bool = False
    dose_mcg: float = 0.0
    lockout_min: int = 0
    max_per_day: int = 0


@dataclass
class PumpConfig:
    """Fixed properties of one pump and its simulation."""

    model_ml: int = 20
    serial: str = "NGP000001"
    firmware: str = "SIM-1.0"
    implant_date: date = date(2024, 1, 1)
    drug_name: str = "baclofen"
    history_interval_s: int = 3600
    page_size: int = 1024
    ring_slots: int = 512
    stroke_ml: float = 0.00025  # volume of one rotor stroke (assumption: not in labeling)
    accuracy_factor: float | None = None  # true mL per counted mL; None: drawn from the seed
    clock_offset_s: float = 0.0  # pump clock minus UTC at the start
    clock_drift_ppm: float | None = None  # None: drawn from the seed
    low_reservoir_alarm_ml: float | None = None  # None: the rules' default
    battery_eri_utc: int | None = None  # when ERI is reached (ITB-epoch seconds), if in range
    ptm: PtmSettings = field(default_factory=PtmSettings)

    def __post_init__(self) -> None:
        for name, size in _TEXT_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > size or any(
                    not 0x20 <= ord(c) < 0x7F for c in value):
                raise ValueError(f"pump {name} {value!r} must be at most {size} printable ASCII "
                                 "characters (no control characters)")


@dataclass
class Truth:
    """What really happened, which the pump cannot see."""

    t0: list[int] = field(default_factory=list)
    t1: list[int] = field(default_factory=list)
    csf_mcg: list[float] = field(default_factory=list)  # reached the intrathecal space
    intended_mcg: list[float] = field(default_factory=list)  # what the clinician meant
    events: list[dict[str, Any]] = field(default_factory=list)
    pocket_mcg: float = 0.0  # drug injected into the pump pocket (systemic)

    def add_event(self, kind: str, start: int | None, end: int | None = None, **info: Any) -> dict:
        """Record a true event (times in ITB-epoch UTC seconds; a start of None: not known, as
        for intermittent stalls without any stall or failure time)."""
        ev = {"kind": kind, "start": start, "end": end, **info}
        self.events.append(ev)
        return ev


class SimulatedPump:
    """The pump's state and physics.  Times are true UTC seconds since 2000-01-01."""

    def __init__(
        self,
        config: PumpConfig,
        start: int,
        seed: int = 0,
        reservoir_ml: float = 0.0,
        concentration_mcg_ml: float = 2000.0,
        rules: Rules | Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = config
        self.rules = get_rules(rules)
        pump_rules = self.rules["pump"]
        self.rng = random.Random(seed)
        self.now = start
        self.accuracy = (
            config.accuracy_factor
            if config.accuracy_factor is not None
            else min(1.08, max(0.92, self.rng.gauss(0.995, 0.03)))
        )
        drift = (
            config.clock_drift_ppm if config.clock_drift_ppm is not None else self.rng.uniform(-20.0, 20.0)
        )
        self._drift = drift * 1e-6
        self._clock_utc0 = start
        self._clock_pump0 = start + config.clock_offset_s
        self.low_alarm_ml = (
            config.low_reservoir_alarm_ml
            if config.low_reservoir_alarm_ml is not None
            else pump_rules["low_reservoir_alarm_ml_default"]
        )
        self.empty_ml = pump_rules["empty_reservoir_ml"]
        self.min_rate = pump_rules["min_rate_ml_day"]
        self.max_rate = pump_rules["max_rate_ml_day"]
        self.minimum_rate_mode = pump_rules["minimum_rate_mode_ml_day"]
        self.eri_to_eos_s = int(pump_rules["eri_to_eos_days"]) * DAY_S
        self.max_conc = float(pump_rules["max_concentration_mcg_ml"])

        self.rx = Prescription(mode="stopped", concentration_mcg_ml=concentration_mcg_ml)
        self.intended_scale = 1.0
        self._profile = self._make_profile(self.rx)
        self.reservoir_true = reservoir_ml
        self.reservoir_est = reservoir_ml
        self.drug_conc = concentration_mcg_ml
        self.carry = 0.0
        self.bolus: dict[str, Any] | None = None
        self._bolus_id = 0
        self._bolus_keys: OrderedDict[int, dict[str, Any]] = OrderedDict()  # key -> the bolus it gave
        self.stall_reasons: set[str] = set()
        self.silent_stalls: set[str] = set()  # firmware faults: the rotor stops, nothing is logged
        self.halted = False  # firmware fault: nothing is commanded, nothing is logged
        self.stall_started: int | None = None
        self.stall_true_event: dict | None = None
        self.late_recovery_log = False
        self.pending_recovery: int | None = None
        self.pending_sessions = 0
        self.wait_for_telemetry: set[str] = set()
        self.rotor_factor = 1.0
        self.over_factor = 1.0
        self.kinked = False
        self.kink_store_mcg = 0.0
        self.surge_rate = 0.0
        self.leak_fraction = 0.0
        self.eri = False
        self.eos = False
        self.alarms: set[str] = set()
        self.in_telemetry = False
        self.session_id = 0
        self.last_refill_clock = 0
        self.eri_clock = 0
        self.ptm = config.ptm
        self._ptm_last: int | None = None
        self._ptm_day = -1
        self._ptm_count = 0
        self.memory = LogMemory(config.page_size, config.ring_slots)
        self.truth = Truth()
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._event_seq = 0
        self._h_cmd = self._h_rotor = 0.0
        self._h_stalled = 0
        self._next_history = start + config.history_interval_s
        if config.battery_eri_utc is not None:
            self.at(config.battery_eri_utc, self._reach_eri)

    # ----- clocks -------------------------------------------------------------------------
    def pump_clock(self, t: float | None = None) -> int:
        """The pump's own clock (seconds since 2000-01-01 by the pump) at true time ``t``."""
        t = self.now if t is None else t
        return int(self._clock_pump0 + (t - self._clock_utc0) * (1.0 + self._drift))

    def log(self, code: int, values: dict[str, Any] | None = None) -> None:
        """Write a record stamped with the pump clock now (held within the u32 stamp, so that
        the log stays encodable whatever the clock did)."""
        self.memory.append(Record(min(max(self.pump_clock(), 0), U32_MAX), int(code), values or {}))

    # ----- scheduling ---------------------------------------------------------------------
    def at(self, t: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the simulation reaches true time ``t``."""
        self._event_seq += 1
        heapq.heappush(self._events, (int(t), self._event_seq, fn))

    def advance_to(self, target: int) -> None:
        """Run the physics and every scheduled event up to true time ``target``."""
        events = self._events
        while self.now < target:
            nxt = min(target, self._next_history)
            if events and events[0][0] < nxt:
                nxt = max(events[0][0], self.now)
            if self.bolus is not None and self.bolus["end"] < nxt:
                nxt = max(self.bolus["end"], self.now)
            if nxt > self.now:
                self._step(self.now, nxt)
                self.now = nxt
            if self.now >= self._next_history:  # the interval ended before anything at its end
                self._write_history()
            if self.bolus is not None and self.bolus["end"] <= self.now:
                self._end_bolus(completed=True)
            while events and events[0][0] <= self.now:
                heapq.heappop(events)[2]()
        while events and events[0][0] <= self.now:
            heapq.heappop(events)[2]()

    # ----- physics ------------------------------------------------------------------------
    def _make_profile(self, rx: Prescription) -> tuple[list[int], list[float], float]:
        """Cumulative commanded volume over a pump-clock day (seconds -> mL)."""
        if rx.mode == "flex" and rx.flex_steps:
            steps = sorted(rx.flex_steps, key=lambda s: s.start_min)
            xs, cum, total = [0], [0.0], 0.0
            bounds = [s.start_min * 60 for s in steps] + [DAY_S]
            rate_at_midnight = steps[-1].daily_dose_mcg / rx.concentration_mcg_ml / DAY_S
            prev_x, prev_rate = 0, rate_at_midnight
            for s, b in zip(steps, bounds[:-1], strict=True):
                total += prev_rate * (b - prev_x)
                xs.append(b)
                cum.append(total)
                prev_x, prev_rate = b, s.daily_dose_mcg / rx.concentration_mcg_ml / DAY_S
            total += prev_rate * (DAY_S - prev_x)
            xs.append(DAY_S)
            cum.append(total)
            return xs, cum, total
        rate = 0.0
        if rx.mode == "simple_continuous":
            rate = rx.daily_dose_mcg / rx.concentration_mcg_ml
        elif rx.mode == "minimum_rate":
            rate = self.minimum_rate_mode
        return [0, DAY_S], [0.0, rate], rate

    def _cum(self, pc: float) -> float:
        xs, cum, total = self._profile
        day, x = divmod(pc, DAY_S)
        i = bisect.bisect_right(xs, x) - 1
        if i >= len(xs) - 1:
            i = len(xs) - 2
        frac = (x - xs[i]) / (xs[i + 1] - xs[i])
        return day * total + cum[i] + frac * (cum[i + 1] - cum[i])

    def _step(self, t0: int, t1: int) -> None:
        dt = t1 - t0
        basal = self._cum(self.pump_clock(t1)) - self._cum(self.pump_clock(t0))
        conc_rx = self.rx.concentration_mcg_ml
        intended = basal * conc_rx * self.intended_scale
        cmd = 0.0 if self.eos or self.halted else basal
        bol = 0.0
        if self.bolus is not None:
            bol = min(self.bolus["remaining"], self.bolus["rate"] * dt)
            self.bolus["remaining"] -= bol
            intended += bol * conc_rx
        cmd += bol
        if self.stall_reasons and not self.eos:
            rotor = 0.0
            self._h_stalled += dt
        elif self.silent_stalls:  # the rotor stands still and the firmware does not know it
            rotor = 0.0
        else:
            x = cmd * self.rotor_factor + self.carry
            strokes = math.floor(x / self.cfg.stroke_ml + 1e-9)
            rotor = strokes * self.cfg.stroke_ml
            self.carry = x - rotor
        self._h_cmd += cmd
        self._h_rotor += rotor
        self.reservoir_est = max(0.0, self.reservoir_est - rotor)
        pumped = rotor * self.accuracy * self.over_factor
        if pumped > self.reservoir_true:
            pumped = self.reservoir_true
        self.reservoir_true -= pumped
        mcg = pumped * self.drug_conc * (1.0 - self.leak_fraction)
        if self.kinked:
            self.kink_store_mcg += mcg
            mcg = 0.0
        elif self.kink_store_mcg > 0:
            surge = min(self.kink_store_mcg, self.surge_rate * dt)
            self.kink_store_mcg -= surge
            mcg += surge
        tr = self.truth
        tr.t0.append(t0)
        tr.t1.append(t1)
        tr.csf_mcg.append(mcg)
        tr.intended_mcg.append(intended)

    def _write_history(self) -> None:
        t = self._next_history
        self.log(
            R.DELIVERY,
            {
                "interval_s": self.cfg.history_interval_s,
                "commanded_ml": self._h_cmd,
                "rotor_ml": self._h_rotor,
                "stalled_s": self._h_stalled,
                "reservoir_ml": self.reservoir_est,
                "mode": "stopped" if self.eos else self.rx.mode,
            },
        )
        self._h_cmd = self._h_rotor = 0.0
        self._h_stalled = 0
        self._next_history = t + self.cfg.history_interval_s
        self._check_reservoir_alarms()

    def _check_reservoir_alarms(self) -> None:
        est_nl = int(self.reservoir_est * 1e6)
        if self.reservoir_est < self.low_alarm_ml and "low_reservoir" not in self.alarms:
            self._raise("low_reservoir", est_nl)
        if self.reservoir_est <= self.empty_ml and "empty_reservoir" not in self.alarms:
            self._raise("empty_reservoir", est_nl)
        if (
            self.reservoir_true <= 1e-9
            and self.rx.mode != "stopped"
            and not any(e["kind"] == "reservoir_empty_true" and e["end"] is None for e in self.truth.events)
        ):
            self.truth.add_event("reservoir_empty_true", self.now, None)

    def _raise(self, alarm: str, value: int = 0) -> None:
        self.alarms.add(alarm)
        self.log(R.ALARM_RAISED, {"alarm": alarm, "value": value})

    def _clear(self, alarm: str, value: int = 0) -> None:
        if alarm in self.alarms:
            self.alarms.discard(alarm)
            self.log(R.ALARM_CLEARED, {"alarm": alarm, "value": value})

    # ----- motor --------------------------------------------------------------------------
    def add_stall(self, reason: str) -> None:
        """A cause that stops the rotor begins (MRI field, worn gear, ...)."""
        if not self.stall_reasons:
            self.stall_started = self.now
            self.log(R.MOTOR_STALL)
            self._raise("motor_stall")
            self.stall_true_event = self.truth.add_event("motor_stall", self.now, None, cause=reason)
        self.stall_reasons.add(reason)

    def remove_stall(self, reason: str) -> None:
        """A stall cause ends; the rotor turns again when no cause is left."""
        self.stall_reasons.discard(reason)
        self.wait_for_telemetry.discard(reason)
        if self.stall_reasons or self.stall_started is None:
            return
        stall_s = self.now - self.stall_started
        if self.stall_true_event is not None:
            self.stall_true_event["end"] = self.now
        self.stall_started = None
        if self.late_recovery_log and not self.in_telemetry:
            self.pending_recovery = stall_s
            self.pending_sessions = 2  # logged only at the second interrogation from now
            self.truth.add_event("recovery_log_delayed", self.now, None)
        else:
            self.log(R.MOTOR_STALL_RECOVERY, {"stall_s": stall_s})
            self._clear("motor_stall")

    # ----- battery ------------------------------------------------------------------------
    def _reach_eri(self) -> None:
        self.eri = True
        self.eri_clock = self.pump_clock()
        self._raise("eri")
        self.truth.add_event("battery_eri", self.now, None)
        self.at(self.now + self.eri_to_eos_s, self._reach_eos)

    def _reach_eos(self) -> None:
        self.eos = True
        self._raise("eos")
        self.truth.add_event("battery_eos", self.now, None)

    # ----- telemetry and programming (the pump's side of each command) -------------------
    def telemetry_start(self) -> None:
        """A programmer session begins: a clock sync point, and pending logs are written."""
        self.in_telemetry = True
        self.session_id += 1
        self.log(R.TELEMETRY_START, {"session_id": self.session_id, "programmer_clock": self.now})
        self.pending_sessions -= 1
        if self.pending_recovery is not None and self.pending_sessions <= 0:
            self.log(R.MOTOR_STALL_RECOVERY, {"stall_s": self.pending_recovery})
            self._clear("motor_stall")
            self.pending_recovery = None
            self.late_recovery_log = False  # the interference that delayed the record is over
            for ev in self.truth.events:
                if ev["kind"] == "recovery_log_delayed" and ev["end"] is None:
                    ev["end"] = self.now
        for reason in list(self.wait_for_telemetry):
            self.remove_stall(reason)

    def telemetry_end(self) -> None:
        """The programmer session ends."""
        self.log(R.TELEMETRY_END, {"session_id": self.session_id})
        self.in_telemetry = False

    def _need_telemetry(self, what: str) -> None:
        if not self.in_telemetry:
            raise PumpRefused(f"{what} needs a telemetry session")

    def program(
        self,
        rx: Prescription,
        *,
        override: bool = False,
        intended_daily_dose_mcg: float | None = None,
        override_reason: str | None = None,
        operator_id: int | None = None,
    ) -> None:
        """Accept a new prescription, or refuse what the pump cannot do.

        Without ``override`` the pump makes its own checks too (the drug in the reservoir, the
        maximum daily dose, flex steps' rates: :func:`itb_device.safety.pump_prescription_problems`);
        an override needs ``override_reason`` (an OverrideReason name) and ``operator_id`` (the
        clinician's staff number), which the pump logs in an ``override_note`` record."""
        self._need_telemetry("programming")
        safety.check_prescription_values(rx, error=PumpRefused)
        safety.check_intended(intended_daily_dose_mcg, error=PumpRefused)
        if rx.mode not in MODES:
            raise PumpRefused(f"unknown infusion mode {rx.mode!r}; the pump knows {', '.join(MODES)}")
        if not 0 < rx.concentration_mcg_ml <= self.max_conc:
            raise PumpRefused(f"drug concentration must be above 0 and at most {self.max_conc} mcg/mL")
        if rx.mode == "flex":
            if not 1 <= len(rx.flex_steps) <= 13:
                raise PumpRefused("a flex program has 1 to 13 steps a day")
            starts = [s.start_min for s in rx.flex_steps]
            if len(set(starts)) != len(starts) or any(not 0 <= s < DAY_MIN for s in starts):
                raise PumpRefused("flex steps need distinct start times within the day")
            rates = [s.daily_dose_mcg / rx.concentration_mcg_ml for s in rx.flex_steps]
        elif rx.mode == "simple_continuous":
            rates = [rx.daily_dose_mcg / rx.concentration_mcg_ml]
        else:
            rates = []
        for r in rates:
            if not self.min_rate <= r <= self.max_rate:
                raise PumpRefused(
                    f"rate {r:.4f} mL/day is outside the pump's range {self.min_rate}-{self.max_rate} mL/day"
                )
        note: tuple[str, int] | None = None
        if override:
            note = safety.override_note(override_reason, operator_id, error=PumpRefused)
        else:
            problems = safety.pump_prescription_problems(
                rx, self.drug_conc, self.rules, self.minimum_rate_mode)
            if problems:
                raise PumpRefused("; ".join(problems) + " (the pump refuses this without an override)")
        self.rx = rx
        self._profile = self._make_profile(rx)
        total = rx.total_daily_dose_mcg(self.minimum_rate_mode)
        self.intended_scale = (
            intended_daily_dose_mcg / total if intended_daily_dose_mcg is not None and total > 0 else 1.0
        )
        if note is not None:
            self.log(R.OVERRIDE_NOTE, {"override_reason": note[0], "operator_id": note[1],
                                       "session_id": self.session_id})
        if rx.mode == "flex":
            steps = rx.status_flex_steps()
            for i, st in enumerate(steps):
                self.log(
                    R.PRESCRIPTION,
                    {
                        "mode": rx.mode,
                        "step": i,
                        "step_count": len(steps),
                        "override": int(override),
                        "daily_dose_mcg_day": st.daily_dose_mcg_day,
                        "rate_ml_day": st.rate_ml_day,
                        "concentration_mcg_ml": rx.concentration_mcg_ml,
                        "step_start_min": st.start_min,
                    },
                )
        else:
            self.log(
                R.PRESCRIPTION,
                {
                    "mode": rx.mode,
                    "step": 255,
                    "step_count": 0,
                    "override": int(override),
                    "daily_dose_mcg_day": total,
                    "rate_ml_day": rx.rate_ml_day(self.minimum_rate_mode),
                    "concentration_mcg_ml": rx.concentration_mcg_ml,
                    "step_start_min": 0,
                },
            )

    def refill(
        self, volume_ml: float, concentration_mcg_ml: float, *, pocket_fill: bool = False
    ) -> tuple[float, float]:
        """Withdraw and measure the residual, inject new drug.  Returns (expected, measured)."""
        self._need_telemetry("a refill")
        safety.check_refill_values(volume_ml, concentration_mcg_ml, error=PumpRefused)
        if not 0 < concentration_mcg_ml <= self.max_conc:
            raise PumpRefused(
                f"drug concentration {concentration_mcg_ml:g} mcg/mL is not possible "
                f"(0 to {self.max_conc} mcg/mL)"
            )
        if not 0 < volume_ml <= self.cfg.model_ml:
            raise PumpRefused(f"refill volume {volume_ml} mL does not fit a {self.cfg.model_ml} mL reservoir")
        expected = self.reservoir_est
        measured = round(max(0.0, self.reservoir_true + self.rng.gauss(0.0, 0.05)), 1)
        self.reservoir_true = 0.0
        if pocket_fill:
            self.truth.pocket_mcg += volume_ml * concentration_mcg_ml
            self.truth.add_event("pocket_fill", self.now, None, mcg=volume_ml * concentration_mcg_ml)
        else:
            self.reservoir_true = volume_ml
        for ev in self.truth.events:
            if ev["kind"] == "reservoir_empty_true" and ev["end"] is None and not pocket_fill:
                ev["end"] = self.now
        self.reservoir_est = volume_ml
        self.drug_conc = concentration_mcg_ml
        self.last_refill_clock = self.pump_clock()
        self.log(
            R.REFILL,
            {
                "volume_added_ml": volume_ml,
                "expected_residual_ml": expected,
                "measured_residual_ml": measured,
                "concentration_mcg_ml": concentration_mcg_ml,
                "reservoir_ml": volume_ml,
            },
        )
        self._clear("low_reservoir")
        self._clear("empty_reservoir")
        return expected, measured

    def start_bolus(self, kind: str, dose_mcg: float, duration_s: int, key: int | None = None) -> int:
        """Begin a bolus; returns its id.  Refused if one is running, the drug is short, or the
        clinical rules' limit for its kind is exceeded.

        ``key`` (1 to 2**32-1) is the request's idempotency key: a bolus already given under the
        same key is not given again; its id is returned (the last 64 keys are remembered, across
        sessions)."""
        if key is not None:
            key = safety.integer(key, "bolus key", error=PumpRefused, low=1)
            given = self._bolus_keys.get(key)
            if given is not None:
                if (given["kind"], given["duration_s"]) != (kind, duration_s) or not math.isclose(
                        given["dose"], dose_mcg, rel_tol=1e-9, abs_tol=1e-9):
                    raise PumpRefused(f"bolus key {key:#010x} was used for another bolus")
                return int(given["id"])
        if kind not in PUMP_BOLUS_KINDS:
            raise PumpRefused(f"unknown bolus kind {kind!r}")
        dose_mcg = safety.number(dose_mcg, "bolus dose_mcg", error=PumpRefused, high=safety.MAX_DOSE_MCG,
                                 unit=" mcg")
        duration_s = round(safety.number(duration_s, "bolus duration_s", error=PumpRefused, high=U32_MAX,
                                         unit=" s"))
        limit = safety.bolus_limit_problem(kind, dose_mcg, duration_s, self.rules)
        if limit is not None:
            raise PumpRefused(limit)
        if self.bolus is not None:
            raise PumpRefused("a bolus is already running")
        if self.eos or self.rx.mode == "stopped":
            raise PumpRefused("the pump is stopped")
        volume = dose_mcg / self.rx.concentration_mcg_ml
        if volume > self.reservoir_est:
            raise PumpRefused(
                f"bolus volume {volume:.3f} mL exceeds the reservoir ({self.reservoir_est:.2f} mL)"
            )
        if duration_s <= 0:
            raise PumpRefused("bolus duration must be positive")
        self._bolus_id = (self._bolus_id + 1) % 65536
        self.bolus = {
            "id": self._bolus_id,
            "kind": kind,
            "dose": dose_mcg,
            "volume": volume,
            "remaining": volume,
            "rate": volume / duration_s,
            "end": self.now + duration_s,
        }
        self.log(
            R.BOLUS_START,
            {
                "kind": kind,
                "bolus_id": self._bolus_id,
                "dose_mcg": dose_mcg,
                "volume_ml": volume,
                "duration_s": duration_s,
            },
        )
        if key is not None:
            self._bolus_keys[key] = {"id": self._bolus_id, "kind": kind, "dose": dose_mcg,
                                     "duration_s": duration_s}
            while len(self._bolus_keys) > BOLUS_KEYS_KEPT:
                self._bolus_keys.popitem(last=False)
        return self._bolus_id

    def bolus_by_key(self, key: int) -> tuple[int, int]:
        """What became of the bolus requested under ``key``: ``(state, bolus id)`` with state 0
        (no bolus was given under this key: it never arrived, or was refused), 1 (given, still
        running) or 2 (given and ended)."""
        given = self._bolus_keys.get(key)
        if given is None:
            return 0, 0
        running = self.bolus is not None and self.bolus["id"] == given["id"]
        return (1 if running else 2), int(given["id"])

    def _end_bolus(self, completed: bool) -> None:
        b = self.bolus
        assert b is not None
        done = b["volume"] - b["remaining"]
        self.log(
            R.BOLUS_END,
            {
                "kind": b["kind"],
                "completed": int(completed),
                "bolus_id": b["id"],
                "dose_mcg": done * self.rx.concentration_mcg_ml,
                "volume_ml": done,
            },
        )
        self.bolus = None

    def ptm_request(self) -> bool:
        """A patient presses the myPTM button; returns whether a bolus was granted."""
        day = self.pump_clock() // DAY_S
        if day != self._ptm_day:
            self._ptm_day, self._ptm_count = day, 0
        reason = "granted"
        if not self.ptm.enabled:
            reason = "disabled"
        elif self.bolus is not None:
            reason = "bolus_in_progress"
        elif (
            self.eos
            or self.rx.mode == "stopped"
            or self.ptm.dose_mcg / self.rx.concentration_mcg_ml > self.reservoir_est
        ):
            reason = "not_available"
        elif self._ptm_last is not None and self.now - self._ptm_last < self.ptm.lockout_min * 60:
            reason = "lockout"
        elif self._ptm_count >= self.ptm.max_per_day:
            reason = "daily_maximum"
        granted = reason == "granted"
        if granted:
            self._ptm_count += 1
            self._ptm_last = self.now
        self.log(
            R.PTM_REQUEST,
            {
                "granted": int(granted),
                "reason": reason,
                "count_today": self._ptm_count,
                "dose_mcg": self.ptm.dose_mcg,
            },
        )
        if granted:
            self.start_bolus("patient", self.ptm.dose_mcg, 600)
        return granted

    def set_clock(self, utc: int | None = None) -> None:
        """Set the pump clock to UTC (the programmer's clock)."""
        self._need_telemetry("setting the clock")
        new = safety.check_clock(self.now if utc is None else utc, error=PumpRefused)
        old = self.pump_clock()
        self._clock_utc0, self._clock_pump0 = self.now, new
        self.log(R.CLOCK_SET, {"old_clock": min(max(old, 0), U32_MAX), "new_clock": new})

    def reset(self, reason: str = "watchdog") -> None:
        """The pump resets: its clock restarts from 0 (2000-01-01)."""
        before = self.pump_clock()
        self._clock_utc0, self._clock_pump0 = self.now, 0
        self.log(R.PUMP_RESET, {"reset_reason": reason, "clock_before": min(max(before, 0), U32_MAX)})
        self.truth.add_event("pump_reset", self.now, None, clock_before=before)

    # ----- what an interrogation reads ----------------------------------------------------
    def status(self) -> Status:
        """The status snapshot as the pump reports it."""
        rx = self.rx
        return Status(
            reservoir_ml=round(self.reservoir_est, 6),
            low_reservoir_alarm_ml=self.low_alarm_ml,
            drug_name=self.cfg.drug_name,
            concentration_mcg_ml=self.drug_conc,
            mode="stopped" if self.eos else rx.mode,
            daily_dose_mcg_day=round(rx.total_daily_dose_mcg(self.minimum_rate_mode), 3),
            rate_ml_day=round(rx.rate_ml_day(self.minimum_rate_mode), 6),
            flex_steps=rx.status_flex_steps() if rx.mode == "flex" else (),
            ptm_enabled=self.ptm.enabled,
            ptm_dose_mcg=self.ptm.dose_mcg,
            ptm_lockout_min=self.ptm.lockout_min,
            ptm_max_per_day=self.ptm.max_per_day,
            active_alarms=tuple(sorted(self.alarms)),
            battery_state="eos" if self.eos else "eri" if self.eri else "ok",
            motor_state="stalled" if self.stall_reasons else "running",
            last_refill_clock=self.last_refill_clock,
            eri_clock=self.eri_clock,
        )

    def log_image(self) -> LogImage:
        """Header, status and the log memory, as an interrogation reads them now."""
        header = Header(
            model_ml=self.cfg.model_ml,
            serial=self.cfg.serial,
            firmware=self.cfg.firmware,
            implant_date=self.cfg.implant_date,
            pump_clock=min(max(self.pump_clock(), 0), U32_MAX),
            programmer_clock=self.now,
            programmer_id="ITB-SIM",
            page_size=self.cfg.page_size,
            ring_slots=self.cfg.ring_slots,
        )
        return LogImage(header, self.status(), self.memory.pages())
