"""The guideline's dose calculators (``analysis.calculators``), against the CHW ITB practice
guideline: test dose 3.1.5, starting dose 4.1.2, titration 4.1.3-4.1.5, refill 4.1.6 and
oral baclofen for withdrawal 5.1.4.  Expected numbers are worked out by hand below."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

# the module, not its functions: pytest would collect a function named test_dose as a test
from analysis import calculators as calc
from clinical.rules import InputError

# ---------------------------------------------------------------------------------------------
# Test dose (3.1.5): "4 - 7 years / < 18kg": spasticity 25, dystonia 50-75;
# "> 7 years / > 18kg": spasticity "50, 75 or 100 micrograms, depending on severity of
# spasticity", dystonia 50-100.  The age is in completed years (a child of 7 1/2 is 7: in
# "4 - 7 years", at the boundary, warned).  18 kg itself is in neither band: the lower doses,
# warned.  Under 4 years the guideline gives no dose: refused.

TEST_DOSES = [
    # age, weight, indication, doses, group
    (4, 15, "spasticity", [25], "young"),
    (7, 30, "spasticity", [25], "young"),  # 7 completed years is in "4 - 7 years"
    (8, 30, "spasticity", [50, 75, 100], "older"),
    (8, 17.9, "spasticity", [25], "young"),  # older but under 18 kg: the lighter doses
    (8, 18, "spasticity", [25], "young"),  # 18 kg: in neither band, the lower doses
    (8, 18.1, "spasticity", [50, 75, 100], "older"),
    (6, 25, "spasticity", [25], "young"),  # heavy but 7 or younger
    (7, 20, "dystonia", [50, 75], "young"),
    (8, 20, "dystonia", [50, 100], "older"),
    (10, 17.9, "dystonia", [50, 75], "young"),
    (10, 18, "dystonia", [50, 75], "young"),
    (10, 18.1, "dystonia", [50, 100], "older"),
]


@pytest.mark.parametrize(("age", "weight", "indication", "doses", "group"), TEST_DOSES)
def test_test_dose_by_age_weight_and_indication(age, weight, indication, doses, group):
    r = calc.test_dose(age, weight, indication)
    assert r.section == "3.1.5" and r.name == "test_dose"
    assert r.values["doses_mcg"] == doses
    assert r.values["group"] == group
    assert r.values["ampoule_mcg_ml"] == 50  # 50 mcg/mL ampoules (3.3.5)
    assert r.values["volumes_ml"] == pytest.approx([d / 50 for d in doses])
    assert "lumbar puncture over at least 1 minute" in r.text


def test_test_dose_text_gives_doses_and_volumes():
    young = calc.test_dose(5, 16)
    assert "25 mcg (0.5 mL of 50 mcg/mL)" in young.text
    assert "(5 years, 16 kg: 4-7 years or under 18 kg)" in young.text
    older = calc.test_dose(12, 40)
    assert ("50 mcg (1 mL of 50 mcg/mL) or 75 mcg (1.5 mL of 50 mcg/mL) or 100 mcg (2 mL of 50 mcg/mL), "
            "depending on the severity of spasticity") in older.text
    dystonia = calc.test_dose(12, 40, "DYSTONIA")
    assert "dystonia" in dystonia.text and "50 to 100 mcg (1 to 2 mL of 50 mcg/mL)" in dystonia.text


@pytest.mark.parametrize("age", [0, 2, 3])
def test_no_test_dose_under_four_years(age):
    """3.1.5 gives doses for "4 - 7 years" and "> 7 years" only: no guideline dose under 4."""
    with pytest.raises(InputError) as exc:
        calc.test_dose(age, 12, "dystonia")
    assert exc.value.field == "age_years"
    assert str(exc.value) == f"{age} years: no guideline dose under 4 years (3.1.5): specialist decision"
    assert calc.test_dose(4, 14).values["doses_mcg"] == [25]
    assert calc.test_dose(3, 14, rules={"test_dose": {"min_age_y": 3}}).values["doses_mcg"] == [25]


@pytest.mark.parametrize("age", [7.5, 3.9, 8.01])
def test_test_dose_asks_for_completed_years(age):
    with pytest.raises(InputError, match=r"give the age in completed years \(\d, not"):
        calc.test_dose(age, 25)


def test_test_dose_warns_at_the_boundaries():
    (w,) = calc.test_dose(9, 17).warnings
    assert "under 18 kg" in w
    (w,) = calc.test_dose(9, 18).warnings
    assert w.startswith('18 kg is in neither band of 3.1.5 ("< 18kg" and "> 18kg"): the lower doses')
    (w,) = calc.test_dose(7, 25).warnings
    assert w.startswith('7 completed years is at the boundary of the bands of 3.1.5 ("4 - 7 years" and "> 7')
    assert calc.test_dose(9, 18.5).warnings == ()
    assert calc.test_dose(6, 17).warnings == ()
    assert calc.test_dose(7, 17).warnings == ()  # both say the younger band


@pytest.mark.parametrize("weight", [3, 4.9, 201, 400])
def test_test_dose_refuses_an_implausible_weight(weight):
    with pytest.raises(InputError, match="not a plausible weight") as exc:
        calc.test_dose(8, weight)
    assert exc.value.field == "weight_kg"


@pytest.mark.parametrize(
    ("age", "weight", "indication"),
    [
        (0, 20, "spasticity"),
        (8, 0, "spasticity"),
        (8, -1, "spasticity"),
        (8, 20, "epilepsy"),
        (math.nan, 20, "spasticity"),
    ],
)
def test_test_dose_refuses_bad_input(age, weight, indication):
    with pytest.raises(ValueError):
        calc.test_dose(age, weight, indication)


# ---------------------------------------------------------------------------------------------
# Starting dose (4.1.2): "an effective response to 50 micrograms at test dose, start the
# continuous infusion at 100 micrograms over a 24 hour period; ... 100 -> 200"


@pytest.mark.parametrize(("test", "daily"), [(25, 50), (50, 100), (75, 150), (100, 200)])
def test_starting_dose_is_twice_the_test_dose(test, daily):
    r = calc.starting_dose(test)
    assert r.section == "4.1.2"
    assert r.values["daily_dose_mcg"] == daily and r.warnings == ()
    assert f"{daily} mcg/day" in r.text and f"test dose of {test} mcg" in r.text


def test_starting_dose_refuses_zero():
    with pytest.raises(ValueError, match="test dose must be positive"):
        calc.starting_dose(0)


@pytest.mark.parametrize(("test", "daily"), [(600, 1200), (5000, 10000), (501, 1002)])
def test_a_starting_dose_above_the_maximum_is_never_given(test, daily):
    with pytest.raises(InputError) as exc:
        calc.starting_dose(test)
    assert exc.value.field == "effective_test_dose_mcg"
    assert f"2 x {test} mcg = {daily} mcg/day would be above the 1000 mcg/day upper limit" in str(exc.value)
    assert "no starting dose is given" in str(exc.value)


def test_starting_dose_warns_outside_the_guideline_test_doses():
    r = calc.starting_dose(0.05)  # 0.05 mg typed for 50 mcg
    assert r.values["daily_dose_mcg"] == pytest.approx(0.1)
    assert any("outside the guideline's test doses (25-100 mcg, 3.1.5)" in w for w in r.warnings)
    assert any("below the pump's minimum rate" in w for w in r.warnings)
    assert any("outside the guideline's test doses" in w for w in calc.starting_dose(150).warnings)
    assert calc.starting_dose(100).warnings == () and calc.starting_dose(25).warnings == ()


def test_starting_dose_suggests_the_low_dose_concentration():
    """4.1.1: a low dose "may require a more dilute concentration of baclofen of 1000 mcg/ml":
    50 mcg/day of 2000 mcg/mL is 0.025 mL/day, below the pump's 0.048 mL/day minimum."""
    r = calc.starting_dose(25)
    assert r.values["concentration_mcg_ml"] == 1000 and r.values["rate_ml_day"] == pytest.approx(0.05)
    assert "low-dose concentration" in r.text and "4.1.1" in r.text
    assert calc.starting_dose(50).values["concentration_mcg_ml"] == 2000


