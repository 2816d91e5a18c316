"""Programming safety on sim:// (issue 14 items 6-9): bolus limits per kind, the titration window
across programs and sessions, overrides with a reason and an operator kept in the pump's log, the
pump's own checks, and every value checked where it enters (a DeviceError, never struct.error,
ValueError alone, OverflowError or an unencodable log)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

import itb_device
from clinical.rules import get_rules
from itb_device import DeviceError, FlexDose, Prescription, ProgrammerRefused, PumpRefused
from itb_device.errors import InvalidValue
from itb_device.safety import MAX_PUMP_CLOCK, OVERRIDE_REASONS
from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.sim_backend import SimProgrammer
from parsers import RecordCode, read_log_bytes
from parsers.model import datetime_to_clock
from parsers.writer import encode_log

RULES = get_rules()
START = datetime_to_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def values(prog: SimProgrammer, code: int) -> list[dict[str, Any]]:
    pages = sorted(prog.pump.memory.pages(), key=lambda p: p.seq)
    return [r.values for p in pages for r in p.records if r.code == code]


@pytest.fixture
def running():
    """A 20 mL pump refilled with 2000 mcg/mL, running 200 mcg/day for a week."""
    with itb_device.open("sim://?seed=1") as prog:
        prog.refill(20, 2000)
        prog.program(Prescription(daily_dose_mcg=200))
        prog.advance(7 * 86_400)
        yield prog


def assert_log_encodes(prog: SimProgrammer) -> None:
    """The pump's log is still a valid, readable log."""
    log = read_log_bytes(encode_log(prog.read_log()), "<after>")
    assert not log.damaged


# ----- item 6: bolus limits per kind ---------------------------------------------------------------

def test_the_rules_hold_a_dose_limit_per_bolus_kind():
    limits = RULES.get("boluses", "max_dose_mcg")
    assert set(limits) == {"clinician", "priming", "bridge"}
    assert all(0 < float(v) < 1000 for v in limits.values())
    assert RULES.number("boluses", "max_duration_min") == 1440


@pytest.mark.parametrize("kind", ["clinician", "priming", "bridge"])
@pytest.mark.parametrize("dose", [1000, 10_000, 40_000])
def test_large_boluses_of_every_kind_are_refused_by_the_programmer(running, kind, dose):
    with pytest.raises(ProgrammerRefused, match=f"a {kind} bolus of {dose} mcg is above the"):
        running.bolus(dose, kind=kind)
    assert values(running, RecordCode.BOLUS_START) == []


@pytest.mark.parametrize("kind", ["clinician", "priming", "bridge"])
def test_the_pump_checks_the_limit_again(running, kind):
    limit = float(RULES.get("boluses", "max_dose_mcg")[kind])
    with pytest.raises(PumpRefused, match=f"a {kind} bolus of {limit * 2:g} mcg is above the {limit:g} mcg"):
        running.pump.start_bolus(kind, limit * 2, 60)
    assert running.bolus(limit, kind=kind, duration_min=1) == 1  # at the limit: given


def test_a_bolus_longer_than_a_day_is_refused_by_both(running):
    with pytest.raises(ProgrammerRefused, match="longer than the 1440 min limit"):
        running.bolus(10, duration_min=1441)
    with pytest.raises(PumpRefused, match="longer than the 1440 min limit"):
        running.pump.start_bolus("clinician", 10, 1441 * 60)


def test_a_hospital_sets_its_own_limits():
    rules = {"boluses": {"max_dose_mcg": {"clinician": 40.0}}}
    pump = SimulatedPump(PumpConfig(), START, reservoir_ml=20, rules=rules)
    prog = SimProgrammer(pump, rules=rules)
    prog.program(Prescription(daily_dose_mcg=200))
    with pytest.raises(ProgrammerRefused, match="above the 40 mcg limit"):
        prog.bolus(50)
    assert prog.bolus(40) == 1


# ----- item 7: titration across a session --------------------------------------------------------

def test_five_15_percent_steps_in_one_session_are_refused(running):
    dose = 200.0
    dose *= 1.15
    running.program(Prescription(daily_dose_mcg=dose))  # the first +15% step: fine
    for _ in range(4):
        dose *= 1.15
        with pytest.raises(ProgrammerRefused, match=r"the lowest daily dose programmed in the last 3 days"):
            running.program(Prescription(daily_dose_mcg=dose))
    assert running.interrogate().daily_dose_mcg_day == pytest.approx(230)
    # the steps add up across sessions too: a new session does not reset the window
    running.close()
    again = SimProgrammer(running.pump)
    with pytest.raises(ProgrammerRefused, match="add up"):
        again.program(Prescription(daily_dose_mcg=264.5))
    # three days later the next +15% step is allowed
    again.advance(3 * 86_400)
    again.program(Prescription(daily_dose_mcg=264.5))


