"""One titration judgement (``clinical.titration.judge_step``) for the programmer, the
``titration_violation`` detector and the research table ``analysis.research.tables.titration``: on a
table of cases the three agree with each other and with the guideline (4.1.3-4.1.5).

4.1.3: "Daily dose increases of 50 micrograms / day, for the 3 days the child remains in hospital
post operatively can be done."  4.1.4: "Increases to the daily dose by 5-15% every 3-7 days".
4.1.5: the maximum "can reach up to 1000 micrograms / day for children with significant dystonia".
"""

from __future__ import annotations

import datetime as dt

import pytest
from test_analysis_logbuilder import T0, LogBuilder, analyse_built, kinds

from analysis.research import tables as history_tables
from clinical.rules import get_rules
from clinical.titration import TitrationLimits, in_hospital_window, judge_step
from itb_device import Prescription
from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.sim_backend import SimProgrammer
from parsers import read_log
from parsers.model import datetime_to_clock

LIMITS = TitrationLimits.from_rules(get_rules({}))
LONG_AGO = 400  # days since the implant: an outpatient

# name: (days since the implant, in hospital, old dose, new dose, within the guideline)
CASES = {
    "implant day in hospital 100 -> 150": (0, True, 100, 150, True),
    "outpatient 100 -> 150": (LONG_AGO, False, 100, 150, False),
    "third day in hospital 200 -> 250": (3, True, 200, 250, True),
    "in hospital 100 -> 151 (more than +50 and +15%)": (0, True, 100, 151, False),
    "in hospital 400 -> 460 (+15% is more than +50)": (1, True, 400, 460, True),
    "outpatient +15% 300 -> 345": (LONG_AGO, False, 300, 345, True),
    "outpatient +16% 300 -> 348": (LONG_AGO, False, 300, 348, False),
    "above the 1000 upper limit 950 -> 1001": (LONG_AGO, False, 950, 1001, False),
    "unit error 300 -> 0.5": (LONG_AGO, False, 300, 0.5, False),
    "a cut of a third 300 -> 200 (a warning, not a breach)": (LONG_AGO, False, 300, 200, True),
}


def _judge(days, in_hospital, old, new):
    return judge_step(old, new, LIMITS, in_hospital=in_hospital)


def _programmer(days, in_hospital, old, new) -> bool:
    start = dt.datetime(2026, 1, 10, 9, tzinfo=dt.UTC)
    implant = (start - dt.timedelta(days=days)).date()
    pump = SimulatedPump(PumpConfig(implant_date=implant), datetime_to_clock(start), reservoir_ml=20,
                         concentration_mcg_ml=1000.0)
    prog = SimProgrammer(pump)
    prog.program(Prescription(daily_dose_mcg=old, concentration_mcg_ml=1000.0))  # the first: no step
    return prog.check_prescription(Prescription(daily_dose_mcg=new, concentration_mcg_ml=1000.0),
                                   in_hospital=in_hospital) == []


def _built(tmp_path, days, old, new):
    b = LogBuilder(implant_date=(T0 - dt.timedelta(days=days)).date(), concentration=1000.0)
    b.program(b.t(hours=1), old)
    b.program(b.t(hours=7), new)
    return b, b.write(tmp_path / "log.itblog", b.t(hours=12))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_programmer_the_detector_and_the_table_agree(tmp_path, case):
    days, in_hospital, old, new, ok = CASES[case]
    assert _judge(days, in_hospital, old, new).within_guideline is ok
    assert _programmer(days, in_hospital, old, new) is ok
    b, path = _built(tmp_path, days, old, new)
    log = read_log(path)
    found = kinds(analyse_built(b, tmp_path, b.t(hours=12)))
    assert ("titration_violation" not in found) is ok, found
    assert bool(history_tables.titration(log)["within_guideline"].iloc[-1]) is ok


def test_the_in_hospital_window_is_the_implant_day_and_three_days_after():
    implant = dt.date(2026, 1, 10)
    midnight = dt.datetime(2026, 1, 10, tzinfo=dt.UTC).timestamp()
    assert in_hospital_window(implant, midnight, LIMITS)
    assert in_hospital_window(implant, midnight + 4 * 86400 - 1, LIMITS)
    assert not in_hospital_window(implant, midnight + 4 * 86400, LIMITS)


def test_a_cut_is_flagged_as_a_withdrawal_risk_by_all(tmp_path, caplog):
    j = judge_step(300, 200, LIMITS)
    assert j.large_cut and j.within_guideline and j.problems == ()
    b, _ = _built(tmp_path, LONG_AGO, 300, 200)
    assert "dose_decrease" in kinds(analyse_built(b, tmp_path, b.t(hours=12)))
    caplog.set_level("WARNING", logger="itb_device")
    assert _programmer(LONG_AGO, False, 300, 200)
    assert "a cut of 33%" in caplog.text


def test_spacing_is_judged_where_the_previous_increase_is_known(tmp_path):
    """4.1.4 "every 3-7 days": the analysis knows the previous increase from the log."""
    j = judge_step(330, 360, LIMITS, days_since_increase=1.0)
    assert j.step_ok and not j.interval_ok and "only 1.0 days after the previous increase" in j.problems[0]
    assert judge_step(330, 360, LIMITS, days_since_increase=1.0, in_hospital=True).interval_ok
    b = LogBuilder()
    for day, dose in ((0, 300), (1, 330), (2, 360)):
        b.program(b.t(days=day), dose)
    path = b.write(tmp_path / "log.itblog", b.t(days=3))
    assert history_tables.titration(read_log(path))["interval_ok"].tolist() == [True, True, False]
    assert "titration_violation" in kinds(analyse_built(b, tmp_path, b.t(days=3)))


def test_a_childs_maximum_replaces_the_upper_limit():
    assert not judge_step(300, 330, LIMITS, max_daily_dose_mcg=320).max_ok
    j = judge_step(1000, 1100, LIMITS, max_daily_dose_mcg=1200)
    assert j.max_ok and j.within_guideline
    assert "upper limit, reached only in significant dystonia" in judge_step(1000, 1100, LIMITS).problems[0]


IMPLANT_DAY_SCENARIO = """
name = "implant_day"
start = "2026-03-01T09:00:00Z"
[pump]
model = 20
implant_date = "2026-03-01"
[drug]
concentration_mcg_ml = 500
reservoir_ml = 18.0
[[timeline]]
at = "+0h"
action = "visit"
steps = [{{ action = "program", mode = "simple_continuous", daily_dose_mcg = 100 }}]
[[timeline]]
at = "+6h"
action = "visit"
steps = [{{ action = "program", mode = "simple_continuous", daily_dose_mcg = 150{extra} }}]
[[timeline]]
at = "+1d"
action = "interrogate"
"""


@pytest.mark.parametrize("in_hospital", [True, False])
def test_a_scenario_can_say_the_child_is_in_hospital_after_the_implant(tmp_path, in_hospital):
    """4.1.3: +50 mcg/day on implant day is within the guideline in hospital, and a scenario can
    say so; without ``in_hospital`` the programmer refuses the 50% step."""
    from itb_device.sim.scenario import ScenarioError, load_scenario, run_scenario

    path = tmp_path / "s.toml"
    path.write_text(IMPLANT_DAY_SCENARIO.format(extra=", in_hospital = true" if in_hospital else ""))
    if not in_hospital:
        with pytest.raises(ScenarioError, match="program refused"):
            run_scenario(load_scenario(path))
        return
    result = run_scenario(load_scenario(path))
    assert result.pump.status().daily_dose_mcg_day == pytest.approx(150)