def test_starting_dose_with_the_childs_maximum():
    with pytest.raises(InputError, match="above this child's maximum of 80 mcg/day"):
        calc.starting_dose(50, max_daily_dose_mcg=80)
    r = calc.starting_dose(600, max_daily_dose_mcg=1200)
    assert r.values["daily_dose_mcg"] == 1200
    assert any("above the 1000 mcg/day upper limit reached in significant dystonia" in w for w in r.warnings)


# ---------------------------------------------------------------------------------------------
# Titration: outpatient +5-15% every 3-7 days (4.1.4), never above 1000 mcg/day (4.1.5);
# in hospital +50 mcg/day per day for 3 days after implant (4.1.3)


def test_titration_outpatient_range():
    r = calc.titration(300)
    assert r.section == "4.1.4"
    assert r.values["min_mcg_day"] == pytest.approx(315)  # 300 x 1.05
    assert r.values["max_mcg_day"] == pytest.approx(345)  # 300 x 1.15
    assert r.values["min_interval_days"] == 3 and r.values["cap_mcg_day"] == 1000
    assert "315 to 345 mcg/day (+5 to +15%)" in r.text and "no sooner than 3 days" in r.text
    assert "maximum 1000 mcg/day (4.1.5)" in r.text
    assert r.warnings == ()


