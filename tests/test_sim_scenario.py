"""Scenario files: loading, their errors (naming the file and the entry), times and runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from itb_device.sim.scenario import (
    ScenarioError,
    load_scenario,
    parse_time,
    run_scenario,
    scenario_from_dict,
)
from parsers import RecordCode
from parsers.model import datetime_to_clock

START = 820_573_200  # 2026-01-01T09:00:00Z

GOOD = """\
name = "t"
start = "2026-01-01T09:00:00Z"

[[timeline]]
at = "+0h"
action = "program"
daily_dose_mcg = 300

[[timeline]]
at = "+2d"
action = "interrogate"
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(path: Path, run: bool = False) -> str:
    with pytest.raises(ScenarioError) as exc:
        sc = load_scenario(path)
        if run:
            run_scenario(sc)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg
    return msg


def test_start_constant():
    assert datetime_to_clock(dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)) == START


def test_a_good_scenario_loads(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD))
    assert (sc.name, sc.start, sc.seed, sc.description) == ("t", START, 0, "")
    assert [(it["action"], it["_t"]) for it in sc.timeline] == [
        ("program", START), ("interrogate", START + 2 * 86400)]
    assert sc.timeline[1]["_where"] == f"{sc.path}: timeline[1]"


@pytest.mark.parametrize(("text", "fragment"), [
    (GOOD.replace('name = "t"\n', ""), "missing 'name'"),
    (GOOD.replace('start = "2026-01-01T09:00:00Z"\n', ""), "missing 'start'"),
    (GOOD.replace('action = "program"', 'action = "teleport"'),
     "timeline[0]: unknown action 'teleport' (one of bolus, clock_reset,"),
    (GOOD.replace('at = "+2d"', 'at = "next tuesday"'),
     "timeline[1]: cannot read time 'next tuesday' (ISO 8601 with offset, or +3d, +2h30min)"),
    (GOOD.replace('at = "+2d"', 'at = "2d"'), "timeline[1]: cannot read time '2d'"),
    (GOOD.replace('at = "+2d"', 'at = "+2 weeks"'), "timeline[1]: cannot read time '+2 weeks'"),
    (GOOD.replace('at = "+2d"', "at = 2026-01-03T09:00:00"),
     "timeline[1]: time 2026-01-03 09:00:00 needs a UTC offset"),
    (GOOD.replace('at = "+2d"', 'at = "2026-01-03T09:00:00"'),
     "timeline[1]: cannot read time '2026-01-03T09:00:00' (ISO 8601 with offset"),
    (GOOD.replace('start = "2026-01-01T09:00:00Z"', "start = 2026-01-01T09:00:00"),
     "start: time 2026-01-01 09:00:00 needs a UTC offset"),
    (GOOD.replace('at = "+2d"\n', ""), "timeline[1]: missing 'at'"),
    (GOOD.replace("[[timeline]]", "[[timeline]", 1), "not valid TOML"),
])
def test_load_errors_name_the_file_and_the_entry(tmp_path, text, fragment):
    assert fragment in error_for(write(tmp_path, text))


def test_a_missing_file_is_a_scenario_error(tmp_path):
    assert "cannot read" in error_for(tmp_path / "absent.toml")


@pytest.mark.parametrize(("text", "fragment"), [
    (GOOD.replace('action = "interrogate"', 'action = "refill"\nvolume_ml = 10'),
     "the timeline needs at least one 'interrogate'"),
    (GOOD.replace("daily_dose_mcg = 300", 'daily_dose_mcg = 300\nmode = "turbo"'),
     "timeline[0]: program refused: unknown infusion mode 'turbo'"),
    (GOOD + '[[timeline]]\nat = "+1d"\naction = "program"\ndaily_dose_mcg = 400\n',
     "timeline[2]: program refused: 400 mcg/day is 33% above the current 300 mcg/day"),
    (GOOD + '[[timeline]]\nat = "+1d"\naction = "refill"\nvolume_ml = 30\n',
     "timeline[2]: refill refused: refill volume 30.0 mL does not fit a 20 mL reservoir"),
    (GOOD + '[[timeline]]\nat = "+1d"\naction = "mri"\nrecovery = "sometimes"\n',
     "timeline[2]: mri: MRI recovery must be one of"),
    (GOOD + '[[timeline]]\nat = "+1d"\naction = "kink"\n', "timeline[2]: kink: 'duration_h'"),
    (GOOD + '[[timeline]]\nat = "+1d"\naction = "visit"\nsteps = [{ action = "dance" }]\n',
     "timeline[2]: a visit step cannot be 'dance'"),
])
def test_run_errors_name_the_file_and_the_entry(tmp_path, text, fragment):
    assert fragment in error_for(write(tmp_path, text), run=True)


