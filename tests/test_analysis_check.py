"""The two-hour check after an MRI or surgery with diathermy (guideline section 2):
``analysis.check.check`` on the samples and on logs written for the purpose, and ``itb check``
run in-process (``itb_device.cli.main`` with capsys) and once as a real subprocess.

Procedure windows come from each sample's ``*.truth.json``; drug amounts expected below are
worked out by hand from the prescription in the log (stated next to each one).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES

from analysis.check import SCHEMA, CheckInputError, CheckResult, check
from itb_device.cli import main
from parsers import InterrogationLog, read_log, write_log

DOC = ROOT / "docs" / "check-json.md"
H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)
DELAYED = SAMPLES / "mri_delayed_recovery.itblog"  # MRI 2026-03-10 14:00-15:00Z, checked 17:00Z
PROMPT = SAMPLES / "mri_prompt_recovery.itblog"  # MRI 2026-04-20 10:00-10:45Z, checked 12:45Z
UNLOGGED = SAMPLES / "mri_recovery_unlogged.itblog"  # MRI 2026-02-12 09:30-10:10Z, checked 12:10Z
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


@cache
def _log(name: str) -> InterrogationLog:
    return read_log(SAMPLES / f"{name}.itblog")


@cache
def _truth(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.truth.json").read_text())


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@cache
def sample_check(name: str) -> CheckResult:
    """check() on a sample with its true procedure window and the child's weight."""
    truth = _truth(name)
    (proc,) = truth["procedures"]
    return check(
        _log(name), proc["kind"], _utc(proc["end_utc"]), _utc(proc["start_utc"]), weight_kg=truth["weight_kg"]
    )


def interrogated(name: str) -> dt.datetime:
    return _log(name).header.interrogated_at


def _written(tmp_path: Path, name: str, **header_changes: int) -> InterrogationLog:
    """A sample rewritten with parsers.write_log after changing header fields."""
    image = _log(name).to_image()
    header = dataclasses.replace(image.header, **header_changes)
    return read_log(write_log(tmp_path / f"{name}.itblog", dataclasses.replace(image, header=header)))


# ---------------------------------------------------------------------------------------------
# check() on the samples with their true procedure windows

EXPECTED_VERDICT = {
    "mri_delayed_recovery": "URGENT",
    "mri_prompt_recovery": "OK",
    "mri_recovery_unlogged": "REVIEW",
    "mri_telemetry_mode": "REVIEW",
    "diathermy_over_delivery": "REVIEW",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_VERDICT))
def test_sample_verdict_and_risks_match_the_truth(name):
    r = sample_check(name)
    assert r.verdict == EXPECTED_VERDICT[name]
    assert {k: v.level for k, v in r.assessment.risks.items()} == _truth(name)["expected_risk"]
    assert (r.verdict == "OK") == (r.reasons == [])
    assert r.interrogated_s == int(_utc(_truth(name)["interrogated_at_utc"]).timestamp())


def test_delayed_recovery_is_urgent_and_says_no_drug_is_delivered_now():
    r = sample_check("mri_delayed_recovery")
    assert r.verdict == "URGENT"
    assert "the motor is still stalled: no drug is being delivered" in r.reasons
    assert any(x.startswith("withdrawal risk is high") for x in r.reasons)
    stall = r.summary[0]
    assert "stalled at 2026-03-10 14:00 UTC" in stall
    assert "had NOT recovered" in stall and "interrogated at 2026-03-10 17:00 UTC" in stall
    assert "(3 h 00 min without delivery)" in stall
    assert "No drug is being delivered now." in stall
    # 450 mcg/day programmed; nothing delivered from the MRI start (14:00) to the check (17:00):
    # 3 h x 450/24 mcg/h = 56.25 mcg, 12.5% of the daily dose.
    assert r.daily_dose_mcg == pytest.approx(450)
    assert r.missed_mcg == pytest.approx(56.25)
    assert r.excess_mcg == pytest.approx(0)
    assert "about 56 mcg was not delivered (12% of the 450 mcg daily dose)" in r.summary[1]
    d = r.to_dict()
    assert d["missed_mcg"] == 56.2 and d["missed_share_of_daily_dose"] == 0.125
    assert r.hours_after_end == pytest.approx(2.0)


