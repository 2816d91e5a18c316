"""Programming validated on both sides: the programmer's guideline checks and the pump's limits."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from conftest import SAMPLES

import itb_device
from clinical.rules import get_rules
from itb_device import (
    FlexDose,
    Prescription,
    ProgrammerRefused,
    PumpRefused,
    ReadOnlyPump,
)
from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.sim_backend import SimProgrammer
from parsers import RecordCode
from parsers.model import datetime_to_clock

RULES = get_rules()


def values(prog: SimProgrammer, code: int) -> list[dict[str, Any]]:
    pages = sorted(prog.pump.memory.pages(), key=lambda p: p.seq)
    return [r.values for p in pages for r in p.records if r.code == code]


@pytest.fixture
def prog():
    with itb_device.open("sim://?seed=1") as p:
        yield p


@pytest.fixture
def running(prog):
    """A pump running 300 mcg/day of 2000 mcg/mL, refilled with 2000 mcg/mL."""
    prog.refill(20, 2000)
    prog.program(Prescription(daily_dose_mcg=300))
    return prog


# ----- the programmer's guideline checks ----------------------------------------------------

def test_a_step_of_exactly_15_percent_is_accepted(running):
    step = RULES["titration"]["max_step_fraction"]
    assert step == 0.15
    running.program(Prescription(daily_dose_mcg=300 * (1 + step)))
    assert running.interrogate().daily_dose_mcg_day == pytest.approx(345)


def test_a_step_above_15_percent_is_refused_naming_rule_and_section(running):
    n = len(values(running, RecordCode.PRESCRIPTION))
    with pytest.raises(ProgrammerRefused) as exc:
        running.program(Prescription(daily_dose_mcg=346))
    msg = str(exc.value)
    assert "346 mcg/day is 15% above the current 300 mcg/day" in msg
    assert "at most 15%" in msg and "guideline 4.1.4" in msg
    assert "override=True" in msg
    assert "4.1.5" not in msg
    assert len(values(running, RecordCode.PRESCRIPTION)) == n
    assert running.interrogate().daily_dose_mcg_day == 300


def test_decreases_and_the_first_program_have_no_step_limit(prog):
    prog.program(Prescription(daily_dose_mcg=900))  # from stopped
    prog.program(Prescription(daily_dose_mcg=100))  # any decrease
    assert prog.interrogate().daily_dose_mcg_day == 100


def test_more_than_1000_mcg_per_day_is_refused(prog):
    assert RULES["titration"]["max_daily_dose_mcg"] == 1000
    prog.program(Prescription(daily_dose_mcg=950))
    prog.program(Prescription(daily_dose_mcg=1000))
    with pytest.raises(ProgrammerRefused) as exc:
        prog.program(Prescription(daily_dose_mcg=1001))
    msg = str(exc.value)
    assert ("1001 mcg/day is above the 1000 mcg/day upper limit, reached only in significant dystonia "
            "(guideline 4.1.5)") in msg
    assert "4.1.4" not in msg


def test_a_childs_own_maximum_is_applied(running, caplog):
    """4.1.5: the maximum "will vary for each child"; 1000 mcg/day is the upper limit reached in
    significant dystonia, not everyone's ceiling."""
    with pytest.raises(ProgrammerRefused, match="330 mcg/day is above this child's maximum of 320 mcg/day"):
        running.program(Prescription(daily_dose_mcg=330), max_daily_dose_mcg=320)
    running.program(Prescription(daily_dose_mcg=320), max_daily_dose_mcg=320)
    assert running.interrogate().daily_dose_mcg_day == 320
    caplog.set_level(logging.WARNING, logger="itb_device")
    assert running.check_prescription(Prescription(daily_dose_mcg=340), max_daily_dose_mcg=1200) == []
    assert "above the 1000 mcg/day upper limit" in caplog.text


def _implanted(days_ago: int) -> SimProgrammer:
    """A pump implanted ``days_ago`` days before the session, running 100 mcg/day."""
    start = dt.datetime(2026, 1, 10, 9, tzinfo=dt.UTC)
    implant = (start - dt.timedelta(days=days_ago)).date()
    pump = SimulatedPump(PumpConfig(implant_date=implant), datetime_to_clock(start), reservoir_ml=20)
    prog = SimProgrammer(pump)
    prog.refill(20, 2000)
    prog.program(Prescription(daily_dose_mcg=100))  # the first program: no step to judge
    return prog