def test_titration_is_capped_at_1000():
    r = calc.titration(900)  # 900 x 1.15 = 1035 -> 1000
    assert r.values["min_mcg_day"] == pytest.approx(945)
    assert r.values["max_mcg_day"] == 1000
    assert "945 to 1000 mcg/day" in r.text


def test_titration_warns_at_the_cap():
    r = calc.titration(1000)
    assert any("at the 1000 mcg/day upper limit (reached in significant dystonia, 4.1.5)" in w
               for w in r.warnings)
    assert r.values["max_mcg_day"] <= 1000 and r.text.startswith("No increase")


@pytest.mark.parametrize("current", [5, 6, 30, 100, 333, 869, 900, 960, 999, 1000, 1100, 1500, 5000])
@pytest.mark.parametrize("inpatient", [False, True])
def test_titration_never_cuts_and_never_passes_the_cap(current, inpatient):
    r = calc.titration(current, inpatient)
    assert r.values["min_mcg_day"] >= current - 1e-9 and r.values["max_mcg_day"] >= r.values["min_mcg_day"]
    assert r.values["max_mcg_day"] <= max(1000, current)


def test_titration_rounds_without_inverting_the_range():
    r = calc.titration(5)
    assert "Next step: 5.3 to 5.7 mcg/day" in r.text  # not "6 to 5"
    assert any("below the smallest guideline starting dose (50 mcg/day" in w for w in r.warnings)


@pytest.mark.parametrize("current", [1500, 5000])
def test_titration_above_the_maximum_warns_about_the_unit(current):
    for inpatient in (False, True):
        r = calc.titration(current, inpatient)
        assert r.text.startswith("No increase") and r.values["max_mcg_day"] == current
        assert any("above the 1000 mcg/day upper limit" in w and "check the dose and its unit" in w
                   for w in r.warnings)


def test_titration_with_the_childs_maximum():
    r = calc.titration(300, max_daily_dose_mcg=320)
    assert r.values["max_mcg_day"] == 320 and "315 to 320 mcg/day" in r.text
    assert "maximum 320 mcg/day (4.1.5, this child's)" in r.text
    r = calc.titration(1000, max_daily_dose_mcg=1200)
    assert r.values["max_mcg_day"] == pytest.approx(1150) and r.warnings[0].endswith("a specialist decision")


@pytest.mark.parametrize("current", [960, 1000])
def test_titration_range_never_exceeds_the_cap(current):
    r = calc.titration(current)
    assert r.values["min_mcg_day"] <= r.values["max_mcg_day"] <= 1000


@pytest.mark.parametrize(("current", "upper"), [(300, 350), (100, 150), (980, 1000)])
def test_titration_inpatient_adds_50_up_to_the_cap(current, upper):
    r = calc.titration(current, inpatient=True)
    assert r.section == "4.1.3"
    assert r.values["min_mcg_day"] == current
    assert r.values["max_mcg_day"] == upper
    assert f"up to {upper} mcg/day (+50 mcg/day per day, for up to 3 days)" in r.text


@pytest.mark.parametrize("current", [0, -10, math.nan])
def test_titration_refuses_bad_doses(current):
    with pytest.raises(ValueError, match="current daily dose must be positive"):
        calc.titration(current)


# ---------------------------------------------------------------------------------------------
# Refill (4.1.6): rate = dose / concentration; the reservoir must not fall below the safe
# residual (4 mL) even if the pump over-infuses by its +14.5% accuracy; the low-reservoir alarm
# (2 mL) at the nominal rate; never more than 180 days (drug stability).