def test_delayed_recovery_evidence_is_the_logged_stall_in_time_order():
    r = sample_check("mri_delayed_recovery")
    times = [e.time_s for e in r.evidence]
    assert times == sorted(times)
    start = int(_utc("2026-03-10T14:00:00Z").timestamp())
    assert (start, "motor stall logged") in [(e.time_s, e.text) for e in r.evidence]
    assert all(e.offset is not None and e.offset > 0 for e in r.evidence)
    lookback = start - 3600  # [check] lookback_h = 1 before the procedure start
    assert all(lookback <= t <= r.interrogated_s + 60 for t in times)


def test_prompt_recovery_is_ok_and_says_when_it_recovered():
    r = sample_check("mri_prompt_recovery")
    assert r.verdict == "OK" and r.reasons == []
    (stall,) = [f for f in _truth("mri_prompt_recovery")["expected_findings"] if f["kind"] == "motor_stall"]
    recovered = _utc(stall["end_utc"])  # 10:53Z, 8 min after the MRI ended at 10:45Z
    assert (
        f"recovered at {recovered:%Y-%m-%d %H:%M} UTC, 8 min after the MRI ended (stalled 53 min)"
        in r.summary[0]
    )
    assert not any("NOT recovered" in s for s in r.summary)
    assert r.missed_mcg is not None and r.missed_mcg > 0
    assert r.excess_mcg == pytest.approx(0, abs=1)


def test_unlogged_recovery_asks_to_interrogate_again():
    r = sample_check("mri_recovery_unlogged")
    assert r.verdict == "REVIEW"
    assert "the stall recovery is not logged as the rotor shows: interrogate again" in r.reasons
    assert any("interrogate the pump again" in s for s in r.summary)
    assert "the motor is still stalled: no drug is being delivered" not in r.reasons


def test_telemetry_mode_stall_is_review_and_recovers_only_at_the_interrogation():
    r = sample_check("mri_telemetry_mode")
    assert r.verdict == "REVIEW"
    assert any(x.startswith("withdrawal risk is low") for x in r.reasons)
    assert any(x.startswith("delivery restarted only at this interrogation") for x in r.reasons)
    assert "recovered at 2026-05-20 13:55 UTC, 2 h 05 min after the MRI ended" in r.summary[0]
    assert "Delivery restarted only at this interrogation" in r.summary[0]
    assert r.missed_mcg is not None and r.missed_mcg > 0


def test_diathermy_over_delivery_is_review_with_the_excess():
    r = sample_check("diathermy_over_delivery")
    assert r.verdict == "REVIEW"
    assert any(x.startswith("overdose risk is moderate") for x in r.reasons)
    # 400 mcg/day; the rotor ran at 3x for the 2 h of surgery: excess 2 x 400/24 x 2 h = 66.7 mcg.
    assert r.excess_mcg == pytest.approx(400 / 24 * 2 * 2, rel=0.01)
    assert r.missed_mcg < 1
    assert any(
        "more than programmed from 2026-07-02 10:00 UTC to 2026-07-02 12:00 UTC" in s for s in r.summary
    )
    assert any("about 67 mcg more than programmed was delivered (17% of the 400 mcg" in s for s in r.summary)
    assert r.to_dict()["excess_share_of_daily_dose"] == pytest.approx(66.7 / 400, abs=1e-3)


def test_normal_year_with_an_mri_near_the_end_is_ok():
    now = interrogated("normal_year")
    r = check(_log("normal_year"), "mri", now - 3 * H, now - 4 * H)
    assert r.verdict == "OK" and r.reasons == []
    assert r.summary[0] == ("No motor stall was found during or after the MRI (records, delivery history "
                            "and status).")
    assert "the pump delivered as programmed (its rotor count matches the program)" in r.summary[-2]
    assert r.summary[-1].startswith("OK is from the pump's record only") and "child's signs" in r.summary[-1]
    assert r.missed_mcg < 1 and r.excess_mcg < 1
    assert r.notes == []


