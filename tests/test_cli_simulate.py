"""``itb simulate``, run in-process through ``itb_device.cli.main``."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLES

from itb_device.cli import main
from parsers import read_log

SCENARIO = SAMPLES / "scenarios" / "mri_telemetry_mode.toml"


def test_simulate_writes_the_log_and_the_truth(tmp_path, capsys):
    log, truth = tmp_path / "out.itblog", tmp_path / "out.truth.json"
    assert main(["simulate", str(SCENARIO), "-o", str(log), "--truth", str(truth)]) == 0
    assert log.read_bytes() == (SAMPLES / "mri_telemetry_mode.itblog").read_bytes()
    assert truth.read_text() == (SAMPLES / "mri_telemetry_mode.truth.json").read_text()
    out = capsys.readouterr()
    assert out.err == ""
    (line,) = out.out.splitlines()
    assert line.startswith(f"{log}: mri_telemetry_mode (seed 5), interrogated 2026-05-20T13:55:00Z")
    assert "expected findings: motor_stall" in line
    assert not read_log(log).damaged


def test_simulate_with_another_seed_and_no_truth(tmp_path, capsys):
    log = tmp_path / "out.itblog"
    assert main(["simulate", str(SCENARIO), "-o", str(log), "--seed", "99"]) == 0
    assert "(seed 99)" in capsys.readouterr().out
    assert log.read_bytes() != (SAMPLES / "mri_telemetry_mode.itblog").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.itblog"]
    truth = tmp_path / "t.json"
    assert main(["simulate", str(SCENARIO), "-o", str(log), "--seed", "99",
                 "--truth", str(truth)]) == 0
    assert json.loads(truth.read_text())["seed"] == 99


BAD = {
    "unknown action": ('name = "x"\nstart = "2026-01-01T00:00:00Z"\n[[timeline]]\n'
                       'at = "+1d"\naction = "teleport"\n', "timeline[0]: unknown action"),
    "no interrogation": ('name = "x"\nstart = "2026-01-01T00:00:00Z"\n',
                         "the timeline needs at least one 'interrogate'"),
    "not TOML": ("name = \n", "not valid TOML"),
    "refused": ('name = "x"\nstart = "2026-01-01T00:00:00Z"\n[[timeline]]\nat = "+0h"\n'
                'action = "program"\ndaily_dose_mcg = 5000\n[[timeline]]\nat = "+1d"\n'
                'action = "interrogate"\n',
                "timeline[0]: program refused: 5000 mcg/day is above the 1000 mcg/day upper limit"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_scenario_exits_2_with_one_line(tmp_path, capsys, case):
    text, fragment = BAD[case]
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    log = tmp_path / "out.itblog"
    assert main(["simulate", str(scenario), "-o", str(log)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    (line,) = out.err.splitlines()
    assert line.startswith(f"itb simulate: error: {scenario}: ")
    assert fragment in line
    assert "Traceback" not in out.err
    assert not log.exists()


def test_a_missing_scenario_exits_2(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o.itblog")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "nope.toml: cannot read" in line


def test_an_unwritable_output_exits_2(tmp_path, capsys):
    out = tmp_path / "no such dir" / "o.itblog"
    assert main(["simulate", str(SCENARIO), "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("itb simulate: error:")