def test_refill_20ml_300mcg_by_hand():
    r = calc.refill(20, 300, 2000)
    assert r.section == "4.1.6"
    # 300 mcg/day / 2000 mcg/mL = 0.15 mL/day
    assert r.values["rate_ml_day"] == pytest.approx(0.15)
    # (20 - 4) mL / (0.15 x 1.145) mL/day = 16 / 0.17175 = 93.16 days
    assert r.values["days_to_safe_residual"] == pytest.approx(93.158, abs=1e-3)
    # (20 - 2) mL / 0.15 mL/day = 120 days
    assert r.values["days_to_alarm"] == pytest.approx(120)
    assert r.values["refill_within_days"] == pytest.approx(93.158, abs=1e-3)
    assert r.values["volume_ml"] == 20
    for part in (
        "0.150 mL/day",
        "reaches 4 mL",
        "in 93 days",
        "2 mL alarm in 120 days",
        "refill within 93 days (the safe residual)",
        "Fill 20 mL of 2000 mcg/mL",
    ):
        assert part in r.text


def test_refill_40ml_with_a_residual_by_hand():
    r = calc.refill(40, 600, 2000, residual_ml=10)
    # 0.3 mL/day; (10 - 4) / (0.3 x 1.145) = 17.47 days; (10 - 2) / 0.3 = 26.67 days
    assert r.values["rate_ml_day"] == pytest.approx(0.3)
    assert r.values["days_to_safe_residual"] == pytest.approx(6 / 0.3435)
    assert r.values["days_to_alarm"] == pytest.approx(8 / 0.3)
    assert r.values["refill_within_days"] == pytest.approx(6 / 0.3435)
    assert r.values["volume_ml"] == 40
    assert "From 10 mL" in r.text


def test_refill_below_the_safe_residual_is_due_now():
    r = calc.refill(20, 300, 2000, residual_ml=3)
    assert r.values["days_to_safe_residual"] == 0 and r.values["refill_within_days"] == 0
    assert r.values["refill_now"] and "refill within 0 days" not in r.text
    assert "refill NOW (3 mL left is at or below the 4 mL safe residual)" in r.text
    assert r.warnings == ("refill NOW: 3 mL left is at or below the 4 mL safe residual",)


def test_refill_past_the_drug_stability_is_due_now():
    r = calc.refill(20, 300, 2000, days_since_fill=200)
    assert r.values["refill_now"] and "refill NOW (the drug has been in the pump 200 days" in r.text
    assert calc.refill(20, 300, 2000, days_since_fill=179).values["refill_now"] is False


def test_a_normal_refill_has_no_warnings():
    assert calc.refill(20, 300, 2000).warnings == ()
    assert calc.refill(40, 100, 1000).warnings == ()


@pytest.mark.parametrize(("args", "fragment"), [
    ((20, 300, 2), "2 mcg/mL is not a marketed concentration (50, 500, 1000, 2000 mcg/mL)"),
    ((20, 300, 2), "is 150.0 mL/day, above the pump's maximum rate of 24 mL/day"),
    ((20, 300, 3000), "3000 mcg/mL is not a marketed concentration"),
    ((20, 5000, 2000), "5000 mcg/day is above the 1000 mcg/day upper limit"),
    ((20, 40, 2000), "0.0200 mL/day, below the pump's minimum rate of 0.048 mL/day"),
    ((20, 80, 2000), "use the low-dose concentration of 1000 mcg/mL (guideline 4.1.1)"),
])
def test_refill_warns(args, fragment):
    r = calc.refill(*args)
    assert any(fragment in w for w in r.warnings), r.warnings


def test_refill_with_the_childs_maximum():
    assert any("above this child's maximum of 250 mcg/day" in w
               for w in calc.refill(20, 300, 2000, max_daily_dose_mcg=250).warnings)


@pytest.mark.parametrize(("model", "daily", "conc"), [(20, 20, 2000), (40, 100, 1000), (40, 300, 2000)])
def test_refill_low_dose_is_capped_at_180_days(model, daily, conc):
    r = calc.refill(model, daily, conc)
    # e.g. 20 mcg/day at 2000: 0.01 mL/day, 16 / 0.01145 = 1397 days to the safe residual
    assert r.values["days_to_safe_residual"] > 180
    assert r.values["refill_within_days"] == 180
    assert "refill within 180 days (the 180-day drug stability limit)" in r.text