def test_the_start_is_assumed_from_the_rules_when_not_given():
    now = interrogated("normal_year")
    mri = check(_log("normal_year"), "mri", now - 3 * H)
    assert mri.procedure.start_s == int((now - 5 * H).timestamp())  # default_window_h.mri = 2
    assert mri.details["assumed_start"] and "MRI start was not given" in mri.notes[0]
    surgery = check(_log("normal_year"), "diathermy", now - 3 * H)
    assert surgery.procedure.start_s == int((now - 9 * H).timestamp())  # default_window_h.diathermy = 6


def _gap_windows() -> list[tuple[str, dt.datetime, dt.datetime]]:
    gap = _log("corrupted_log").gaps.iloc[0]
    g0, g1 = gap.start_utc.to_pydatetime(), gap.end_utc.to_pydatetime()
    mid = g0 + (g1 - g0) / 2
    return [
        ("inside", mid - H, mid),
        ("over the start", g0 - H, g0 + H),
        ("over the end", g1 - H, g1 + H),
    ]


@pytest.mark.parametrize("where", ["inside", "over the start", "over the end"])
def test_corrupted_log_over_the_damaged_pages_is_never_ok(where):
    log = _log("corrupted_log")
    assert len(log.gaps) >= 1 and log.damaged
    (start, end) = next((s, e) for w, s, e in _gap_windows() if w == where)
    r = check(log, "mri", end, start, weight_kg=29)
    assert r.verdict == "REVIEW"
    assert {k: v.level for k, v in r.assessment.risks.items()} == {
        "withdrawal": "cannot_rule_out",
        "overdose": "cannot_rule_out",
    }
    assert "part of the history in the procedure window is missing or damaged" in r.reasons
    assert r.missed_mcg is None and r.excess_mcg is None
    assert any("cannot be worked out" in s for s in r.summary)
    assert r.to_dict()["missed_mcg"] is None


# ---------------------------------------------------------------------------------------------
# The check refuses to reassure


@pytest.mark.parametrize("minutes", [60, 119])
def test_interrogated_less_than_two_hours_after_the_mri_is_review(minutes):
    now = interrogated("normal_year")
    r = check(_log("normal_year"), "mri", now - minutes * MIN, now - minutes * MIN - H)
    assert r.verdict == "REVIEW"
    (reason,) = r.reasons
    assert f"interrogated {minutes} min after the MRI ended" in reason
    assert "the guideline asks for 2 h (section 2)" in reason


def test_interrogated_exactly_two_hours_after_the_mri_is_ok():
    now = interrogated("normal_year")
    assert check(_log("normal_year"), "mri", now - 2 * H, now - 3 * H).verdict == "OK"


def test_diathermy_has_no_waiting_time():
    now = interrogated("normal_year")  # [check] check_after_diathermy_hours = 0
    r = check(_log("normal_year"), "diathermy", now - 5 * MIN, now - 2 * H)
    assert r.verdict == "OK", r.reasons


def test_a_procedure_ending_after_the_interrogation_is_refused():
    now = interrogated("normal_year")
    with pytest.raises(CheckInputError, match=r"after the pump was interrogated.*right log, or the right"):
        check(_log("normal_year"), "mri", now + H, now - H)


@pytest.mark.parametrize("days_before", [0, 3])
def test_a_procedure_before_the_history_begins_is_review(days_before):
    log = _log("normal_year")
    row = log.delivery.iloc[0]  # a delivery record is stamped at the end of its interval
    first = row["time_utc"].to_pydatetime() - dt.timedelta(seconds=int(row["interval_s"]))
    end = first - dt.timedelta(days=days_before) + 30 * MIN  # starts 30 min before the history
    r = check(log, "mri", end, end - H)
    assert r.verdict == "REVIEW"
    assert "the log's history does not reach back to the start of the MRI" in r.reasons


