"""``itb dose``: the guideline's calculators on the command line, run in-process through
``itb_device.cli.main`` (``--json`` and ``--rules`` go before the calculator's name)."""

from __future__ import annotations

import json

import pytest

from analysis import calculators as calc
from itb_device.cli import main

DISCLAIMER = "This calculator supports, and does not replace, clinical judgement."


def dose(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["dose", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


CASES = {
    "test": (
        ("test", "--age", "6", "--weight-kg", "17", "--indication", "dystonia"),
        "3.1.5",
        "50 to 75 mcg (1 to 1.5 mL of 50 mcg/mL)",
    ),
    "start": (("start", "--test-dose", "75"), "4.1.2", "150 mcg/day"),
    "titrate": (("titrate", "--current", "400"), "4.1.4", "420 to 460 mcg/day"),
    "titrate inpatient": (("titrate", "--current", "400", "--inpatient"), "4.1.3", "up to 450 mcg/day"),
    "refill": (("refill", "--model", "20", "--daily", "300"), "4.1.6", "refill within 93 days"),
    "refill low dose": (
        ("refill", "--model", "40", "--daily", "100", "--concentration", "1000"),
        "4.1.6",
        "refill within 180 days (the 180-day drug stability limit)",
    ),
    "oral 29.9 kg": (
        ("oral", "--weight-kg", "29.9"),
        "5.1.4",
        "10 mg stat then every 4-6 h, maximum 60 mg/day",
    ),
    "oral 30.5 kg": (("oral", "--weight-kg", "30.5"), "5.1.4",
                     "20 mg stat then every 4-6 h, maximum 120 mg/day"),
    "titrate with the child's maximum": (("titrate", "--current", "300", "--max-dose", "320"), "4.1.4",
                                         "315 to 320 mcg/day"),
    "oral no weight": (("oral",), "5.1.4", "weight not given"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_text_cites_the_section(capsys, case):
    args, section, fragment = CASES[case]
    rc, out, err = dose(capsys, *args)
    assert rc == 0 and err == ""
    first, last = out.splitlines()
    assert first.startswith(f"[guideline {section}] ")
    assert fragment in first
    assert last == DISCLAIMER


def test_json_is_the_calculators_answer(capsys):
    rc, out, _ = dose(capsys, "--json", "refill", "--model", "20", "--daily", "300", "--residual", "12")
    assert rc == 0
    d = json.loads(out)
    assert d == json.loads(json.dumps(calc.refill(20, 300, 2000, 12).to_dict()))
    assert d["section"] == "4.1.6" and d["values"]["rate_ml_day"] == pytest.approx(0.15)
    # (12 - 4) / (0.15 x 1.145) = 46.6 days
    assert d["values"]["refill_within_days"] == pytest.approx(8 / 0.17175)


def test_json_test_dose(capsys):
    rc, out, _ = dose(capsys, "--json", "test", "--age", "7", "--weight-kg", "25")
    d = json.loads(out)
    assert rc == 0 and d["name"] == "test_dose" and d["section"] == "3.1.5"
    assert d["values"]["doses_mcg"] == [25] and d["values"]["group"] == "young"


def test_json_oral_baclofen(capsys):
    d = json.loads(dose(capsys, "--json", "oral", "--weight-kg", "30")[1])
    assert d["values"] == {"stat_mg": 20, "repeat_hours": [4, 6], "max_mg_day": 120}


WARNED = {
    "titrate at the maximum": (("titrate", "--current", "1000"),
                               "at the 1000 mcg/day upper limit (reached in significant dystonia, 4.1.5)"),
    "titrate 5000": (("titrate", "--current", "5000"), "check the dose and its unit (mcg/day, not mg)"),
    "test at 18 kg": (("test", "--age", "9", "--weight-kg", "18"), "18 kg is in neither band of 3.1.5"),
    "test at 7 years": (("test", "--age", "7", "--weight-kg", "25"), "7 completed years is at the boundary"),
    "start from 0.05": (("start", "--test-dose", "0.05"), "outside the guideline's test doses (25-100 mcg"),
    "oral at 30 kg": (("oral", "--weight-kg", "30"),
                      '30 kg is in neither band of 5.1.4.1 ("< 30kg" and "> 30kg")'),
    "refill 2 mcg/mL": (("refill", "--model", "20", "--daily", "300", "--concentration", "2"),
                        "above the pump's maximum rate of 24 mL/day"),
    "refill 3000 mcg/mL": (("refill", "--model", "20", "--daily", "300", "--concentration", "3000"),
                           "3000 mcg/mL is not a marketed concentration"),
    "refill 5000 mcg/day": (("refill", "--model", "20", "--daily", "5000"),
                            "above the 1000 mcg/day upper limit"),
    "refill residual 3 mL": (("refill", "--model", "20", "--daily", "300", "--residual", "3"), "refill NOW"),
    "refill after 200 days": (("refill", "--model", "20", "--daily", "300", "--days-since-fill", "200"),
                              "refill NOW: the drug has been in the pump 200 days"),
    "refill below the minimum rate": (("refill", "--model", "40", "--daily", "40"),
                                      "below the pump's minimum rate of 0.048 mL/day"),
}


@pytest.mark.parametrize("case", sorted(WARNED))
def test_warnings_go_with_the_answer_on_stdout_and_in_json(capsys, case):
    args, fragment = WARNED[case]
    rc, out, err = dose(capsys, *args)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("[guideline ") and lines[-1] == DISCLAIMER
    assert any(line.startswith("  WARNING: ") and fragment in line for line in lines[1:-1]), out
    d = json.loads(dose(capsys, "--json", *args)[1])
    assert any(fragment in w for w in d["warnings"])


def test_refill_now_is_said_in_the_answer(capsys):
    _, out, _ = dose(capsys, "refill", "--model", "20", "--daily", "300", "--residual", "3")
    assert "refill NOW (3 mL left is at or below the 4 mL safe residual)" in out.splitlines()[0]
    assert "refill within 0 days" not in out


def test_no_test_dose_under_four_years(capsys):
    rc, out, err = dose(capsys, "test", "--age", "2", "--weight-kg", "12", "--indication", "dystonia")
    assert rc == 2 and out == ""
    assert err == ("itb dose: error: --age: 2 years: no guideline dose under 4 years (3.1.5): "
                   "specialist decision\n")


def test_observe_prints_the_times(capsys):
    rc, out, err = dose(capsys, "observe", "--given", "2026-03-10 09:00", "--tz", "Australia/Sydney")
    assert rc == 0 and err == ""
    assert out.startswith("[guideline 3.4] Test dose given 2026-03-10 09:00 AEDT")
    assert "09:15, 09:30, 09:45, 10:00; then every 1 h for 6 h or until discharge: 11:00, 12:00" in out
    assert out.splitlines()[-1] == DISCLAIMER
    d = json.loads(dose(capsys, "--json", "observe", "--given", "2026-03-09T22:00Z", "--tz",
                        "Australia/Sydney")[1])
    assert d["section"] == "3.4" and d["values"]["observations"][0] == "2026-03-10T09:15+11:00"


def test_json_keeps_warnings_in_the_document(capsys):
    d = json.loads(dose(capsys, "--json", "test", "--age", "9", "--weight-kg", "18")[1])
    assert len(d["warnings"]) == 1 and "neither band" in d["warnings"][0]


def test_a_rules_file_changes_the_numbers(capsys, tmp_path):
    rules = tmp_path / "hospital.toml"
    rules.write_text(
        "[withdrawal_oral_baclofen]\nweight_threshold_kg = 25\n\n[titration]\nmax_daily_dose_mcg = 500\n"
    )
    d = json.loads(dose(capsys, "--json", "--rules", rules, "oral", "--weight-kg", "28")[1])
    assert d["values"]["stat_mg"] == 20 and d["values"]["max_mg_day"] == 120
    assert json.loads(dose(capsys, "--json", "oral", "--weight-kg", "28")[1])["values"]["stat_mg"] == 10
    _, out, _ = dose(capsys, "--rules", rules, "titrate", "--current", "440")
    assert "462 to 500 mcg/day" in out and "maximum 500 mcg/day" in out


BAD = {
    "age zero": (("test", "--age", "0", "--weight-kg", "20"), "--age: 0 years: no guideline dose under 4"),
    "age in years and months": (("test", "--age", "7.5", "--weight-kg", "20"),
                                "--age: give the age in completed years (7, not 7.5)"),
    "test weight 400 kg": (("test", "--age", "8", "--weight-kg", "400"),
                           "--weight-kg: 400 kg is not a plausible"),
    "oral weight 3 kg": (("oral", "--weight-kg", "3"), "--weight-kg: 3 kg is not a plausible weight"),
    "start above the maximum": (("start", "--test-dose", "600"),
                                "--test-dose: 2 x 600 mcg = 1200 mcg/day would be above the 1000 mcg/day"),
    "start above the child's maximum": (("start", "--test-dose", "50", "--max-dose", "80"),
                                        "above this child's maximum of 80 mcg/day"),
    "zero maximum": (("titrate", "--current", "300", "--max-dose", "0"), "--max-dose: the child's maximum"),
    "observe a bad time": (("observe", "--given", "tea time"), "--given 'tea time': use a date and time"),
    "negative weight": (("test", "--age", "8", "--weight-kg", "-20"), "--weight-kg: weight must be positive"),
    "zero test dose": (("start", "--test-dose", "0"), "test dose must be positive"),
    "zero current": (("titrate", "--current", "0"), "current daily dose must be positive"),
    "zero daily": (("refill", "--model", "20", "--daily", "0"), "daily dose must be positive"),
    "zero concentration": (
        ("refill", "--model", "20", "--daily", "300", "--concentration", "0"),
        "concentration must be positive",
    ),
    "zero weight": (("oral", "--weight-kg", "0"), "weight must be positive"),
    "nan weight": (("oral", "--weight-kg", "nan"), "weight must be positive"),
    "missing rules": (
        ("--rules", "/nonexistent/rules.toml", "start", "--test-dose", "50"),
        "cannot read clinical rules",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line(capsys, case):
    args, fragment = BAD[case]
    rc, out, err = dose(capsys, *args)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("itb dose: error: ")
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ("refill", "--model", "30", "--daily", "300"),
        ("test", "--age", "8"),
        ("test", "--age", "8", "--weight-kg", "20", "--indication", "epilepsy"),
        ("titrate", "--current", "lots"),
    ],
)
def test_argument_errors_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["dose", *args])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ("refill", "--model", "20", "--daily", "300", "--residual", "-1"),
        ("refill", "--model", "20", "--daily", "300", "--residual", "25"),
        ("titrate", "--current", "inf"),
    ],
)
def test_impossible_numbers_exit_2(capsys, args):
    rc, out, _ = dose(capsys, *args)
    assert rc == 2 and out == ""