def test_refill_stability_limit_counts_from_the_fill():
    r = calc.refill(20, 20, 2000, residual_ml=19)
    # 1 mL used at most 0.01145 mL/day: at least 87 days in the reservoir, at most 93 days left
    assert r.values["refill_within_days"] <= 180 - 1 / 0.01145


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((30, 300, 2000), "reservoir must be one of"),
        ((20, 0, 2000), "daily dose"),
        ((20, 300, 0), "concentration"),
        ((20, -5, 2000), "daily dose"),
    ],
)
def test_refill_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        calc.refill(*args)


@pytest.mark.parametrize("residual", [-1, 25])
def test_refill_refuses_an_impossible_residual(residual):
    with pytest.raises(ValueError):
        calc.refill(20, 300, 2000, residual_ml=residual)


# ---------------------------------------------------------------------------------------------
# Oral baclofen for withdrawal (5.1.4): "< 30kg 10 mg stat then 4 - 6 hrly, max dose 60mg / day;
# > 30kg 20mg stat then 4 - 6 hrly, max dose 120mg".  The guideline leaves exactly 30 kg open;
# the rules file ([withdrawal_oral_baclofen] weight_threshold_kg = 30, "under" means
# weight < threshold) puts 30 kg on the > 30 kg side: 20 mg, max 120 mg/day.


@pytest.mark.parametrize(
    ("weight", "stat", "cap"), [(10, 10, 60), (29.9, 10, 60), (30, 20, 120), (30.1, 20, 120), (70, 20, 120)]
)
def test_oral_baclofen_by_weight(weight, stat, cap):
    r = calc.oral_baclofen(weight)
    assert r.section == "5.1.4"
    assert r.values == {"stat_mg": stat, "repeat_hours": [4, 6], "max_mg_day": cap}
    assert (
        f"Oral baclofen for {weight:g} kg: {stat} mg stat then every 4-6 h, maximum {cap} mg/day." in r.text
    )


def test_oral_baclofen_warns_at_exactly_30_kg():
    """5.1.4.1 writes "< 30kg" and "> 30kg": 30 kg is in neither band."""
    (w,) = calc.oral_baclofen(30).warnings
    assert w.startswith('30 kg is in neither band of 5.1.4.1 ("< 30kg" and "> 30kg")')
    assert "10 mg stat, maximum 60 mg/day" in w
    assert calc.oral_baclofen(29.9).warnings == () and calc.oral_baclofen(30.1).warnings == ()


@pytest.mark.parametrize("weight", [3, 400])
def test_oral_baclofen_refuses_an_implausible_weight(weight):
    with pytest.raises(InputError, match=rf"{weight} kg is not a plausible weight \(the rules accept 5-200"):
        calc.oral_baclofen(weight)


def test_oral_bridging_when_the_pump_cannot_deliver_is_a_consultant_decision():
    for r in (calc.oral_baclofen(25), calc.oral_baclofen(None)):
        assert ("When the pump cannot deliver (reservoir empty, battery at end of service, motor "
                "stall)") in r.text
        assert "is a consultant decision (5.1.3.1" in r.text


def test_oral_baclofen_without_a_weight_gives_both():
    r = calc.oral_baclofen(None)
    assert "under 30 kg 10 mg stat" in r.text and "maximum 60 mg/day" in r.text
    assert "30 kg or more 20 mg stat" in r.text and "maximum 120 mg/day" in r.text
    assert "weight not given" in r.text
    assert r.values == {"weight_threshold_kg": 30}


@pytest.mark.parametrize("weight", [0, -3, math.nan])
def test_oral_baclofen_refuses_bad_weights(weight):
    with pytest.raises(ValueError, match="weight must be positive"):
        calc.oral_baclofen(weight)


# ---------------------------------------------------------------------------------------------
# Observations after a test dose (3.4.2-3.4.8): "15 minutely for the 1st hour, then hourly for 6
# hours"; team assessments at 1, 2, 4 and 6 h; the effect peaks at 2-4 h, wears off by 8 h.

SYDNEY = dt.timezone(dt.timedelta(hours=11), "AEDT")