@pytest.mark.parametrize("drift_s", [1200, -1200])
def test_a_pump_clock_20_min_off_is_review(tmp_path, drift_s):
    base = _log("mri_prompt_recovery").header
    log = _written(tmp_path, "mri_prompt_recovery", pump_clock=base.programmer_clock + drift_s)
    assert log.header.clock_drift_s == drift_s and not log.damaged
    proc = _truth("mri_prompt_recovery")["procedures"][0]
    r = check(log, "mri", _utc(proc["end_utc"]), _utc(proc["start_utc"]))
    assert r.verdict == "REVIEW"
    assert "the pump clock is 20 min off UTC: event times may be misplaced; set the clock" in r.reasons


def test_a_pump_clock_within_the_allowed_drift_stays_ok(tmp_path):
    base = _log("mri_prompt_recovery").header
    log = _written(tmp_path, "mri_prompt_recovery", pump_clock=base.programmer_clock + 9 * 60)
    proc = _truth("mri_prompt_recovery")["procedures"][0]
    assert check(log, "mri", _utc(proc["end_utc"]), _utc(proc["start_utc"])).verdict == "OK"


def test_a_hospital_rule_changes_the_two_hour_wait():
    now = interrogated("normal_year")
    log = _log("normal_year")
    one_hour = check(log, "mri", now - H, now - 2 * H, rules={"procedures": {"check_after_mri_hours": 0.5}})
    assert one_hour.verdict == "OK"
    wait_4h = {"procedures": {"check_after_mri_hours": 4}}
    three_hours = check(log, "mri", now - 3 * H, now - 4 * H, rules=wait_4h)
    assert three_hours.verdict == "REVIEW"
    assert "the guideline asks for 4 h (section 2)" in three_hours.reasons[0]


def test_a_hospital_rule_changes_the_allowed_clock_drift(tmp_path):
    base = _log("mri_prompt_recovery").header
    log = _written(tmp_path, "mri_prompt_recovery", pump_clock=base.programmer_clock + 1200)
    proc = _truth("mri_prompt_recovery")["procedures"][0]
    r = check(
        log,
        "mri",
        _utc(proc["end_utc"]),
        _utc(proc["start_utc"]),
        rules={"check": {"max_clock_drift_min": 30}},
    )
    assert r.verdict == "OK"


def test_the_documented_check_after_mri_hours_rule_changes_the_verdict():
    now = interrogated("normal_year")
    r = check(
        _log("normal_year"),
        "mri",
        now - 150 * MIN,
        now - 210 * MIN,
        rules={"procedures": {"check_after_mri_hours": 3}},
    )
    assert r.verdict == "REVIEW"


def test_check_refuses_bad_arguments():
    now = interrogated("normal_year")
    log = _log("normal_year")
    with pytest.raises(ValueError, match="mri or diathermy"):
        check(log, "ct", now - 3 * H)
    with pytest.raises(ValueError, match="time zone"):
        check(log, "mri", (now - 3 * H).replace(tzinfo=None))
    with pytest.raises(ValueError, match="starts after it ends"):
        check(log, "mri", now - 3 * H, now - 2 * H)


# ---------------------------------------------------------------------------------------------
# Drug sums in the interval still in progress at the interrogation


def test_daily_dose_is_the_programmed_dose():
    assert _log("mri_recovery_unlogged").status.daily_dose_mcg_day == 150
    assert sample_check("mri_recovery_unlogged").daily_dose_mcg == pytest.approx(150, rel=1e-3)


def test_missed_drug_counts_the_whole_stall_to_a_mid_hour_interrogation(tmp_path):
    h = _log("mri_delayed_recovery").header
    # the same log interrogated 40 min later (both clocks moved, drift unchanged)
    log = _written(
        tmp_path,
        "mri_delayed_recovery",
        pump_clock=h.pump_clock + 2400,
        programmer_clock=h.programmer_clock + 2400,
    )
    r = check(log, "mri", _utc("2026-03-10T15:00:00Z"), _utc("2026-03-10T14:00:00Z"))
    assert r.verdict == "URGENT"
    # still stalled from 14:00 to 17:40 at 450 mcg/day: 3 h 40 min x 18.75 mcg/h = 68.75 mcg
    assert r.missed_mcg == pytest.approx(68.75, rel=0.01)