def test_in_hospital_after_implant_allows_50_mcg_a_day():
    """4.1.3: "Daily dose increases of 50 micrograms / day, for the 3 days the child remains in
    hospital post operatively can be done": 100 -> 150 on the implant day, in hospital."""
    prog = _implanted(0)
    with pytest.raises(ProgrammerRefused, match="150 mcg/day is 50% above the current 100 mcg/day"):
        prog.program(Prescription(daily_dose_mcg=150))  # not said to be in hospital: 4.1.4
    prog.program(Prescription(daily_dose_mcg=150), in_hospital=True)
    assert prog.interrogate().daily_dose_mcg_day == 150
    with pytest.raises(ProgrammerRefused, match=r"at most 15% \(guideline 4.1.4\), or \+50 mcg/day"):
        prog.program(Prescription(daily_dose_mcg=201), in_hospital=True)


def test_in_hospital_is_checked_against_the_implant_date():
    prog = _implanted(10)
    with pytest.raises(ProgrammerRefused) as exc:
        prog.program(Prescription(daily_dose_mcg=150), in_hospital=True)
    msg = str(exc.value)
    assert "150 mcg/day is 50% above the current 100 mcg/day" in msg
    assert "for the 3 days after the implant (guideline 4.1.3)" in msg and "implanted on 2025-12-31" in msg


def test_flex_programs_are_checked_on_their_time_weighted_daily_dose(running):
    # 12 h at 300 and 12 h at 400: 350 mcg/day, 16.7% above 300
    rx = Prescription(mode="flex", flex_steps=(FlexDose(0, 300), FlexDose(720, 400)))
    with pytest.raises(ProgrammerRefused, match="350 mcg/day is 17% above"):
        running.program(rx)
    ok = Prescription(mode="flex", flex_steps=(FlexDose(0, 300), FlexDose(720, 380)))
    running.program(ok)
    assert running.interrogate().daily_dose_mcg_day == pytest.approx(340)


def test_concentration_other_than_the_drug_in_the_reservoir_is_refused(running):
    with pytest.raises(ProgrammerRefused) as exc:
        running.program(Prescription(daily_dose_mcg=300, concentration_mcg_ml=1000))
    msg = str(exc.value)
    assert "programmed concentration 1000 mcg/mL does not match the drug in the reservoir " \
        "(2000 mcg/mL)" in msg
    # after a refill with 1000 mcg/mL the same prescription is right
    running.refill(20, 1000)
    running.program(Prescription(daily_dose_mcg=300, concentration_mcg_ml=1000))
    assert running.interrogate().concentration_mcg_ml == 1000


def test_all_broken_rules_are_named_together(running):
    problems = running.check_prescription(
        Prescription(daily_dose_mcg=1200, concentration_mcg_ml=1000))
    assert len(problems) == 3
    assert [("4.1.5" in p, "4.1.4" in p, "reservoir" in p) for p in problems] == [
        (True, False, False), (False, True, False), (False, False, True)]


def test_stopping_is_never_refused_for_concentration(running):
    running.program(Prescription(mode="stopped", concentration_mcg_ml=1000))
    assert running.interrogate().mode == "stopped"


def test_concentration_check_knows_the_initial_fill():
    with itb_device.open("sim://?concentration=1000") as prog, \
            pytest.raises(ProgrammerRefused, match="does not match the drug"):
        prog.program(Prescription(daily_dose_mcg=200, concentration_mcg_ml=2000))


def test_override_programs_it_logs_a_warning_and_marks_the_record(running, caplog):
    caplog.set_level(logging.INFO, logger="itb_device")
    running.program(Prescription(daily_dose_mcg=450), override=True, reason="physician_order",
                    operator=4711, note="family request")
    assert running.interrogate().daily_dose_mcg_day == 450
    rec = values(running, RecordCode.PRESCRIPTION)[-1]
    assert (rec["override"], rec["daily_dose_mcg_day"], rec["mode"]) == (1, 450, "simple_continuous")
    note = values(running, RecordCode.OVERRIDE_NOTE)[-1]  # why and who, in the pump's own log
    assert (note["override_reason"], note["operator_id"]) == ("physician_order", 4711)
    warns = [r for r in caplog.records if r.name == "itb_device" and r.levelno == logging.WARNING]
    assert len(warns) == 1
    assert "override of programmer checks by operator 4711 (physician_order: family request)" in \
        warns[0].getMessage()
    assert "guideline 4.1.4" in warns[0].getMessage()


