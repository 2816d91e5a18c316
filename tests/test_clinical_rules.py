"""One home for the clinical rules (``clinical.rules``): one loader, one deep merge, errors that
name the file and key, the environment variable's name written once, and a package the
analysis, the programmer and the simulator import without a cycle."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from clinical.rules import DEFAULT_RULES, ENV_VAR, InputError, Rules, RulesError, get_rules
from itb_device.cli import main

DELAYED = ROOT / "sample_logs" / "mri_delayed_recovery.itblog"


def hospital(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hospital.toml"
    path.write_text(text)
    return path


def test_overriding_one_entry_of_a_table_keeps_the_others(tmp_path):
    """A hospital file with only the 20 mL pump's discrepancy keeps the 40 mL pump's 2.0 mL."""
    r = get_rules(hospital(tmp_path, '[pump]\nrefill_discrepancy_ml = { "20" = 1.5 }\n'))
    assert r.refill_discrepancy_ml(20) == 1.5 and r.refill_discrepancy_ml(40) == 2.0
    assert r.number("pump", "flow_accuracy_fraction") == 0.145  # the rest from the default
    d = get_rules({"pump": {"refill_discrepancy_ml": {"20": 1.5}}})
    assert d.refill_discrepancy_ml(40) == 2.0


def test_a_partial_window_table_does_not_break_the_check_after_diathermy(tmp_path, capsys):
    rules = hospital(tmp_path, "[check]\ndefault_window_h = { mri = 3.0 }\n")
    r = get_rules(rules)
    assert r.get("check", "default_window_h") == {"mri": 3.0, "diathermy": 6.0}
    rc = main(["check", str(DELAYED), "--after", "diathermy", "--end", "2026-03-10T15:00Z",
               "--rules", str(rules), "--json"])
    out = capsys.readouterr()
    assert rc == 0 and "Traceback" not in out.err
    assert json.loads(out.out)["verdict"] in ("OK", "REVIEW", "URGENT")


@pytest.mark.parametrize(("text", "message"), [
    ("[check]\ndefault_window_h = { ct = 1.0 }\n", "unknown key [check] default_window_h.ct"),
    ('[pump]\nrefill_discrepancy_ml = { "60" = 3.0 }\n', 'unknown key [pump] refill_discrepancy_ml.60'),
    ("[pumps]\nreservoir_ml = [20]\n", "unknown section [pumps] (did you mean pump?)"),
    ("[pump]\nreservoir_mls = [20]\n", "unknown key [pump] reservoir_mls"),
    ('[pump]\nreservoir_ml = ["20"]\n', "[pump] reservoir_ml must be a list of numbers"),
    ('[check]\ndefault_window_h = { mri = "3" }\n', "[check] default_window_h.mri must be a number"),
    ("[check]\ndefault_window_h = 3\n", "[check] default_window_h must be a table"),
])
def test_anything_unknown_names_the_file_and_the_key(tmp_path, text, message):
    path = hospital(tmp_path, text)
    with pytest.raises(RulesError) as exc:
        get_rules(path)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)


def test_overrides_given_as_a_dict_are_checked_too():
    with pytest.raises(RulesError, match=r"unknown key \[risk\] low_shar"):
        get_rules({"risk": {"low_shar": 0.05}})
    assert get_rules({"risk": {"low_share": 0.05}}).number("risk", "low_share") == 0.05


def test_the_environment_variable_is_read_once_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(hospital(tmp_path, "[reservoir]\nsafe_residual_ml = 3.0\n")))
    r = get_rules()
    assert r.number("reservoir", "safe_residual_ml") == 3.0 and r.source.startswith(f"{ENV_VAR}=")
    code = [p for d in ("analysis", "itb_device", "parsers", "clinical") for p in (ROOT / d).rglob("*.py")]
    written = {p.relative_to(ROOT).as_posix(): len(re.findall(rf"[\"']{ENV_VAR}[\"']", p.read_text()))
               for p in code}
    assert {k: v for k, v in written.items() if v} == {"clinical/rules.py": 1}


def test_one_loader():
    """No other module reads the rules file or merges rules."""
    code = [p for d in ("analysis", "itb_device", "parsers") for p in (ROOT / d).rglob("*.py")]
    readers = [p.relative_to(ROOT).as_posix() for p in code if "tomllib" in p.read_text()]
    assert readers == ["itb_device/sim/scenario.py"]  # scenario files, not rules
    merges = [p.name for p in code if re.search(r"def _?deep_merge|\.update\(values\)", p.read_text())]
    assert merges == []
    assert DEFAULT_RULES.name == "clinical_rules.toml" and DEFAULT_RULES.exists()


def test_typed_access_and_missing_rules():
    r = get_rules()
    assert r.range("patient", "weight_kg_range") == (5.0, 200.0)
    assert r.numbers("pump", "marketed_concentrations_mcg_ml") == (50.0, 500.0, 1000.0, 2000.0)
    assert r["titration"]["max_daily_dose_mcg"] == 1000
    with pytest.raises(KeyError, match=r"\[pump\] nothing is missing from [a-z]+/clinical_rules.toml"):
        r.get("pump", "nothing")
    with pytest.raises(RulesError):
        Rules({}, "x.toml")["pump"]


@pytest.mark.parametrize("kg", [3, 400, 0, -1, float("nan")])
def test_one_plausible_weight_range(kg):
    with pytest.raises(InputError) as exc:
        get_rules().check_weight(kg)
    assert exc.value.field == "weight_kg"
    assert get_rules().check_weight(35) == 35


def test_the_rules_sit_below_everything_that_uses_them():
    """``clinical`` imports none of parsers, analysis, itb_device; parsers does not import it."""
    code = ("import sys, clinical, clinical.titration; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'parsers', 'analysis', 'itb_device'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    code = "import sys, parsers; print('clinical' in sys.modules or 'analysis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("command", "kg"), [("check", "400"), ("check", "3"), ("report", "400")])
def test_check_and_report_use_the_same_weight_range(capsys, tmp_path, command, kg):
    args = ([str(DELAYED), "--after", "mri", "--end", "2026-03-10T15:00Z"] if command == "check"
            else [str(DELAYED), "-o", str(tmp_path / "r.html")])
    assert main([command, *args, "--weight-kg", kg]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert f"--weight-kg: {kg} kg is not a plausible weight (the rules accept 5-200 kg" in out.err
    assert not (tmp_path / "r.html").exists()


def test_the_analysis_refuses_an_implausible_weight_too():
    from analysis import analyse

    with pytest.raises(InputError, match="400 kg is not a plausible weight"):
        analyse(DELAYED, weight_kg=400)