def test_a_stop_then_a_restart_at_five_times_the_dose_is_refused(running):
    running.program(Prescription(mode="stopped"))
    with pytest.raises(ProgrammerRefused, match=r"1000 mcg/day is 400% above 200 mcg/day"):
        running.program(Prescription(daily_dose_mcg=1000))
    running.program(Prescription(daily_dose_mcg=200))  # back to the dose before the stop: fine
    assert running.interrogate().daily_dose_mcg_day == 200


def test_a_restart_at_the_full_dose_after_a_long_stop_is_refused(running):
    running.program(Prescription(mode="stopped"))
    running.advance(2 * 86_400)
    with pytest.raises(ProgrammerRefused, match="after a stop of 48 h"):
        running.program(Prescription(daily_dose_mcg=200))
    running.program(Prescription(daily_dose_mcg=100))  # restart lower


def test_a_one_minute_flex_step_at_40000_mcg_per_day_is_refused(running):
    rx = Prescription(mode="flex", flex_steps=(FlexDose(0, 200), FlexDose(600, 40_000), FlexDose(601, 200)))
    assert rx.total_daily_dose_mcg() < 230  # the daily dose alone would pass the step check
    with pytest.raises(ProgrammerRefused, match=r"flex step at 10:00 runs at 40000 mcg/day, above the 1000"):
        running.program(rx)
    # ... and the pump refuses it on its own when no override is claimed
    with pytest.raises(PumpRefused, match="runs at 40000 mcg/day"):
        running.pump.program(rx)
    assert running.interrogate().daily_dose_mcg_day == 200


def test_ordinary_titration_every_few_days_is_accepted(running):
    for dose in (220, 250, 280, 320):
        running.program(Prescription(daily_dose_mcg=dose))
        running.advance(4 * 86_400)
    assert running.interrogate().daily_dose_mcg_day == 320


# ----- item 8: overrides need a reason and who gave it; the pump's own checks ---------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "an override needs a reason"),
    ({"reason": "family request", "operator": 7}, "override reason 'family request' is not one of"),
    ({"reason": "physician_order"}, "an override needs who gives it"),
    ({"reason": "physician_order", "operator": "dr who"}, "must be a staff number"),
    ({"reason": "physician_order", "operator": 0}, "from 1 to 4294967295"),
])
def test_an_override_without_a_reason_or_operator_is_refused(running, kwargs, message):
    with pytest.raises(ProgrammerRefused, match=message):
        running.program(Prescription(daily_dose_mcg=400), override=True, **kwargs)
    assert running.interrogate().daily_dose_mcg_day == 200
    assert values(running, RecordCode.OVERRIDE_NOTE) == []


@pytest.mark.parametrize("reason", OVERRIDE_REASONS)
def test_the_pumps_log_keeps_the_reason_and_the_operator(running, reason):
    running.program(Prescription(daily_dose_mcg=400), override=True, reason=reason, operator="0042")
    (note,) = values(running, RecordCode.OVERRIDE_NOTE)
    assert (note["override_reason"], note["operator_id"], note["session_id"]) == (reason, 42, 1)
    log = read_log_bytes(encode_log(running.read_log()), "<log>")
    ev = log.events
    row = ev[ev["event"] == "override_note"].iloc[0]
    assert (row["override_reason"], row["operator_id"]) == (reason, 42)
    rx = ev[ev["event"] == "prescription"].iloc[-1]
    assert rx["override"] == 1 and rx["pump_clock"] == row["pump_clock"]


def test_the_pump_refuses_a_mismatched_concentration_without_override(running):
    rx = Prescription(daily_dose_mcg=9000, concentration_mcg_ml=10_000)
    with pytest.raises(PumpRefused, match=r"does not match the drug in the reservoir .*9000 mcg/day is abo"):
        running.pump.program(rx)  # as a raw command would arrive, override flag 0
    with pytest.raises(PumpRefused, match="an override needs a reason"):
        running.pump.program(rx, override=True)
    assert running.interrogate().daily_dose_mcg_day == 200
    assert [v["daily_dose_mcg_day"] for v in values(running, RecordCode.PRESCRIPTION)] == [200]


# ----- item 9: every value checked where it enters ------------------------------------------------

BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, 1e9, 1e300, "12", None, True]


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=repr)
def test_bad_bolus_values_are_device_errors_and_the_log_stays_encodable(running, bad):
    for call in (lambda: running.bolus(bad), lambda: running.bolus(10, duration_min=bad)):
        with pytest.raises(DeviceError):
            call()
    with pytest.raises(PumpRefused):
        running.pump.start_bolus("clinician", bad, 60)
    with pytest.raises(PumpRefused):
        running.pump.start_bolus("clinician", 10, bad)
    assert values(running, RecordCode.BOLUS_START) == []
    assert_log_encodes(running)


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=repr)
def test_bad_prescription_values_are_device_errors(running, bad):
    calls = [
        lambda: running.program(Prescription(daily_dose_mcg=bad)),
        lambda: running.program(Prescription(daily_dose_mcg=200, concentration_mcg_ml=bad)),
        lambda: running.program(Prescription(mode="flex", flex_steps=(FlexDose(0, bad),))),
        lambda: running.refill(bad, 2000),
        lambda: running.refill(10, bad),
    ]
    if bad is not None:  # None is "as programmed"
        calls.append(lambda: running.program(Prescription(daily_dose_mcg=200), intended_daily_dose_mcg=bad))
    for call in calls:
        with pytest.raises(DeviceError):
            call()
    with pytest.raises(PumpRefused):
        running.pump.program(Prescription(daily_dose_mcg=bad))
    with pytest.raises(PumpRefused):
        running.pump.refill(bad, 2000)
    assert running.interrogate().daily_dose_mcg_day == 200
    assert_log_encodes(running)


@pytest.mark.parametrize("bad", [1.5, -1, 65_536, "0"], ids=repr)
def test_bad_flex_step_starts_are_device_errors(running, bad):
    with pytest.raises(DeviceError):
        running.program(Prescription(mode="flex", flex_steps=(FlexDose(bad, 200),)))


def test_an_unknown_mode_is_refused_before_anything_is_sent(running):
    with pytest.raises(InvalidValue, match="unknown infusion mode 'turbo'"):
        running.program(Prescription(mode="turbo", daily_dose_mcg=300))
    with pytest.raises(PumpRefused, match="unknown infusion mode 'turbo'"):
        running.pump.program(Prescription(mode="turbo", daily_dose_mcg=300))


@pytest.mark.parametrize("when", [dt.datetime(1999, 12, 31, tzinfo=dt.UTC),
                                  dt.datetime(2100, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
                                  dt.datetime(2136, 3, 1, tzinfo=dt.UTC)])
def test_clocks_outside_the_pumps_range_are_refused(running, when):
    with pytest.raises(InvalidValue, match="outside the pump's range"):
        running.set_clock(when)
    with pytest.raises(PumpRefused, match="outside the pump's range"):
        running.pump.set_clock(datetime_to_clock(when))
    running.set_clock(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))  # the last accepted second
    assert running.pump.pump_clock() == MAX_PUMP_CLOCK
    assert_log_encodes(running)


def test_invalid_values_are_value_errors_too():
    """InvalidValue is a DeviceError (one line from `itb`) and a ValueError (old callers)."""
    assert issubclass(InvalidValue, DeviceError) and issubclass(InvalidValue, ValueError)


@pytest.mark.parametrize("url", ["sim://?concentration=nan", "sim://?concentration=-5", "sim://?seed=x",
                                 "sim://?model=30", "sim://?start=1990-01-01T00:00:00Z",
                                 "sim://?concentration=1e400"])
def test_bad_sim_url_options_are_device_errors(url):
    with pytest.raises(InvalidValue):
        itb_device.open(url)


@pytest.mark.parametrize("serial", ["a\r\nVERDICT: OK\n", "\x1b[2J", "x" * 17, "caf\u00e9"])
def test_the_simulator_refuses_text_it_could_not_log(serial):
    with pytest.raises(ValueError, match="printable ASCII"):
        PumpConfig(serial=serial)


def test_records_from_before_a_clock_reset_do_not_hold_back_titration():
    pump = SimulatedPump(PumpConfig(clock_drift_ppm=0), START, reservoir_ml=20)
    prog = SimProgrammer(pump)
    for dose in (100, 115, 130, 149):
        prog.program(Prescription(daily_dose_mcg=dose))
        prog.advance(4 * 86_400)
    pump.reset()  # the clock restarts from 2000-01-01: every earlier record is "in the future"
    prog.program(Prescription(daily_dose_mcg=170))  # +14% of the running dose: one ordinary step
    assert prog.interrogate().daily_dose_mcg_day == 170