@pytest.mark.parametrize(("text", "seconds"), [
    ("+3d", 3 * 86400),
    ("+2h30min", 2 * 3600 + 30 * 60),
    ("+1.5h", 5400),
    ("+ 1d 2h", 86400 + 7200),
    ("+45s", 45),
    ("+0h", 0),
    ("+1d12h30min15s", 86400 + 12 * 3600 + 1800 + 15),
])
def test_relative_times(text, seconds):
    assert parse_time(text, START, "here") == START + seconds


@pytest.mark.parametrize(("value", "utc"), [
    ("2026-01-01T10:00:00+01:00", START),
    ("2026-01-01T09:00:00Z", START),
    (dt.datetime(2026, 1, 1, 4, tzinfo=dt.timezone(dt.timedelta(hours=-5))), START),
])
def test_absolute_times(value, utc):
    assert parse_time(value, 0, "here") == utc


@pytest.mark.parametrize("bad", ["", "+", "3d", "+3w", "+-1h", "soon", 12, None])
def test_unreadable_times_name_where(bad):
    with pytest.raises(ScenarioError, match=r"^file.toml: timeline\[4\]: cannot read time"):
        parse_time(bad, START, "file.toml: timeline[4]")


def _data(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "t", "start": "2026-01-01T09:00:00Z", "timeline": timeline}


def test_the_timeline_is_sorted_and_relative_times_run():
    sc = scenario_from_dict(_data([
        {"at": "+2h30min", "action": "interrogate"},
        {"at": "+0h", "action": "program", "daily_dose_mcg": 300},
    ]))
    assert [it["action"] for it in sc.timeline] == ["program", "interrogate"]
    result = run_scenario(sc)
    assert result.interrogated_at == START + 9000
    assert result.image.header.programmer_clock == START + 9000


def test_a_final_interrogation_ends_the_run_early():
    result = run_scenario(scenario_from_dict(_data([
        {"at": "+0h", "action": "program", "daily_dose_mcg": 300},
        {"at": "+1d", "action": "interrogate", "final": True},
        {"at": "+2d", "action": "mri"},
        {"at": "+3d", "action": "interrogate"},
    ])))
    assert result.interrogated_at == START + 86400
    assert result.procedures == []
    assert result.pump.now == START + 86400


def test_scenario_without_a_path_names_itself():
    with pytest.raises(ScenarioError, match=r"^<scenario>: missing 'start'"):
        scenario_from_dict({"name": "x"})
    with pytest.raises(ScenarioError, match=r"^nameless: the timeline needs"):
        run_scenario(scenario_from_dict({"name": "nameless", "start": "2026-01-01T00:00:00Z"}))


def test_visits_go_through_the_programmer_and_sessions_are_logged():
    result = run_scenario(scenario_from_dict({
        **_data([
            {"at": "+0h", "action": "visit", "steps": [
                {"action": "program", "daily_dose_mcg": 300},
                {"action": "bolus", "dose_mcg": 50, "duration_min": 5},
            ]},
            {"at": "+1d", "action": "visit", "steps": [
                {"action": "program", "daily_dose_mcg": 600, "override": True, "reason": "x"}]},
            {"at": "+2d", "action": "interrogate"},
        ]),
        "pump": {"clock_drift_ppm": 0},
    }))
    pages = sorted(result.image.pages, key=lambda p: p.seq)
    recs = [r for p in pages for r in p.records]
    starts = [r.values["session_id"] for r in recs if r.code == RecordCode.TELEMETRY_START]
    ends = [r.values["session_id"] for r in recs if r.code == RecordCode.TELEMETRY_END]
    assert starts == [1, 2, 3] and ends == [1, 2]  # the last session is still open when read
    rx = [(r.values["daily_dose_mcg_day"], r.values["override"]) for r in recs
          if r.code == RecordCode.PRESCRIPTION]
    assert rx == [(300, 0), (600, 1)]
    assert [p["override"] for p in result.programming] == [False, True]
    assert len(result.programming[1]["problems"]) == 1
    assert [r.values["dose_mcg"] for r in recs if r.code == RecordCode.BOLUS_END] == [
        pytest.approx(50)]