# ---------------------------------------------------------------------------------------------
# to_dict(): the JSON of docs/check-json.md

TOP_KEYS = {
    "schema",
    "verdict",
    "reasons",
    "notes",
    "summary",
    "procedure",
    "interrogated_at",
    "hours_after_procedure_end",
    "daily_dose_mcg",
    "missed_mcg",
    "missed_share_of_daily_dose",
    "excess_mcg",
    "excess_share_of_daily_dose",
    "stall",
    "risks",
    "checklist",
    "findings",
    "delivery_state",
    "evidence",
    "cannot_show",
    "weight_kg",
    "timezone",
    "disclaimer",
}
FINDING_KEYS = {
    "kind",
    "severity",
    "start",
    "end",
    "ongoing",
    "direction",
    "missed_mcg",
    "excess_mcg",
    "missed_share_of_daily_dose",
    "excess_share_of_daily_dose",
    "explanation",
    "evidence_offsets",
}


def _keys(obj: object) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_to_dict_has_the_documented_keys_and_zone_offsets():
    sydney = dt.timezone(dt.timedelta(hours=11))
    d = json.loads(json.dumps(sample_check("mri_delayed_recovery").to_dict(sydney)))
    assert set(d) == TOP_KEYS
    assert d["schema"] == SCHEMA == "itb-check/1"
    assert d["procedure"] == {
        "kind": "mri",
        "start": "2026-03-11T01:00:00+11:00",
        "end": "2026-03-11T02:00:00+11:00",
    }
    assert d["interrogated_at"] == "2026-03-11T04:00:00+11:00"
    # stalled from the MRI start (01:00) to the check (04:00), still going; window from 00:00
    assert d["stall"] == {"minutes": 180.0, "ongoing": True, "from": "2026-03-11T00:00:00+11:00"}
    assert set(d["risks"]) == {"withdrawal", "overdose"}
    assert set(d["risks"]["withdrawal"]) == {"level", "reasons", "actions"}
    assert all(set(f) == FINDING_KEYS for f in d["findings"])
    assert all(set(e) == {"time", "text", "offset"} for e in d["evidence"])
    assert all(set(c) == {"section", "item", "condition"} for c in d["checklist"])
    assert all(set(a) == {"section", "text", "condition", "checklist"}
               for r in d["risks"].values() for a in r["actions"])
    assert all(e["time"].endswith("+11:00") for e in d["evidence"])
    assert d["weight_kg"] == 35 and d["timezone"] == "UTC+11:00"
    assert d["verdict"] == "URGENT"


def test_to_dict_defaults_to_utc():
    d = sample_check("mri_prompt_recovery").to_dict()
    assert d["timezone"] == "UTC"
    assert d["procedure"]["end"] == "2026-04-20T10:45:00+00:00"


def test_every_json_key_is_documented():
    text = DOC.read_text()
    d = sample_check("diathermy_over_delivery").to_dict()
    d2 = sample_check("mri_delayed_recovery").to_dict()
    documented = set(re.findall(r"`([a-z_]+)`", text))
    missing = (_keys(d) | _keys(d2)) - documented - {"withdrawal", "overdose"}
    assert not missing, f"keys not in docs/check-json.md: {sorted(missing)}"
    assert '"schema": "itb-check/1"' in text


# ---------------------------------------------------------------------------------------------
# itb check, in-process


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


DELAYED_SYDNEY = (
    DELAYED,
    "--after",
    "mri",
    "--end",
    "2026-03-11 02:00",
    "--start",
    "2026-03-11 01:00",
    "--tz",
    "Australia/Sydney",
)


def _sections(text: str) -> dict[str, list[str]]:
    """Blocks of the text output keyed by their heading (the first block: 'HEADER')."""
    out: dict[str, list[str]] = {}
    for i, block in enumerate(text.strip().split("\n\n")):
        lines = block.splitlines()
        key = "HEADER" if i == 0 else lines[0].split(":")[0]
        out[key] = lines
    return out


