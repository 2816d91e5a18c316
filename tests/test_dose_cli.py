"""``itb dose``: the guideline's calculators on the command line, run in-process through
``itb_device.cli.main`` (``--json`` and ``--rules`` go before the calculator's name)."""

from __future__ import annotations

import json

import pytest

from analysis import calculators as calc
from itb_device.cli import main

DISCLAIMER = "This calculator supports, and does not replace, clinical judgement."


@pytest.fixture(autouse=True)
def _default_rules(monkeypatch):
    monkeypatch.delenv("ITB_CLINICAL_RULES", raising=False)


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
    "oral 30 kg": (("oral", "--weight-kg", "30"), "5.1.4", "20 mg stat then every 4-6 h, maximum 120 mg/day"),
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


def test_warnings_go_to_stderr(capsys):
    rc, out, err = dose(capsys, "test", "--age", "3", "--weight-kg", "14")
    assert rc == 0
    assert "[guideline 3.1.5]" in out and "warning" not in out
    assert (
        err.strip() == "warning: the guideline's test doses are for children aged 4 and over; "
        "specialist decision needed"
    )
    rc, out, err = dose(capsys, "titrate", "--current", "1000")
    assert "warning: 1000 mcg/day is at or above the 1000 mcg/day maximum (4.1.5)" in err


def test_json_keeps_warnings_in_the_document(capsys):
    d = json.loads(dose(capsys, "--json", "test", "--age", "3", "--weight-kg", "14")[1])
    assert len(d["warnings"]) == 1 and "aged 4 and over" in d["warnings"][0]


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
    "age zero": (("test", "--age", "0", "--weight-kg", "20"), "age must be positive"),
    "negative weight": (("test", "--age", "8", "--weight-kg", "-20"), "weight must be positive"),
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
