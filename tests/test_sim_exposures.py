"""Exposures and faults on the simulated pump: MRI, diathermy, stalls, kink, leak, clock reset,
pocket fill.  What the log shows is checked against what really happened (the truth)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clinical.rules import get_rules
from itb_device import Prescription
from itb_device.sim import exposures
from itb_device.sim.pump import DAY_S, PumpConfig, SimulatedPump
from itb_device.sim.scenario import ScenarioResult, run_scenario, scenario_from_dict
from itb_device.sim.truth import build_truth, hourly_delivery, minute_delivery
from itb_device.sim_backend import SimProgrammer
from parsers import RecordCode, read_log
from parsers.model import Record
from parsers.writer import encode_log, write_log

RULES = get_rules()
START = 820_540_800  # 2026-01-01T00:00:00Z
HOUR = 3600
STROKE = PumpConfig().stroke_ml
DOSE = 480  # mcg/day of 2000 mcg/mL: 0.24 mL/day, 0.01 mL (40 strokes) an hour


def make_pump(**cfg: Any) -> SimulatedPump:
    cfg.setdefault("accuracy_factor", 1.0)
    cfg.setdefault("clock_drift_ppm", 0.0)
    pump = SimulatedPump(PumpConfig(**cfg), START, seed=3, reservoir_ml=20.0)
    with SimProgrammer(pump) as prog:
        prog.program(Prescription(daily_dose_mcg=DOSE))
    return pump


def records(pump: SimulatedPump, code: int | None = None) -> list[Record]:
    pages = sorted(pump.memory.pages(), key=lambda p: p.seq)
    return [r for p in pages for r in p.records if code is None or r.code == code]


def rows_ending(pump: SimulatedPump, a: int, b: int) -> list[dict[str, Any]]:
    """Delivery-history values of the rows whose interval ends in (a, b] (no clock drift)."""
    return [r.values for r in records(pump, RecordCode.DELIVERY) if a < r.clock <= b]


def csf_between(pump: SimulatedPump, a: int, b: int) -> float:
    tr = pump.truth
    t0, t1, csf = np.asarray(tr.t0), np.asarray(tr.t1), np.asarray(tr.csf_mcg)
    return float(csf[(t0 >= a) & (t1 <= b)].sum())


def event(pump: SimulatedPump, kind: str) -> dict[str, Any]:
    (ev,) = [e for e in pump.truth.events if e["kind"] == kind]
    return ev


def session(pump: SimulatedPump) -> None:
    """A programmer interrogates the pump (a telemetry session opens and closes)."""
    with SimProgrammer(pump) as prog:
        prog.interrogate()


def scenario(timeline: list[dict[str, Any]], **extra: Any) -> ScenarioResult:
    data = {"name": "t", "start": "2026-01-01T00:00:00Z",
            "pump": {"accuracy_factor": 1.0, "clock_drift_ppm": 0},
            "timeline": [{"at": "+0h", "action": "program", "daily_dose_mcg": 300}, *timeline],
            **extra}
    return run_scenario(scenario_from_dict(data))


# ----- MRI -----------------------------------------------------------------------------------

T_MRI = START + DAY_S + 1800  # day 2, 00:30


def test_mri_stall_is_logged_stops_the_rotor_and_recovers():
    pump = make_pump()
    exposures.mri(pump, T_MRI, 5400, "minutes", delay_s=1800)  # rotor stopped 00:30-02:30
    pump.advance_to(T_MRI + 6 * HOUR)
    stall_s = 5400 + 1800
    assert [(r.clock, r.code) for r in records(pump) if r.code in (
        RecordCode.MOTOR_STALL, RecordCode.MOTOR_STALL_RECOVERY)] == [
        (T_MRI, RecordCode.MOTOR_STALL), (T_MRI + stall_s, RecordCode.MOTOR_STALL_RECOVERY)]
    assert records(pump, RecordCode.MOTOR_STALL_RECOVERY)[0].values == {"stall_s": stall_s}
    assert [(r.clock, r.values["alarm"]) for r in records(pump, RecordCode.ALARM_RAISED)] == [
        (T_MRI, "motor_stall")]
    assert [(r.clock, r.values["alarm"]) for r in records(pump, RecordCode.ALARM_CLEARED)] == [
        (T_MRI + stall_s, "motor_stall")]
    day2 = START + DAY_S
    h1, h2, h3, h4 = (rows_ending(pump, day2 + k * HOUR, day2 + (k + 1) * HOUR)[0]
                      for k in range(4))
    assert (h1["stalled_s"], h2["stalled_s"], h3["stalled_s"], h4["stalled_s"]) == (
        1800, 3600, 1800, 0)
    assert h2["rotor_ml"] == 0 and h2["commanded_ml"] == pytest.approx(0.01)
    assert abs(h1["rotor_ml"] - 0.005) <= STROKE and abs(h3["rotor_ml"] - 0.005) <= STROKE
    assert abs(h4["rotor_ml"] - 0.01) < STROKE  # no catch-up after the stall
    assert csf_between(pump, T_MRI, T_MRI + stall_s) == 0
    assert event(pump, "motor_stall") == {"kind": "motor_stall", "start": T_MRI,
                                          "end": T_MRI + stall_s, "cause": "mri"}
    assert event(pump, "mri")["end"] == T_MRI + 5400
    assert pump.status().motor_state == "running" and pump.status().active_alarms == ()


@pytest.mark.parametrize(("recovery", "lo", "hi"), [("minutes", 60, 1200),
                                                    ("hours", 2 * HOUR, 24 * HOUR)])
def test_mri_recovery_delay_is_drawn_in_its_range(recovery, lo, hi):
    delays = []
    for seed in range(8):
        pump = SimulatedPump(PumpConfig(accuracy_factor=1.0, clock_drift_ppm=0), START,
                             seed=seed, reservoir_ml=20.0)
        exposures.mri(pump, START + HOUR, 2400, recovery)
        pump.advance_to(START + 2 * DAY_S)
        (rec,) = records(pump, RecordCode.MOTOR_STALL_RECOVERY)
        delays.append(rec.values["stall_s"] - 2400)
        assert event(pump, "mri")["delay_s"] == delays[-1]
    assert all(lo <= d <= hi for d in delays)
    assert len(set(delays)) > 1


def test_mri_recovery_must_be_known():
    with pytest.raises(ValueError, match="MRI recovery must be one of"):
        exposures.mri(make_pump(), T_MRI, 600, "sometimes")


def test_mri_never_recovers():
    pump = make_pump()
    exposures.mri(pump, T_MRI, 2700, "never")
    pump.advance_to(T_MRI + DAY_S)
    session(pump)  # an interrogation does not restart a failed motor
    pump.advance_to(T_MRI + 2 * DAY_S)
    st = pump.status()
    assert st.motor_state == "stalled" and st.motor_stalled
    assert "motor_stall" in st.active_alarms
    assert records(pump, RecordCode.MOTOR_STALL_RECOVERY) == []
    later = rows_ending(pump, T_MRI + HOUR, T_MRI + 2 * DAY_S)
    assert len(later) == 47
    assert all(v["rotor_ml"] == 0 and v["stalled_s"] == HOUR for v in later)
    assert event(pump, "motor_stall")["end"] is None
    assert csf_between(pump, T_MRI, T_MRI + 2 * DAY_S) == 0


def test_mri_telemetry_mode_resumes_only_at_the_next_session():
    pump = make_pump()
    exposures.mri(pump, T_MRI, 2700, "telemetry")
    pump.advance_to(T_MRI + 600)
    session(pump)  # during the scan: no effect
    pump.advance_to(T_MRI + 6 * HOUR)
    assert pump.status().motor_state == "stalled"
    assert records(pump, RecordCode.MOTOR_STALL_RECOVERY) == []
    assert all(v["rotor_ml"] == 0 for v in rows_ending(pump, T_MRI + HOUR, T_MRI + 6 * HOUR))
    resume = pump.now
    session(pump)
    (rec,) = records(pump, RecordCode.MOTOR_STALL_RECOVERY)
    assert (rec.clock, rec.values["stall_s"]) == (resume, 6 * HOUR)
    assert pump.status().motor_state == "running"
    pump.advance_to(resume + 2 * HOUR)
    assert csf_between(pump, resume, resume + 2 * HOUR) == pytest.approx(2 * DOSE / 24, abs=1)
    assert event(pump, "motor_stall")["end"] == resume


def test_mri_late_log_delays_the_recovery_record_to_the_second_interrogation():
    pump = make_pump()
    exposures.mri(pump, T_MRI, 2400, "minutes", delay_s=600, late_log=True)
    recovered = T_MRI + 3000
    pump.advance_to(T_MRI + 3 * HOUR)
    # the rotor turns again although nothing says so
    assert records(pump, RecordCode.MOTOR_STALL_RECOVERY) == []
    assert pump.status().motor_state == "running"
    assert "motor_stall" in pump.status().active_alarms
    assert csf_between(pump, recovered, T_MRI + 3 * HOUR) > 0
    resumed = rows_ending(pump, T_MRI + 2 * HOUR, T_MRI + 3 * HOUR)[0]
    assert resumed["stalled_s"] == 0 and abs(resumed["rotor_ml"] - 0.01) < STROKE
    session(pump)  # first interrogation: still not logged
    assert records(pump, RecordCode.MOTOR_STALL_RECOVERY) == []
    pump.advance_to(T_MRI + 5 * HOUR)
    second = pump.now
    session(pump)
    (rec,) = records(pump, RecordCode.MOTOR_STALL_RECOVERY)
    assert (rec.clock, rec.values["stall_s"]) == (second, 3000)
    assert "motor_stall" not in pump.status().active_alarms
    assert event(pump, "motor_stall")["end"] == recovered
    delayed = event(pump, "recovery_log_delayed")
    assert (delayed["start"], delayed["end"]) == (recovered, second)


def test_late_log_applies_only_to_the_mri_that_asked_for_it():
    pump = make_pump()
    exposures.mri(pump, T_MRI, 2400, "minutes", delay_s=600, late_log=True)
    pump.advance_to(T_MRI + 3 * HOUR)
    session(pump)
    session(pump)
    assert len(records(pump, RecordCode.MOTOR_STALL_RECOVERY)) == 1
    later = T_MRI + 2 * DAY_S
    exposures.intermittent_stalls(pump, [(later, 1800)])
    pump.advance_to(later + 2 * HOUR)
    assert len(records(pump, RecordCode.MOTOR_STALL_RECOVERY)) == 2
    assert "motor_stall" not in pump.status().active_alarms


def test_intermittent_stalls_then_failure():
    pump = make_pump()
    t = START + DAY_S
    wins = [(t, 2400), (t + 26 * HOUR, 4500), (t + 49 * HOUR, 3300)]
    exposures.intermittent_stalls(pump, wins, failure_at=t + 70 * HOUR)
    pump.advance_to(t + 80 * HOUR)
    stalls = [r.clock for r in records(pump, RecordCode.MOTOR_STALL)]
    assert stalls == [w[0] for w in wins] + [t + 70 * HOUR]
    assert [r.values["stall_s"] for r in records(pump, RecordCode.MOTOR_STALL_RECOVERY)] == [
        2400, 4500, 3300]
    assert pump.status().motor_state == "stalled"
    ev = event(pump, "intermittent_stalls")
    assert (ev["start"], ev["end"], ev["count"]) == (t, t + 70 * HOUR, 3)
    assert sum(v["stalled_s"] for v in rows_ending(pump, t, t + 80 * HOUR)) == \
        2400 + 4500 + 3300 + 10 * HOUR


# ----- diathermy -----------------------------------------------------------------------------

def test_diathermy_drives_the_rotor_faster_than_commanded():
    pump = make_pump()
    t = START + DAY_S + 2 * HOUR
    exposures.diathermy(pump, t, 2 * HOUR, factor=3.0)
    pump.advance_to(t + 5 * HOUR)
    during = rows_ending(pump, t, t + 2 * HOUR)
    outside = rows_ending(pump, START, t) + rows_ending(pump, t + 2 * HOUR, t + 5 * HOUR)
    assert len(during) == 2
    for v in during:
        assert v["rotor_ml"] > v["commanded_ml"]
        assert abs(v["rotor_ml"] - 3 * v["commanded_ml"]) < STROKE
    assert all(abs(v["rotor_ml"] - v["commanded_ml"]) < STROKE for v in outside)
    tr = pump.truth
    t0 = np.asarray(tr.t0)
    win = (t0 >= t) & (t0 < t + 2 * HOUR)
    assert np.asarray(tr.csf_mcg)[win].sum() == pytest.approx(
        3 * np.asarray(tr.intended_mcg)[win].sum(), abs=2000 * STROKE)
    assert event(pump, "diathermy") == {"kind": "diathermy", "start": t, "end": t + 2 * HOUR,
                                        "factor": 3.0}


# ----- catheter kink and leak ------------------------------------------------------------------

END = [{"at": "+5d", "action": "interrogate"}]
KINK = {"at": "+2d", "action": "kink", "duration_h": 12, "surge_min": 30}


def test_kink_leaves_the_log_unchanged_but_holds_then_surges_the_drug():
    plain = scenario(END)
    kinked = scenario([KINK, *END])
    assert encode_log(kinked.image) == encode_log(plain.image)
    hours, csf, intended = hourly_delivery(kinked)
    _, csf0, _ = hourly_delivery(plain)
    k0 = int((START + 2 * DAY_S - hours[0]) // HOUR)
    assert csf[k0:k0 + 12].sum() == 0
    assert intended[k0:k0 + 12].sum() == pytest.approx(150)  # 12 h of 300 mcg/day
    ev = event(kinked.pump, "catheter_kink")
    assert ev["surge_mcg"] == pytest.approx(csf0[k0:k0 + 12].sum())
    assert csf[k0 + 12] == pytest.approx(csf0[k0 + 12] + ev["surge_mcg"])
    np.testing.assert_allclose(np.delete(csf, range(k0, k0 + 13)),
                               np.delete(csf0, range(k0, k0 + 13)), atol=1e-9)
    assert csf.sum() == pytest.approx(csf0.sum())
    truth = build_truth(kinked, RULES)
    assert truth["missed_mcg"] == pytest.approx(150, abs=1)
    assert truth["excess_mcg"] == pytest.approx(150, abs=1)
    assert not [f for f in truth["expected_findings"]]  # the pump cannot see it


def test_kink_surge_reaches_the_csf_within_surge_min():
    kinked = scenario([KINK, *END])
    grid, per_min = minute_delivery(kinked)
    ev = event(kinked.pump, "catheter_kink")
    i = int(np.searchsorted(grid, ev["end"]))
    assert per_min[i:i + 30].sum() >= 0.95 * ev["surge_mcg"]


def test_minute_delivery_is_zero_while_kinked():
    kinked = scenario([KINK, *END])
    grid, per_min = minute_delivery(kinked)
    ev = event(kinked.pump, "catheter_kink")
    inside = (grid >= ev["start"]) & (grid < ev["end"])
    assert inside.sum() == 12 * 60
    assert per_min[inside].sum() == 0
    assert per_min[grid >= ev["end"]][:60].sum() == pytest.approx(ev["surge_mcg"] + 12.5)


def test_leak_reduces_the_truth_only():
    plain = scenario(END)
    leaky = scenario([{"at": "+2d", "action": "leak", "fraction": 0.4}, *END])
    assert encode_log(leaky.image) == encode_log(plain.image)
    hours, csf, _ = hourly_delivery(leaky)
    _, csf0, _ = hourly_delivery(plain)
    k0 = int((START + 2 * DAY_S - hours[0]) // HOUR)
    np.testing.assert_allclose(csf[:k0], csf0[:k0])
    np.testing.assert_allclose(csf[k0:], 0.6 * csf0[k0:])
    assert build_truth(leaky, RULES)["missed_mcg"] == pytest.approx(0.4 * 3 * 300, rel=0.01)


# ----- clock reset ---------------------------------------------------------------------------

def test_clock_reset_is_logged_and_the_reader_recovers_utc(tmp_path):
    result = scenario([{"at": "+2d", "action": "clock_reset"},
                       {"at": "+3d", "action": "interrogate"},
                       {"at": "+4d", "action": "interrogate"}],
                      pump={"accuracy_factor": 1.0, "clock_drift_ppm": 15})
    pump = result.pump
    (reset,) = records(pump, RecordCode.PUMP_RESET)
    reset_at = START + 2 * DAY_S
    assert reset.clock == 0  # the pump clock restarts at 2000-01-01
    assert reset.values["clock_before"] == pytest.approx(reset_at, abs=3)  # 15 ppm of 2 days
    assert event(pump, "pump_reset")["start"] == reset_at
    after = [r for r in records(pump, RecordCode.DELIVERY) if r.clock < START]
    # the row ending at the reset is written before it (old clock); then rows by the new clock
    # run until the clock set a day later
    np.testing.assert_allclose([r.clock for r in after], HOUR * np.arange(1, 25), atol=2)
    # the next interrogation sets the clock
    (clock_set,) = records(pump, RecordCode.CLOCK_SET)
    assert clock_set.values["new_clock"] == START + 3 * DAY_S
    log = read_log(write_log(tmp_path / "reset.itblog", result.image))
    assert [p.kind for p in log.problems] == ["pump_reset"]
    assert not log.delivery["time_uncertain"].any()
    utc = log.delivery["time_utc"].astype("int64").to_numpy() // 10**9 - 946_684_800
    assert len(utc) == 4 * 24
    np.testing.assert_allclose(utc, START + HOUR * np.arange(1, 97), atol=3)
    ev = log.events[log.events["event"] == "pump_reset"]
    assert abs(int(ev["time_utc"].iloc[0].timestamp()) - 946_684_800 - reset_at) <= 3


# ----- pocket fill ---------------------------------------------------------------------------

def test_pocket_fill_next_refill_measures_a_residual_near_zero():
    result = scenario([
        {"at": "+10d", "action": "refill", "volume_ml": 20, "pocket_fill": True},
        {"at": "+13d", "action": "refill", "volume_ml": 20},
        {"at": "+13d1h", "action": "interrogate"},
    ], drug={"reservoir_ml": 19.0})
    pump = result.pump
    first, second = (r.values for r in records(pump, RecordCode.REFILL))
    assert first["measured_residual_ml"] == pytest.approx(19 - 10 * 0.15, abs=0.2)
    assert second["expected_residual_ml"] == pytest.approx(20 - 3 * 0.15, abs=0.01)
    assert second["measured_residual_ml"] <= 0.2
    assert pump.truth.pocket_mcg == 20 * 2000
    pocket = event(pump, "pocket_fill")
    assert (pocket["start"], pocket["mcg"]) == (START + 10 * DAY_S, 40000)
    assert csf_between(pump, START + 10 * DAY_S, START + 13 * DAY_S) == 0
    dry = event(pump, "reservoir_empty_true")
    assert START + 10 * DAY_S < dry["start"] <= START + 10 * DAY_S + HOUR
    assert dry["end"] == START + 13 * DAY_S
    truth = build_truth(result, RULES)
    assert truth["pocket_mcg"] == 40000
    # the residual missing at the refill is what the log lets an analyst find
    assert [(f["kind"], f["start_utc"]) for f in truth["expected_findings"]] == [
        ("refill_over_infusion", "2026-01-14T00:00:00Z")]