def test_observation_schedule_prints_the_times():
    r = calc.observation_schedule(dt.datetime(2026, 3, 10, 9, 0, tzinfo=SYDNEY))
    assert r.section == "3.4" and r.name == "test_dose_observation"
    obs = [t[11:16] for t in r.values["observations"]]
    assert obs == ["09:15", "09:30", "09:45", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
    assert [t[11:16] for t in r.values["team_assessments"]] == ["10:00", "11:00", "13:00", "15:00"]
    assert [t[11:16] for t in r.values["effect_peak"]] == ["11:00", "13:00"]
    assert r.values["effect_gone"] == "2026-03-10T17:00+11:00"
    for part in ("every 15 min for the first 1 h: 09:15, 09:30, 09:45, 10:00",
                 "11:00, 12:00, 13:00, 14:00, 15:00, 16:00", "(11:00 to 13:00)", "wears off by 8 h (17:00)",
                 "not voided urine", "Barry Albright Dystonia Scale of at least 25%", "Modified Ashworth",
                 "Rehabilitation Registrar (3.4.3)", "Rapid Response Call"):
        assert part in r.text, part


def test_observation_schedule_across_midnight_and_without_a_zone():
    r = calc.observation_schedule(dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC))
    assert "2026-03-11 06:00" in r.text and "with the date when it changes" in r.text
    with pytest.raises(InputError, match="time zone"):
        calc.observation_schedule(dt.datetime(2026, 3, 10, 22, 0))


# ---------------------------------------------------------------------------------------------
# A hospital's rules change the numbers


def test_hospital_rules_change_the_numbers():
    r = {
        "test_dose": {
            "spasticity_young_mcg": [20],
            "young_max_weight_kg": 20,
            "starting_dose_multiplier": 1.5,
        },
        "titration": {"max_step_fraction": 0.10, "max_daily_dose_mcg": 800, "inpatient_step_mcg_day": 25},
        "reservoir": {"safe_residual_ml": 3},
        "pump": {"drug_stability_days": 90},
        "withdrawal_oral_baclofen": {"weight_threshold_kg": 25, "over_stat_mg": 15, "over_max_mg_day": 90},
    }
    assert calc.test_dose(8, 19, rules=r).values["doses_mcg"] == [20]  # 19 kg now under 20 kg
    assert calc.starting_dose(50, rules=r).values["daily_dose_mcg"] == 75
    t = calc.titration(300, rules=r)
    assert t.values["max_mcg_day"] == pytest.approx(330) and "+5 to +10%" in t.text
    assert calc.titration(780, rules=r).values["max_mcg_day"] == 800
    assert calc.titration(300, inpatient=True, rules=r).values["max_mcg_day"] == 325
    refill = calc.refill(20, 300, 2000, rules=r)
    assert refill.values["days_to_safe_residual"] == pytest.approx(17 / 0.17175)
    assert refill.values["refill_within_days"] == 90
    oral = calc.oral_baclofen(28, rules=r)
    assert oral.values["stat_mg"] == 15 and oral.values["max_mg_day"] == 90


def test_defaults_are_the_guideline_numbers():
    """The same calls without overrides (so the test above really shows a change)."""
    assert calc.test_dose(8, 19).values["doses_mcg"] == [50, 75, 100]
    assert calc.starting_dose(50).values["daily_dose_mcg"] == 100
    assert calc.oral_baclofen(28).values["stat_mg"] == 10


# ---------------------------------------------------------------------------------------------
# Every result cites its section and is plain JSON

ALL = {
    "test": (lambda: calc.test_dose(8, 25), "3.1.5"),
    "observe": (lambda: calc.observation_schedule(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), "3.4"),
    "start": (lambda: calc.starting_dose(50), "4.1.2"),
    "titrate": (lambda: calc.titration(300), "4.1.4"),
    "titrate inpatient": (lambda: calc.titration(300, True), "4.1.3"),
    "refill": (lambda: calc.refill(20, 300, 2000), "4.1.6"),
    "oral": (lambda: calc.oral_baclofen(30), "5.1.4"),
    "oral no weight": (lambda: calc.oral_baclofen(None), "5.1.4"),
}


@pytest.mark.parametrize("which", sorted(ALL))
def test_every_result_cites_its_section_and_is_json(which):
    make, section = ALL[which]
    r = make()
    assert r.section == section and r.text and r.name
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) == {"name", "section", "text", "values", "warnings"}
    assert d["section"] == section and isinstance(d["warnings"], list)