def test_override_without_a_problem_is_not_marked(running, caplog):
    caplog.set_level(logging.WARNING, logger="itb_device")
    running.program(Prescription(daily_dose_mcg=310), override=True)
    assert values(running, RecordCode.PRESCRIPTION)[-1]["override"] == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_normal_programs_are_marked_not_overridden(running):
    assert [v["override"] for v in values(running, RecordCode.PRESCRIPTION)] == [0]


# ----- the pump's own limits -----------------------------------------------------------------

def _flex(*steps: tuple[int, float]) -> Prescription:
    return Prescription(mode="flex", flex_steps=tuple(FlexDose(s, d) for s, d in steps))


@pytest.mark.parametrize(("rx", "message"), [
    # 50 mcg/day of 2000 mcg/mL is 0.025 mL/day, below the 0.048 mL/day minimum
    (Prescription(daily_dose_mcg=50), r"rate 0.0250 mL/day is outside the pump's range 0.048-24.0"),
    # one minute at 60000 mcg/day (30 mL/day): the daily dose is small but the rate is not
    (_flex((0, 200), (600, 60000), (601, 200)), r"rate 30.0000 mL/day is outside"),
    (_flex((0, 200), (600, 0)), r"rate 0.0000 mL/day is outside"),
    (_flex(*[(60 * i, 200) for i in range(14)]), "1 to 13 steps"),
    (Prescription(mode="flex"), "1 to 13 steps"),
    (_flex((0, 200), (600, 250), (600, 300)), "distinct start times"),
    (_flex((0, 200), (1440, 250)), "distinct start times within the day"),
    (Prescription(daily_dose_mcg=300, concentration_mcg_ml=0), "concentration must be above 0"),
])
def test_the_pump_refuses_what_it_cannot_do(prog, rx, message):
    prog.program(Prescription(daily_dose_mcg=300))
    before = (prog.interrogate(), len(values(prog, RecordCode.PRESCRIPTION)))
    with pytest.raises(PumpRefused, match=message):
        prog.program(rx, override=True, reason="bench_test", operator=1)
    assert (prog.interrogate(), len(values(prog, RecordCode.PRESCRIPTION))) == before


def test_the_pump_refuses_a_rate_above_its_maximum():
    with itb_device.open("sim://?concentration=50") as prog, \
            pytest.raises(PumpRefused, match=r"rate 25\.0000 mL/day is outside"):
        prog.program(Prescription(daily_dose_mcg=1250, concentration_mcg_ml=50),
                     override=True, reason="bench_test", operator=1)


def test_thirteen_flex_steps_are_accepted_one_record_each(prog):
    prog.program(_flex(*[(100 * i, 200 + i) for i in range(13)]))
    recs = values(prog, RecordCode.PRESCRIPTION)
    assert [(r["step"], r["step_count"], r["step_start_min"]) for r in recs] == [
        (i, 13, 100 * i) for i in range(13)]
    assert len(prog.interrogate().flex_steps) == 13


def test_refill_volume_must_fit_the_reservoir(prog):
    for vol in (20.5, 0):
        with pytest.raises(PumpRefused, match=f"refill volume {vol} mL does not fit a 20 mL"):
            prog.refill(vol, 2000)
    with pytest.raises(itb_device.DeviceError, match="refill volume_ml must be zero or more, not -1 mL"):
        prog.refill(-1, 2000)  # no negative volume reaches a pump (nor the wire)
    assert values(prog, RecordCode.REFILL) == []
    assert prog.interrogate().reservoir_ml == 20.0
    with itb_device.open("sim://?model=40") as big:
        assert big.refill(40, 2000).volume_added_ml == 40


def test_refill_concentration_must_be_positive(prog, tmp_path):
    with pytest.raises(itb_device.DeviceError):
        prog.refill(10, -5)
    prog.save_log(tmp_path / "after.itblog")