def test_text_output_has_verdict_summary_risks_actions_limits_and_disclaimer(capsys):
    rc, out, err = run_cli(capsys, *DELAYED_SYDNEY, "--weight-kg", "35")
    assert rc == 0 and err == ""
    assert "VERDICT: URGENT" in out
    assert "  - the motor is still stalled: no drug is being delivered" in out
    assert "WHAT HAPPENED" in out and "had NOT recovered" in out
    assert "No drug is being delivered now." in out
    assert "WITHDRAWAL RISK: HIGH" in out and "OVERDOSE RISK: NONE" in out
    assert "What the guideline says:" in out
    assert "    [5.1.3.3] DO NOT PERFORM A LUMBAR PUNCTURE" in out
    assert ("on medical order: Oral baclofen for 35 kg: 20 mg stat then every 4-6 h, maximum "
            "120 mg/day.") in out
    assert "EVIDENCE FROM THE LOG" in out
    assert "WHAT THE PUMP'S TELEMETRY CANNOT SHOW" in out and "Catheter kink or occlusion" in out
    assert out.rstrip().endswith(
        "This software supports, and does not replace, the manufacturer's clinician programmer "
        "and clinical judgement."
    )


def test_text_output_oral_dose_follows_the_weight(capsys):
    _, out, _ = run_cli(capsys, *DELAYED_SYDNEY, "--weight-kg", "29.9")
    assert ("[5.1.4.1] If there is no obvious differential and the child has continuing symptoms, on "
            "medical order: Oral baclofen for 29.9 kg: 10 mg stat then every 4-6 h, maximum 60 "
            "mg/day.") in out
    _, out, _ = run_cli(capsys, *DELAYED_SYDNEY)
    assert "on medical order: Oral baclofen: under 30 kg 10 mg stat" in out and "(weight not given)" in out


def test_sydney_local_time_is_read_and_shown_in_aedt(capsys):
    rc, out, _ = run_cli(capsys, *DELAYED_SYDNEY, "--json")
    d = json.loads(out)
    assert rc == 0
    assert _utc(d["procedure"]["end"]) == _utc("2026-03-10T15:00:00Z")
    assert d["procedure"]["end"] == "2026-03-11T02:00:00+11:00"
    assert d["timezone"] == "Australia/Sydney"
    _, text, _ = run_cli(capsys, *DELAYED_SYDNEY)
    s = _sections(text)
    assert s["HEADER"][1] == "Procedure: 2026-03-11 01:00 AEDT to 2026-03-11 02:00 AEDT"
    assert s["HEADER"][2] == "Interrogated: 2026-03-11 04:00 AEDT (2.0 h after the end)"
    assert "stalled at 2026-03-11 01:00 AEDT" in text
    # the check's own lines show the user's zone, labelled; no UTC there
    own = [*s["HEADER"], *s["VERDICT"], *s["WHAT HAPPENED"], *s["EVIDENCE FROM THE LOG"]]
    stamps = [m for line in own for m in re.finditer(TIME.pattern + r"(\s+\S+)?", line)]
    assert stamps and all(m.group(1) == " AEDT" for m in stamps), [m.group(0) for m in stamps]


def test_every_time_in_the_text_output_carries_a_zone_label(capsys):
    for args in (
        DELAYED_SYDNEY,
        (
            SAMPLES / "corrupted_log.itblog",
            "--after",
            "mri",
            "--end",
            "2026-03-04 10:00",
            "--tz",
            "Australia/Sydney",
        ),
    ):
        _, text, _ = run_cli(capsys, *args)
        bare = [
            line for line in text.splitlines() if re.search(TIME.pattern + r"(?! (AEDT|AEST|UTC)\b)", line)
        ]
        assert not bare, bare


def test_risk_reasons_are_in_the_users_zone(capsys):
    _, text, _ = run_cli(capsys, *DELAYED_SYDNEY)
    risk = _sections(text)["WITHDRAWAL RISK"]
    assert any(TIME.search(line) for line in risk)
    assert not any("UTC" in line for line in risk)


