"""The simulated pump's physics: delivery, quantisation, flex, reservoir, alarms, battery, myPTM.

Numbers are checked against the model's ground truth (``pump.truth`` sub-steps and
``sim.truth.hourly_delivery``), never against the analysis code.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pytest

from clinical.rules import get_rules
from itb_device import FlexDose, Prescription, PumpRefused
from itb_device.sim import exposures
from itb_device.sim.output import write_outputs
from itb_device.sim.pump import DAY_S, PtmSettings, PumpConfig, SimulatedPump
from itb_device.sim.scenario import run_scenario, scenario_from_dict
from itb_device.sim.truth import build_truth, hourly_delivery
from itb_device.sim_backend import SimProgrammer
from parsers import RecordCode
from parsers.model import Record
from parsers.writer import encode_log

RULES = get_rules()
START = 820_540_800  # 2026-01-01T00:00:00Z in ITB-epoch seconds
HOUR = 3600
STROKE = PumpConfig().stroke_ml


def test_start_constant():
    assert dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=START) == \
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make_pump(reservoir_ml: float = 20.0, concentration: float = 2000.0, seed: int = 0,
              **cfg: Any) -> SimulatedPump:
    """A pump with exact accuracy and no clock drift unless told otherwise."""
    cfg.setdefault("accuracy_factor", 1.0)
    cfg.setdefault("clock_drift_ppm", 0.0)
    return SimulatedPump(PumpConfig(**cfg), START, seed=seed, reservoir_ml=reservoir_ml,
                         concentration_mcg_ml=concentration)


def program(pump: SimulatedPump, rx: Prescription, **kw: Any) -> None:
    with SimProgrammer(pump) as prog:
        prog.program(rx, **kw)


def records(pump: SimulatedPump, code: int | None = None) -> list[Record]:
    pages = sorted(pump.memory.pages(), key=lambda p: p.seq)
    return [r for p in pages for r in p.records if code is None or r.code == code]


def history(pump: SimulatedPump) -> list[Record]:
    return records(pump, RecordCode.DELIVERY)


def truth_arrays(pump: SimulatedPump) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tr = pump.truth
    return (np.asarray(tr.t0), np.asarray(tr.t1), np.asarray(tr.csf_mcg),
            np.asarray(tr.intended_mcg))


def csf_between(pump: SimulatedPump, a: int, b: int) -> float:
    """Truth: mcg that reached the intrathecal space in sub-steps inside [a, b)."""
    t0, t1, csf, _ = truth_arrays(pump)
    inside = (t0 >= a) & (t1 <= b)
    return float(csf[inside].sum())


def scenario(timeline: list[dict[str, Any]], pump: dict[str, Any] | None = None,
             **extra: Any) -> Any:
    data = {"name": "t", "start": "2026-01-01T00:00:00Z",
            "pump": {"accuracy_factor": 1.0, "clock_drift_ppm": 0, **(pump or {})},
            "timeline": timeline, **extra}
    return scenario_from_dict(data)


# ----- determinism ---------------------------------------------------------------------------

SEEDED = {
    "name": "seeded", "start": "2026-01-01T09:00:00Z", "seed": 5,
    "drug": {"reservoir_ml": 15.0},
    "timeline": [
        {"at": "+0h", "action": "program", "daily_dose_mcg": 300},
        {"at": "+3d", "action": "mri", "duration_min": 40, "recovery": "minutes"},
        {"at": "+20d", "action": "refill", "volume_ml": 20},
        {"at": "+25d", "action": "interrogate"},
    ],
}


def test_same_scenario_and_seed_give_identical_bytes_and_truth(tmp_path):
    runs = [run_scenario(scenario_from_dict(SEEDED)) for _ in range(2)]
    assert encode_log(runs[0].image) == encode_log(runs[1].image)
    for i, r in enumerate(runs):
        write_outputs(r, tmp_path / f"{i}.itblog", tmp_path / f"{i}.json")
    assert (tmp_path / "0.itblog").read_bytes() == (tmp_path / "1.itblog").read_bytes()
    assert (tmp_path / "0.json").read_text() == (tmp_path / "1.json").read_text()
    assert json.loads((tmp_path / "0.json").read_text())["seed"] == 5


def test_a_different_seed_draws_a_different_pump():
    a = run_scenario(scenario_from_dict(SEEDED))
    b = run_scenario(scenario_from_dict(SEEDED), seed=6)
    assert a.seed == 5 and b.seed == 6
    assert a.pump.accuracy != b.pump.accuracy
    ta, tb = build_truth(a, RULES), build_truth(b, RULES)
    assert ta["pump_accuracy_factor"] != tb["pump_accuracy_factor"]
    assert ta["delivered_to_csf_mcg"] != tb["delivered_to_csf_mcg"]
    assert encode_log(a.image) != encode_log(b.image)


def test_the_drawn_accuracy_stays_within_its_bounds():
    acc = [SimulatedPump(PumpConfig(), START, seed=s).accuracy for s in range(200)]
    assert 0.92 <= min(acc) < 0.97 and 1.02 < max(acc) <= 1.08
    assert len(set(acc)) == 200


# ----- delivery ------------------------------------------------------------------------------

def test_delivery_over_days_matches_the_rate_within_one_stroke():
    pump = make_pump()
    program(pump, Prescription(daily_dose_mcg=300))  # 0.15 mL/day
    pump.advance_to(START + 10 * DAY_S)
    rows = [r.values for r in history(pump)]
    assert len(rows) == 240
    per_hour = 0.15 / 24
    for v in rows:
        assert v["interval_s"] == HOUR
        assert v["commanded_ml"] == pytest.approx(per_hour, abs=1e-12)
        assert abs(v["rotor_ml"] - v["commanded_ml"]) < STROKE
        assert v["rotor_ml"] / STROKE == pytest.approx(round(v["rotor_ml"] / STROKE), abs=1e-6)
        assert v["stalled_s"] == 0 and v["mode"] == "simple_continuous"
    rotor = sum(v["rotor_ml"] for v in rows)
    assert abs(rotor - 1.5) < STROKE
    assert csf_between(pump, START, START + 10 * DAY_S) == pytest.approx(2000 * rotor)
    assert abs(csf_between(pump, START, START + 10 * DAY_S) - 3000) < 2000 * STROKE


def test_pump_accuracy_is_invisible_in_the_log_but_not_in_the_truth():
    pump = make_pump(accuracy_factor=1.1)
    program(pump, Prescription(daily_dose_mcg=480))
    pump.advance_to(START + 5 * DAY_S)
    rotor = sum(r.values["rotor_ml"] for r in history(pump))
    assert abs(rotor - 1.2) < STROKE  # the log shows the programmed volume
    assert csf_between(pump, START, START + 5 * DAY_S) == pytest.approx(1.1 * 2000 * rotor)
    assert pump.reservoir_est == pytest.approx(20 - rotor)
    assert pump.reservoir_true == pytest.approx(20 - 1.1 * rotor)


def test_clock_drift_scales_commanded_volume_by_pump_time():
    pump = make_pump(clock_drift_ppm=20)
    program(pump, Prescription(daily_dose_mcg=800))  # 0.4 mL/day
    pump.advance_to(START + 50 * DAY_S)
    cmd = sum(r.values["commanded_ml"] for r in history(pump))
    assert cmd == pytest.approx(20 * (1 + 20e-6), rel=1e-7)
    last = history(pump)[-1]
    assert last.clock == START + 50 * DAY_S + 86  # 20 ppm of 50 days, truncated


FLEX = ((0, 240), (420, 300), (720, 260), (1200, 280))


def _dose_at(minute_of_day: float) -> float:
    dose = FLEX[-1][1]
    for start, d in FLEX:
        if minute_of_day >= start:
            dose = d
    return dose


def test_flex_commanded_volume_follows_the_steps_by_pump_clock():
    pump = make_pump(clock_offset_s=HOUR)  # the pump's clock runs an hour ahead of UTC
    program(pump, Prescription(mode="flex", flex_steps=tuple(FlexDose(s, d) for s, d in FLEX)))
    pump.advance_to(START + 2 * DAY_S)
    rows = history(pump)
    assert len(rows) == 48
    for r in rows:
        pump_minute = ((r.clock - HOUR) % DAY_S) / 60  # the interval's start by the pump clock
        expect = _dose_at(pump_minute) / 2000 / 24
        assert r.values["commanded_ml"] == pytest.approx(expect, abs=1e-12), pump_minute
        assert abs(r.values["rotor_ml"] - r.values["commanded_ml"]) < STROKE
    # the UTC hour 06:00-07:00 is 07:00-08:00 on the pump: already the 300 mcg/day step
    utc_6 = next(r for r in rows if r.clock - HOUR == START + 7 * HOUR)
    assert utc_6.values["commanded_ml"] == pytest.approx(300 / 2000 / 24)
    # the truth's intended drug follows the same steps; a day's total is the weighted dose
    _, _, csf, intended = truth_arrays(pump)
    total = Prescription(mode="flex", flex_steps=tuple(FlexDose(s, d) for s, d in FLEX))
    assert intended.sum() == pytest.approx(2 * total.total_daily_dose_mcg(), rel=1e-9)
    assert abs(csf.sum() - intended.sum()) < 2000 * STROKE


def test_flex_status_and_records():
    pump = make_pump()
    program(pump, Prescription(mode="flex", flex_steps=tuple(FlexDose(s, d) for s, d in FLEX)))
    st = pump.status()
    assert st.mode == "flex"
    assert [(s.start_min, s.daily_dose_mcg_day) for s in st.flex_steps] == list(FLEX)
    assert st.daily_dose_mcg_day == pytest.approx((240 * 420 + 300 * 300 + 260 * 480
                                                   + 280 * 240) / 1440, abs=1e-3)
    recs = [r.values for r in records(pump, RecordCode.PRESCRIPTION)]
    assert [(v["step"], v["step_count"], v["rate_ml_day"]) for v in recs] == [
        (i, 4, d / 2000) for i, (_, d) in enumerate(FLEX)]


def test_clinician_bolus_is_commanded_delivered_and_ended():
    pump = make_pump()
    program(pump, Prescription(daily_dose_mcg=240))
    pump.advance_to(START + 2 * HOUR)
    with SimProgrammer(pump) as prog:
        prog.bolus(100, duration_min=30)
    pump.advance_to(START + 4 * HOUR)
    rows = history(pump)
    hour3 = rows[2].values  # 02:00-03:00 holds the whole bolus
    assert hour3["commanded_ml"] == pytest.approx(0.005 + 0.05)
    assert abs(hour3["rotor_ml"] - hour3["commanded_ml"]) < STROKE
    end = records(pump, RecordCode.BOLUS_END)[0]
    assert end.clock == START + 2 * HOUR + 1800
    assert (end.values["completed"], end.values["dose_mcg"]) == (1, pytest.approx(100))
    delivered = csf_between(pump, START + 2 * HOUR, START + 2 * HOUR + 1800)
    assert abs(delivered - (100 + 240 / 48)) < 2000 * STROKE


# ----- reservoir -----------------------------------------------------------------------------

def test_the_reservoir_estimate_falls_by_rotor_confirmed_volume():
    pump = make_pump(accuracy_factor=0.95)
    program(pump, Prescription(daily_dose_mcg=500))
    exposures.diathermy(pump, START + DAY_S, 2 * HOUR, factor=2.0)
    pump.advance_to(START + 4 * DAY_S)
    est = 20.0
    for r in history(pump):
        est -= r.values["rotor_ml"]
        assert r.values["reservoir_ml"] == pytest.approx(est, abs=1e-9)
    assert pump.status().reservoir_ml == pytest.approx(est, abs=1e-6)
    rotor = 20.0 - est
    assert pump.reservoir_true == pytest.approx(20.0 - 0.95 * rotor)


def test_low_and_empty_alarms_follow_the_estimate():
    pump = make_pump(reservoir_ml=6.0)
    program(pump, Prescription(daily_dose_mcg=400))  # 0.2 mL/day
    pump.advance_to(START + 30 * DAY_S)
    low = RULES["pump"]["low_reservoir_alarm_ml_default"]
    empty = RULES["pump"]["empty_reservoir_ml"]
    raised = {r.values["alarm"]: r for r in records(pump, RecordCode.ALARM_RAISED)}
    assert set(raised) == {"low_reservoir", "empty_reservoir"}
    # raised at the first history row after the estimate crosses the threshold
    assert raised["low_reservoir"].clock == pytest.approx(START + (6 - low) / 0.2 * DAY_S,
                                                          abs=HOUR)
    assert raised["empty_reservoir"].clock == pytest.approx(START + (6 - empty) / 0.2 * DAY_S,
                                                            abs=HOUR)
    assert raised["low_reservoir"].values["value"] < low * 1e6
    assert pump.status().active_alarms == ("empty_reservoir", "low_reservoir")
    with SimProgrammer(pump) as prog:
        prog.refill(20, 2000)
    cleared = [r.values["alarm"] for r in records(pump, RecordCode.ALARM_CLEARED)]
    assert sorted(cleared) == ["empty_reservoir", "low_reservoir"]
    assert pump.status().active_alarms == ()


def test_over_infusion_empties_the_reservoir_before_any_alarm():
    pump = make_pump(reservoir_ml=6.0)
    program(pump, Prescription(daily_dose_mcg=400))  # 0.2 mL/day by the rotor
    exposures.over_infusion(pump, START, factor=2.0)  # 0.4 mL/day really leaves
    pump.advance_to(START + 30 * DAY_S)
    empty_true = [e for e in pump.truth.events if e["kind"] == "reservoir_empty_true"]
    assert len(empty_true) == 1 and empty_true[0]["end"] is None
    t_empty = empty_true[0]["start"]
    assert t_empty == pytest.approx(START + 15 * DAY_S, abs=HOUR)
    raised = {r.values["alarm"]: r.clock for r in records(pump, RecordCode.ALARM_RAISED)}
    assert t_empty < raised["low_reservoir"] < raised["empty_reservoir"]
    assert raised["empty_reservoir"] == pytest.approx(START + 27.5 * DAY_S, abs=HOUR)
    # nothing reaches the patient after the true reservoir is dry, the log looks normal
    assert csf_between(pump, t_empty, START + 30 * DAY_S) == pytest.approx(0, abs=1e-9)
    assert csf_between(pump, START, t_empty) == pytest.approx(6.0 * 2000)
    after = [r.values for r in history(pump) if r.clock > t_empty]
    assert all(v["rotor_ml"] > 0 and v["stalled_s"] == 0 for v in after)
    # the refill measures the truth: nothing left, while the pump expected 0 mL by 30 days
    with SimProgrammer(pump) as prog:
        res = prog.refill(20, 2000)
    assert res.measured_residual_ml == pytest.approx(0, abs=0.2)
    assert empty_true[0]["end"] == pump.now


def test_true_empty_reservoir_shows_in_the_scenario_truth():
    sc = scenario([
        {"at": "+0h", "action": "program", "daily_dose_mcg": 400},
        {"at": "+0h", "action": "over_infusion", "factor": 2.0},
        {"at": "+20d", "action": "interrogate"},
    ], drug={"reservoir_ml": 6.0})
    result = run_scenario(sc)
    truth = build_truth(result, RULES)
    ev = next(e for e in truth["true_events"] if e["kind"] == "reservoir_empty_true")
    assert ev["start_utc"].startswith("2026-01-16")
    hours, csf, intended = hourly_delivery(result)
    dry = hours >= START + 15 * DAY_S + HOUR
    assert csf[dry].sum() == 0 and intended[dry].sum() > 0
    assert truth["missed_mcg"] == pytest.approx(intended[dry].sum(), rel=0.02)
    assert truth["excess_mcg"] > 0  # twice the dose until it ran dry


# ----- battery -------------------------------------------------------------------------------

def test_eri_then_eos_exactly_the_labelled_days_later_then_delivery_stops():
    eos_days = RULES["pump"]["eri_to_eos_days"]
    assert eos_days == 90
    eri_at = START + 2 * DAY_S + 5 * HOUR
    pump = make_pump(model_ml=40, reservoir_ml=40.0, battery_eri_utc=eri_at)
    program(pump, Prescription(daily_dose_mcg=300))
    pump.advance_to(eri_at + (eos_days + 3) * DAY_S)
    raised = {r.values["alarm"]: r.clock for r in records(pump, RecordCode.ALARM_RAISED)}
    assert raised["eri"] == eri_at
    assert raised["eos"] - raised["eri"] == eos_days * DAY_S
    ev = {e["kind"]: e["start"] for e in pump.truth.events}
    assert ev["battery_eos"] - ev["battery_eri"] == eos_days * DAY_S
    eos = ev["battery_eos"]
    rows = history(pump)
    before = [r.values for r in rows if r.clock < eos]
    after = [r.values for r in rows if r.clock > eos]
    assert {v["mode"] for v in before} == {"simple_continuous"}
    assert len(after) == 3 * 24
    assert all(v["mode"] == "stopped" and v["commanded_ml"] == 0 and v["rotor_ml"] == 0
               for v in after)
    st = pump.status()
    assert (st.battery_state, st.mode, st.eri_clock) == ("eos", "stopped", eri_at)
    assert {"eri", "eos"} <= set(st.active_alarms)
    t0, _, csf, intended = truth_arrays(pump)
    stopped = t0 >= eos
    assert csf[stopped].sum() == 0
    assert intended[stopped].sum() == pytest.approx(3 * 300)
    with SimProgrammer(pump) as prog, pytest.raises(PumpRefused, match="stopped"):
        prog.bolus(50)


def test_eri_status_before_eos():
    pump = make_pump(battery_eri_utc=START + HOUR)
    program(pump, Prescription(daily_dose_mcg=300))
    pump.advance_to(START + 10 * DAY_S)
    st = pump.status()
    assert (st.battery_state, st.mode, st.active_alarms) == ("eri", "simple_continuous", ("eri",))
    assert history(pump)[-1].values["rotor_ml"] > 0


# ----- myPTM ---------------------------------------------------------------------------------

def ptm_pump(**ptm: Any) -> SimulatedPump:
    settings = {"enabled": True, "dose_mcg": 25.0, "lockout_min": 60, "max_per_day": 2, **ptm}
    pump = make_pump(ptm=PtmSettings(**settings))
    program(pump, Prescription(daily_dose_mcg=240))
    return pump


def ptm_log(pump: SimulatedPump) -> list[tuple[int, str, int]]:
    return [(r.values["granted"], r.values["reason"], r.values["count_today"])
            for r in records(pump, RecordCode.PTM_REQUEST)]


def test_ptm_granted_then_lockout_then_daily_maximum_then_a_new_day():
    pump = ptm_pump()
    t = START + 8 * HOUR
    outcomes = []
    for at in (t, t + 30 * 60, t + 61 * 60, t + 5 * HOUR, START + DAY_S + 8 * HOUR):
        pump.advance_to(at)
        outcomes.append(pump.ptm_request())
    assert outcomes == [True, False, True, False, True]
    assert ptm_log(pump) == [(1, "granted", 1), (0, "lockout", 1), (1, "granted", 2),
                             (0, "daily_maximum", 2), (1, "granted", 1)]
    assert all(r.values["dose_mcg"] == 25 for r in records(pump, RecordCode.PTM_REQUEST))


def test_a_granted_ptm_request_delivers_the_patient_bolus():
    pump = ptm_pump()
    t = START + 8 * HOUR
    pump.advance_to(t)
    assert pump.ptm_request()
    pump.advance_to(t + HOUR)
    start = records(pump, RecordCode.BOLUS_START)
    end = records(pump, RecordCode.BOLUS_END)
    assert [(r.clock, r.values["kind"], r.values["dose_mcg"]) for r in start] == [
        (t, "patient", 25)]
    assert [(r.clock, r.values["completed"]) for r in end] == [(t + 600, 1)]
    assert end[0].values["dose_mcg"] == pytest.approx(25)
    delivered = csf_between(pump, t, t + 600)
    assert abs(delivered - (25 + 240 * 600 / DAY_S)) < 2000 * STROKE


def test_ptm_disabled_and_bolus_in_progress():
    off = ptm_pump(enabled=False)
    assert off.ptm_request() is False
    busy = ptm_pump(lockout_min=0, max_per_day=5)
    assert busy.ptm_request() is True
    busy.advance_to(busy.now + 60)
    assert busy.ptm_request() is False
    assert ptm_log(off) == [(0, "disabled", 0)]
    assert ptm_log(busy) == [(1, "granted", 1), (0, "bolus_in_progress", 1)]


def test_ptm_request_on_a_nearly_empty_pump_is_denied_not_raised():
    pump = make_pump(reservoir_ml=0.005,
                     ptm=PtmSettings(enabled=True, dose_mcg=25, lockout_min=0, max_per_day=3))
    program(pump, Prescription(daily_dose_mcg=100))
    assert pump.ptm_request() is False
    assert ptm_log(pump)[-1][0] == 0


def test_history_rows_that_delivered_are_not_labelled_stopped():
    pump = make_pump(battery_eri_utc=START + 2 * HOUR)
    program(pump, Prescription(daily_dose_mcg=300))
    pump.advance_to(START + 2 * HOUR + RULES["pump"]["eri_to_eos_days"] * DAY_S + 2 * HOUR)
    bad = [(r.clock, r.values["rotor_ml"]) for r in history(pump)
           if r.values["mode"] == "stopped" and r.values["commanded_ml"] > 0]
    assert bad == []
