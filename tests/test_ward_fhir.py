"""The FHIR export's motor-stall duration (``ward.fhir``, docs/fhir.md) is the check's own
figure (the JSON's ``stall``, docs/check-json.md), never one the export works out: the same
minutes as ``CheckResult.to_dict()`` for the stalled samples, ``dataAbsentReason`` when the
check could not rule a stall out, and, for a check stored before the JSON had ``stall``,
``dataAbsentReason`` with a note saying so, never 0.

Built in-process from ``ward.analysis_adapter.run_check`` (what the ward app stores), without
the web server (``tests/test_ward_app.py`` downloads the export from the running app)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import SAMPLES

from clinical.rules import get_rules
from parsers import read_log
from ward import fhir
from ward.analysis_adapter import pump_info, run_check

SYDNEY = ZoneInfo("Australia/Sydney")
# sample_logs/README.md: each sample's MRI (UTC) and the stall's minutes from the MRI start to the
# check, worked out from the README: 14:00Z to 17:00Z, and 10:00Z to 12:50Z (no stall record there)
STALLED = {
    "mri_delayed_recovery": ("2026-03-10T14:00:00+00:00", "2026-03-10T15:00:00+00:00", 180.0),
    "mri_unlogged_stall": ("2026-10-08T10:00:00+00:00", "2026-10-08T10:50:00+00:00", 170.0),
}
PDF = b"%PDF-1.4\n% a stand-in for the A4 report\n%%EOF\n"


def _row(name: str, rules: Any = None) -> dict[str, Any]:
    """A stored check of sample ``name`` with its MRI, as ``ward.store.Store.get_check`` gives it."""
    start, end, _ = STALLED[name]
    path = SAMPLES / f"{name}.itblog"
    log = read_log(path)
    info = pump_info(log)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    c = run_check(log, kind="mri", end=dt.datetime.fromisoformat(end), start=dt.datetime.fromisoformat(start),
                  weight_kg=30.0, rules=get_rules(rules), zone=SYDNEY,
                  source={"file": path.name, "sha256": sha, "pump_serial": info["serial"]})
    return {"id": 7, "created_at": "2026-12-01T01:52:00Z", "pump": info, "result": c.document,
            "mrn": "0012345", "patient_name": "Alex Example", "checked_by": "RN J. Citizen",
            "_result": c.result}


@cache
def _stored(name: str) -> dict[str, Any]:
    return _row(name)


def _stall_observation(row: dict[str, Any]) -> dict[str, Any]:
    out = fhir.bundle({k: v for k, v in row.items() if k != "_result"}, PDF)
    (obs,) = [e["resource"] for e in out["entry"] if e["resource"]["resourceType"] == "Observation"
              and e["resource"]["code"]["coding"][0]["code"] == "motor-stall-duration"]
    return obs


@pytest.mark.parametrize("name", sorted(STALLED))
def test_the_export_gives_the_checks_own_stall_minutes(name):
    row = _stored(name)
    stall = row["result"]["stall"]
    r = row["_result"]
    assert stall == r.to_dict(SYDNEY)["stall"]  # the stored JSON is to_dict's
    assert stall["minutes"] == round(r.stall_s / 60, 1) and stall["ongoing"] is r.stall_ongoing
    assert stall["minutes"] == STALLED[name][2] and stall["ongoing"]  # both still stalled at the check
    obs = _stall_observation(row)
    assert obs["valueQuantity"] == {"value": stall["minutes"], "unit": "min",
                                    "system": "http://unitsofmeasure.org", "code": "min"}
    assert "dataAbsentReason" not in obs
    assert {"text": "the motor was still stalled at the interrogation"} in obs["note"]
    assert obs["code"]["text"] == fhir.STALL_DISPLAY


def test_the_export_does_not_work_the_minutes_out_from_the_findings():
    row = copy.deepcopy(_stored("mri_delayed_recovery"))
    row["result"]["stall"] = {"minutes": 12.5, "ongoing": False, "from": row["result"]["stall"]["from"]}
    obs = _stall_observation(row)
    assert obs["valueQuantity"]["value"] == 12.5 and "note" not in obs


def test_a_stall_that_cannot_be_ruled_out_has_no_value():
    row = copy.deepcopy(_stored("mri_delayed_recovery"))
    row["result"]["stall"] = {"minutes": None, "ongoing": False, "from": row["result"]["stall"]["from"]}
    obs = _stall_observation(row)
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "cannot be ruled out" in obs["dataAbsentReason"]["text"]


def test_a_check_stored_before_the_stall_key_is_unknown_never_zero():
    row = copy.deepcopy(_stored("mri_delayed_recovery"))
    del row["result"]["stall"]
    assert fhir.stall_minutes(row["result"]) == (None, False, fhir.NO_STALL_KEY)
    obs = _stall_observation(row)
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"] == {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}],
        "text": fhir.NO_STALL_KEY}
    assert obs["note"] == [{"text": fhir.NO_STALL_NOTE}]
    assert "not zero" in fhir.NO_STALL_NOTE
    assert obs["code"]["text"] == fhir.STALL_DISPLAY


def test_a_hospitals_longer_lead_is_named_in_the_text():
    row = _row("mri_delayed_recovery", {"check": {"lookback_h": 2.0}})
    assert row["result"]["stall"]["from"] == "2026-03-10T23:00:00+11:00"
    obs = _stall_observation(row)
    assert obs["code"]["text"] == ("Motor stall duration (stalls from 2 h before the procedure to the check, "
                                   "each from its start)")
    assert obs["code"]["coding"][0]["display"] == fhir.STALL_DISPLAY
    assert obs["valueQuantity"]["value"] == 180.0  # the stall began at the MRI's start
