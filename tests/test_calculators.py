"""The guideline's dose calculators (``analysis.calculators``), against the CHW ITB practice
guideline: test dose 3.1.5, starting dose 4.1.2, titration 4.1.3-4.1.5, refill 4.1.6 and
oral baclofen for withdrawal 5.1.4.  Expected numbers are worked out by hand below."""

from __future__ import annotations

import json
import math

import pytest

# the module, not its functions: pytest would collect a function named test_dose as a test
from analysis import calculators as calc


@pytest.fixture(autouse=True)
def _default_rules(monkeypatch):
    """The shipped rules file, whatever the environment says."""
    monkeypatch.delenv("ITB_CLINICAL_RULES", raising=False)


# ---------------------------------------------------------------------------------------------
# Test dose (3.1.5): "4 - 7 years / < 18 kg": spasticity 25, dystonia 50-75;
# "> 7 years / > 18 kg": spasticity 50, 75 or 100, dystonia 50-100.
# The rules read "7 years or younger, or under 18 kg" as the younger group: 7 years exactly is
# younger, 18 kg exactly is not "under 18 kg" (the guideline leaves exactly 18 kg open).

TEST_DOSES = [
    # age, weight, indication, doses, group
    (4, 15, "spasticity", [25], "young"),
    (7, 30, "spasticity", [25], "young"),  # 7 years is in "4 - 7 years"
    (7.01, 30, "spasticity", [50, 75, 100], "older"),
    (8, 17.9, "spasticity", [25], "young"),  # older but under 18 kg: the lighter doses
    (8, 18, "spasticity", [50, 75, 100], "older"),
    (8, 18.1, "spasticity", [50, 75, 100], "older"),
    (6, 25, "spasticity", [25], "young"),  # heavy but 7 or younger
    (7, 20, "dystonia", [50, 75], "young"),
    (7.01, 20, "dystonia", [50, 100], "older"),
    (10, 17.9, "dystonia", [50, 75], "young"),
    (10, 18, "dystonia", [50, 100], "older"),
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
    assert "7 years or younger, or under 18 kg" in young.text
    older = calc.test_dose(12, 40)
    assert "50 mcg (1 mL of 50 mcg/mL) or 75 mcg (1.5 mL of 50 mcg/mL) or 100 mcg (2 mL" in older.text
    dystonia = calc.test_dose(12, 40, "DYSTONIA")
    assert "dystonia" in dystonia.text and "50 to 100 mcg (1 to 2 mL of 50 mcg/mL)" in dystonia.text


def test_test_dose_warns_under_four_years():
    r = calc.test_dose(3.9, 14)
    assert r.values["doses_mcg"] == [25]
    assert any("aged 4 and over" in w for w in r.warnings)
    assert not any("aged 4" in w for w in calc.test_dose(4, 14).warnings)


def test_test_dose_warns_when_older_but_light():
    (w,) = calc.test_dose(9, 17).warnings
    assert "under 18 kg" in w
    assert calc.test_dose(9, 18).warnings == ()
    assert calc.test_dose(6, 17).warnings == ()


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
    assert r.values == {"daily_dose_mcg": daily}
    assert f"{daily} mcg/day" in r.text and f"test dose of {test} mcg" in r.text


def test_starting_dose_refuses_zero():
    with pytest.raises(ValueError, match="test dose must be positive"):
        calc.starting_dose(0)


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
    assert any("1000 mcg/day maximum (4.1.5)" in w for w in r.warnings)
    assert r.values["max_mcg_day"] <= 1000


@pytest.mark.parametrize("current", [960, 1000, 1100])
def test_titration_range_never_exceeds_the_cap(current):
    r = calc.titration(current)
    assert r.values["min_mcg_day"] <= r.values["max_mcg_day"] <= 1000


@pytest.mark.parametrize(("current", "upper"), [(300, 350), (100, 150), (980, 1000), (1000, 1000)])
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