def test_the_machine_zone_comes_from_tz_when_no_option(capsys, monkeypatch):
    monkeypatch.setenv("TZ", "Australia/Sydney")
    _, out, _ = run_cli(capsys, DELAYED, "--after", "mri", "--end", "2026-03-11 02:00", "--json")
    d = json.loads(out)
    assert _utc(d["procedure"]["end"]) == _utc("2026-03-10T15:00:00Z")
    assert d["interrogated_at"] == "2026-03-11T04:00:00+11:00"


@pytest.mark.parametrize("end", ["2026-03-10T15:00+00:00", "2026-03-10T15:00Z", "2026-03-11 02:00+11:00"])
def test_a_time_with_an_offset_ignores_tz(capsys, end):
    _, out, _ = run_cli(capsys, DELAYED, "--after", "mri", "--end", end, "--tz", "America/New_York", "--json")
    d = json.loads(out)
    assert _utc(d["procedure"]["end"]) == _utc("2026-03-10T15:00:00Z")
    assert d["procedure"]["end"] == "2026-03-10T11:00:00-04:00"  # shown in the --tz zone (EDT)


BAD_ARGS = {
    "bad --end": ((DELAYED, "--after", "mri", "--end", "yesterday at 3"), "--end 'yesterday at 3'"),
    "unknown --tz": (
        (DELAYED, "--after", "mri", "--end", "2026-03-10 15:00", "--tz", "Mars/Olympus"),
        "not a known time zone",
    ),
    "start after end": (
        (DELAYED, "--after", "mri", "--end", "2026-03-10T15:00Z", "--start", "2026-03-10T16:00Z"),
        "--start is after --end",
    ),
    "missing log": (
        (SAMPLES / "no_such.itblog", "--after", "mri", "--end", "2026-03-10T15:00Z"),
        "no_such.itblog",
    ),
    "not a log": (
        (SAMPLES / "README.md", "--after", "mri", "--end", "2026-03-10T15:00Z"),
        "not an ITB interrogation log",
    ),
    "bad weight": (
        (DELAYED, "--after", "mri", "--end", "2026-03-10T15:00Z", "--weight-kg", "-3"),
        "--weight-kg",
    ),
    "bad report name": (
        (DELAYED, "--after", "mri", "--end", "2026-03-10T15:00Z", "--report", "r.txt"),
        ".pdf or .html",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_input_exits_2_with_one_line(capsys, case):
    args, fragment = BAD_ARGS[case]
    rc, out, err = run_cli(capsys, *args)
    assert rc == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("itb check: error: ")
    assert fragment in err and "Traceback" not in err


def test_a_bad_rules_file_exits_2(capsys, tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text("[check\n")
    rc, out, err = run_cli(capsys, DELAYED, "--after", "mri", "--end", "2026-03-10T15:00Z", "--rules", bad)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and "cannot read clinical rules" in err


def test_a_rules_file_changes_the_two_hour_wait(capsys, tmp_path):
    rules = tmp_path / "hospital.toml"
    rules.write_text("[procedures]\ncheck_after_mri_hours = 3\n")
    prompt = (
        PROMPT,
        "--after",
        "mri",
        "--end",
        "2026-04-20T10:45Z",
        "--start",
        "2026-04-20T10:00Z",
        "--json",
    )
    assert json.loads(run_cli(capsys, *prompt)[1])["verdict"] == "OK"
    d = json.loads(run_cli(capsys, *prompt, "--rules", rules)[1])
    assert d["verdict"] == "REVIEW" and "the guideline asks for 3 h" in d["reasons"][0]


VERDICT_ARGS = {
    "OK": (PROMPT, "--after", "mri", "--end", "2026-04-20T10:45Z", "--start", "2026-04-20T10:00Z"),
    "REVIEW": (UNLOGGED, "--after", "mri", "--end", "2026-02-12T10:10Z", "--start", "2026-02-12T09:30Z"),
    "URGENT": (DELAYED, "--after", "mri", "--end", "2026-03-10T15:00Z", "--start", "2026-03-10T14:00Z"),
}


@pytest.mark.parametrize(
    ("verdict", "fail_on", "status"),
    [
        ("OK", None, 0),
        ("REVIEW", None, 0),
        ("URGENT", None, 0),
        ("OK", "review", 0),
        ("REVIEW", "review", 1),
        ("URGENT", "review", 1),
        ("OK", "urgent", 0),
        ("REVIEW", "urgent", 0),
        ("URGENT", "urgent", 1),
    ],
)
def test_exit_status_follows_fail_on(capsys, verdict, fail_on, status):
    extra = ("--fail-on", fail_on) if fail_on else ()
    rc, out, _ = run_cli(capsys, *VERDICT_ARGS[verdict], *extra, "--json")
    assert json.loads(out)["verdict"] == verdict
    assert rc == status


def test_json_output_parses_with_the_documented_keys(capsys):
    rc, out, err = run_cli(capsys, *VERDICT_ARGS["REVIEW"], "--json", "--weight-kg", "19", "--tz", "UTC")
    d = json.loads(out)
    assert rc == 0 and err == ""
    assert set(d) == TOP_KEYS | {"source"} and d["schema"] == "itb-check/1"
    assert d["verdict"] == "REVIEW" and d["weight_kg"] == 19
    assert d["interrogated_at"] == "2026-02-12T12:10:00+00:00"
    assert "the stall recovery is not logged as the rotor shows: interrogate again" in d["reasons"]
    assert d["risks"]["withdrawal"]["level"] == "low"
    sections = [a["section"] for a in d["risks"]["withdrawal"]["actions"]]
    assert "5.1.3.3" in sections and "5.1.4.1" in sections
    assert any(f["kind"] == "stall_recovery_unlogged" for f in d["findings"])
    assert d["cannot_show"] and d["disclaimer"].startswith("This software supports")


class _Terminal(io.StringIO):
    """An output stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _text_on(monkeypatch, stream: io.StringIO) -> str:
    monkeypatch.setattr(sys, "stdout", stream)
    assert main(["check", *map(str, VERDICT_ARGS["URGENT"])]) == 0
    return stream.getvalue()


def test_no_colour_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    _, out, _ = run_cli(capsys, *VERDICT_ARGS["URGENT"])
    assert "VERDICT: URGENT" in out and "\033[" not in out


def test_colour_on_a_terminal_unless_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    coloured = _text_on(monkeypatch, _Terminal())
    assert "VERDICT: \033[1;41;97m URGENT \033[0m" in coloured
    assert coloured.count("\033[") == 2  # the verdict only
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _text_on(monkeypatch, _Terminal())
    assert "VERDICT: URGENT" in plain and "\033[" not in plain
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert "\033[" not in _text_on(monkeypatch, _Terminal())


@pytest.mark.parametrize("end", ["2026-10-04 02:30", "2026-04-05 02:30"])
def test_a_local_time_at_a_dst_change_is_refused(capsys, end):
    rc, _, err = run_cli(capsys, DELAYED, "--after", "mri", "--end", end, "--tz", "Australia/Sydney")
    assert rc == 2 and "--end" in err


# ---------------------------------------------------------------------------------------------
# itb check as a real program


ITB = Path(sys.executable).with_name("itb")


@pytest.mark.skipif(not ITB.exists(), reason="the itb script is not installed next to this python")
def test_the_installed_itb_command(tmp_path):
    p = subprocess.run(
        [
            str(ITB),
            "check",
            *map(str, VERDICT_ARGS["URGENT"]),
            "--tz",
            "Australia/Sydney",
            "--fail-on",
            "urgent",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    assert p.returncode == 1, p.stderr
    assert "VERDICT: URGENT" in p.stdout and "2026-03-11 02:00 AEDT" in p.stdout
    assert p.stderr == ""


def test_check_without_report_does_not_import_matplotlib():
    pytest.importorskip("matplotlib")  # else the assertion below could not fail
    code = (
        "import sys\n"
        "from itb_device.cli import main\n"
        f"rc = main({['check', *map(str, VERDICT_ARGS['URGENT'])]!r})\n"
        "print('RESULT', rc, 'matplotlib' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "RESULT 0 False"