def test_bolus_larger_than_the_reservoir_estimate_is_refused():
    # 20 mL of 2000 mcg/mL hold 40000 mcg; the rules' clinician limit is raised so the pump's
    # reservoir check is what refuses
    rules = {"boluses": {"max_dose_mcg": {"clinician": 50000.0}}}
    start = datetime_to_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    running = SimProgrammer(SimulatedPump(PumpConfig(), start, reservoir_ml=20, rules=rules), rules=rules)
    running.refill(20, 2000)
    running.program(Prescription(daily_dose_mcg=300))
    with pytest.raises(PumpRefused, match=r"bolus volume 20.500 mL exceeds the reservoir \(20.00 mL\)"):
        running.bolus(41000)
    assert values(running, RecordCode.BOLUS_START) == []
    assert running.bolus(39000, duration_min=600) == 1


def test_bolus_while_one_runs_is_refused(running):
    first = running.bolus(100, duration_min=10)
    with pytest.raises(PumpRefused, match="already running"):
        running.bolus(50)
    running.advance(601)
    second = running.bolus(50, kind="bridge")
    assert (first, second) == (1, 2)
    ends = values(running, RecordCode.BOLUS_END)
    assert [(e["bolus_id"], e["completed"], e["kind"]) for e in ends] == [(1, 1, "clinician")]
    assert ends[0]["dose_mcg"] == pytest.approx(100)


def test_bolus_on_a_stopped_pump_is_refused(prog):
    with pytest.raises(PumpRefused, match="stopped"):
        prog.bolus(50)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "patient"}, "bolus kind must be one of clinician, priming, bridge"),
    ({"duration_min": 0}, "must be positive"),
])
def test_programmer_refuses_bad_bolus_requests(running, kwargs, message):
    with pytest.raises(ProgrammerRefused, match=message):
        running.bolus(50, **kwargs)


def test_bolus_dose_must_be_positive(running):
    with pytest.raises(ProgrammerRefused, match="must be positive"):
        running.bolus(0)


def test_set_clock_to_the_programmers_utc_and_to_a_given_time():
    start = datetime_to_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    prog = SimProgrammer(SimulatedPump(PumpConfig(clock_drift_ppm=20), start, reservoir_ml=20))
    prog.advance(10 * 86400)
    assert prog.pump.pump_clock() == prog.pump.now + 17  # 20 ppm of 10 days
    prog.set_clock()
    assert prog.pump.pump_clock() == prog.pump.now
    rec = values(prog, RecordCode.CLOCK_SET)[-1]
    assert (rec["old_clock"], rec["new_clock"]) == (prog.pump.now + 17, prog.pump.now)
    when = dt.datetime(2030, 5, 5, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    prog.set_clock(when)
    assert prog.pump.pump_clock() == datetime_to_clock(when)
    with pytest.raises(ValueError, match="naive"):
        prog.set_clock(dt.datetime(2030, 1, 1))


# ----- file:// is read-only ------------------------------------------------------------------

@pytest.mark.parametrize(("call", "what"), [
    (lambda p: p.program(Prescription(daily_dose_mcg=250)), "programming"),
    (lambda p: p.refill(20, 2000), "a refill"),
    (lambda p: p.bolus(50), "a bolus"),
    (lambda p: p.set_clock(), "setting the clock"),
])
def test_file_backend_refuses_every_change(call, what):
    path = SAMPLES / "wrong_concentration.itblog"
    before = path.read_bytes()
    with itb_device.open(f"file://{path}") as prog:
        with pytest.raises(ReadOnlyPump, match=f"{what} is refused: this backend replays"):
            call(prog)
        assert prog.interrogate().daily_dose_mcg_day == 250
    assert path.read_bytes() == before


def test_file_backend_still_checks_a_prescription_against_the_logged_refill():
    with itb_device.open(f"file://{SAMPLES / 'wrong_concentration.itblog'}") as prog:
        problems = prog.check_prescription(Prescription(daily_dose_mcg=250,
                                                        concentration_mcg_ml=1000))
        assert len(problems) == 1
        assert problems[0].startswith("programmed concentration 1000 mcg/mL does not match the drug in "
                                      "the reservoir (2000 mcg/mL)")
        assert prog.check_prescription(Prescription(daily_dose_mcg=250)) == []
