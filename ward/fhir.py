"""Export of a stored check to the patient record: a FHIR R4 ``Bundle`` (type ``collection``) of
a ``DiagnosticReport`` with its ``Observation``s (verdict, motor-stall duration, drug missed and
in excess, withdrawal and overdose risk), the pump as a ``Device``, the child as a ``Patient``
when an MRN or a name was given, and the PDF report attached (``presentedForm``).

Built from the stored JSON (docs/check-json.md) and validated by ``fhir.resources`` (its R4B
models: FHIR 4.3.0, whose DiagnosticReport, Observation, Patient, Device and Bundle are those
of R4 4.0.1 for every element used here).  docs/fhir.md describes every element and code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from typing import Any

CODES = "urn:itb-telemetry:check"  # this software's codes: docs/fhir.md
VERDICT_CODES = "urn:itb-telemetry:verdict"
RISK_CODES = "urn:itb-telemetry:risk-level"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DEFAULT_MRN_SYSTEM = "urn:itb-telemetry:mrn"  # a hospital sets its own (itb serve --mrn-system)
MIME = "application/fhir+json; fhirVersion=4.0"  # the R4 media type (FHIR http.html#version-parameter)
_NS = uuid.UUID("6f1d3c52-8d7e-4f0e-9d59-7a1bb1c0e5a1")
_INTERPRET = {"URGENT": ("AA", "Critical abnormal"), "REVIEW": ("A", "Abnormal")}
_LEVEL_TEXT = {"none": "none", "low": "low", "moderate": "moderate", "high": "high",
               "cannot_rule_out": "cannot be ruled out"}


def _ref(uid: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"urn:uuid:{uid}"}
    if display:
        out["display"] = display
    return out


def _t(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


STALL_DISPLAY = ("Motor stall duration (stalls from 1 h before the procedure to the check, "
                 "each from its start)")
NO_STALL_KEY = "not in the stored check (made before the check computed it)"
NO_STALL_NOTE = ("The motor-stall duration is not in this stored check: it was made by an earlier "
                 "version, before the check computed it. It is unknown, not zero: recompute the "
                 "check to have it.")


def stall_minutes(doc: dict[str, Any]) -> tuple[float | None, bool, str | None]:
    """The motor-stall minutes of the check's window and whether a stall is still going, as the
    check computed them (the JSON's ``stall``: ``analysis.check.CheckResult.stall_s``; this
    export computes nothing itself), and, when there are no minutes, why: the window's
    history is incomplete (a stall cannot be ruled out), or the stored check predates the
    ``stall`` key (:data:`NO_STALL_KEY`, with the note :data:`NO_STALL_NOTE`; never 0)."""
    stall = doc.get("stall")
    if not isinstance(stall, dict):
        return None, False, NO_STALL_KEY
    minutes = stall.get("minutes")
    ongoing = bool(stall.get("ongoing"))
    if minutes is None:
        return None, ongoing, "history of the window incomplete: a stall cannot be ruled out"
    return float(minutes), ongoing, None


def _stall_text(doc: dict[str, Any]) -> str:
    """The stall observation's text, with the window's lead the check used (``[check]
    lookback_h``; the code's display says the default, 1 h)."""
    stall, start = doc.get("stall"), _t(doc["procedure"]["start"])
    since = _t(stall.get("from")) if isinstance(stall, dict) else None
    if since is None or start is None or start - since == dt.timedelta(hours=1):
        return STALL_DISPLAY
    lead = (start - since).total_seconds() / 3600
    return (f"Motor stall duration (stalls from {lead:g} h before the procedure to the check, "
            "each from its start)")


def bundle(row: dict[str, Any], pdf: bytes, *, mrn_system: str = DEFAULT_MRN_SYSTEM) -> dict[str, Any]:
    """The FHIR Bundle of stored check ``row`` (``ward.store.Store.get_check``) with ``pdf``
    attached, validated; as JSON-ready data."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.device import Device
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient

    doc = row["result"]
    seed = f"{doc['source']['sha256']}:{row['id']}:{row['created_at']}"
    uid = lambda what: str(uuid.uuid5(_NS, f"{seed}:{what}"))  # noqa: E731
    report_id, device_id, patient_id = uid("report"), uid("device"), uid("patient")
    kind = "MRI" if doc["procedure"]["kind"] == "mri" else "surgery with diathermy"
    when = doc["interrogated_at"]
    serial = row["pump"].get("serial")
    entries: list[tuple[str, Any]] = []

    subject = None
    if row.get("mrn") or row.get("patient_name"):
        patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
        if row.get("mrn"):
            patient["identifier"] = [{"use": "usual", "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                "display": "Medical record number"}]}, "system": mrn_system, "value": row["mrn"]}]
        if row.get("patient_name"):
            patient["name"] = [{"text": row["patient_name"]}]
        entries.append((patient_id, Patient.model_validate(patient)))
        subject = _ref(patient_id, row.get("patient_name") or f"MRN {row['mrn']}")

    device: dict[str, Any] = {
        "resourceType": "Device", "id": device_id,
        "type": {"text": "Implanted intrathecal baclofen pump"},
        "modelNumber": f"{row['pump'].get('model_ml')} mL",
    }
    if serial:
        device["serialNumber"] = serial
    if subject:
        device["patient"] = subject
    entries.append((device_id, Device.model_validate(device)))

    def observation(name: str, code: str, display: str, text: str | None = None, **value: Any) -> str:
        oid = uid(name)
        obs: dict[str, Any] = {
            "resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "procedure", "display": "Procedure"}]}],
            "code": {"coding": [{"system": CODES, "code": code, "display": display}],
                     "text": text or display},
            "effectiveDateTime": when,
            "device": _ref(device_id, f"pump {serial}" if serial else "pump"),
            **{k: v for k, v in value.items() if v is not None},
        }
        if subject:
            obs["subject"] = subject
        entries.append((oid, Observation.model_validate(obs)))
        return oid

    notes = lambda lines: [{"text": x} for x in lines] or None  # noqa: E731
    verdict = doc["verdict"]
    shown = list(doc["reasons"]) or [x for x in doc["summary"] if x.startswith("OK is from")]
    results = [observation(
        "verdict", "verdict", f"ITB pump two-hour check verdict after {kind}",
        valueCodeableConcept={"coding": [{"system": VERDICT_CODES, "code": verdict, "display": verdict}],
                              "text": verdict},
        interpretation=[{"coding": [{"system": INTERPRETATION, "code": _INTERPRET[verdict][0],
                                     "display": _INTERPRET[verdict][1]}]}] if verdict in _INTERPRET else None,
        note=notes(shown),
    )]
    minutes, ongoing, absent = stall_minutes(doc)
    results.append(observation(
        "stall", "motor-stall-duration", STALL_DISPLAY, text=_stall_text(doc),
        valueQuantity=None if minutes is None else {"value": minutes, "unit": "min", "system": UCUM,
                                                    "code": "min"},
        dataAbsentReason=None if absent is None else {"coding": [{"system": ABSENT, "code": "unknown"}],
                                                      "text": absent},
        note=notes((["the motor was still stalled at the interrogation"] if ongoing else [])
                   + ([NO_STALL_NOTE] if absent == NO_STALL_KEY else [])),
    ))
    for key, code, display in (
        ("missed_mcg", "drug-missed", "Baclofen not delivered since the procedure start"),
        ("excess_mcg", "drug-excess", "Baclofen delivered in excess since the procedure start"),
    ):
        mcg = doc.get(key)
        share = doc.get(key.replace("_mcg", "_share_of_daily_dose"))
        results.append(observation(
            key, code, display,
            valueQuantity=None if mcg is None else {"value": mcg, "unit": "mcg", "system": UCUM,
                                                    "code": "ug"},
            dataAbsentReason=None if mcg is not None else {"coding": [{"system": ABSENT, "code": "unknown"}],
                                                            "text": "history incomplete"},
            note=notes([f"{100 * share:.0f}% of the {doc['daily_dose_mcg']:g} mcg daily dose"]
                       if share is not None and doc.get("daily_dose_mcg") else []),
        ))
    for k in ("withdrawal", "overdose"):
        r = doc["risks"][k]
        results.append(observation(
            f"{k}-risk", f"{k}-risk", f"Baclofen {k} risk",
            valueCodeableConcept={"coding": [{"system": RISK_CODES, "code": r["level"],
                                              "display": _LEVEL_TEXT.get(r["level"], r["level"])}],
                                  "text": _LEVEL_TEXT.get(r["level"], r["level"])},
            note=notes(list(r["reasons"])),
        ))

    title = f"ITB pump check after {kind}: {verdict}"
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "id": report_id,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{report_id}"}],
        "status": "final",
        "code": {"coding": [{"system": CODES, "code": "itb-two-hour-check",
                             "display": "ITB pump two-hour check after MRI or diathermy"}],
                 "text": f"ITB pump check after {kind}"},
        "effectiveDateTime": when,
        "issued": row["created_at"],
        "result": [_ref(x) for x in results],
        "conclusion": "; ".join([f"{verdict}", *shown, doc["disclaimer"]]),
        "conclusionCode": [{"coding": [{"system": VERDICT_CODES, "code": verdict, "display": verdict}],
                            "text": verdict}],
        "presentedForm": [{
            "contentType": "application/pdf", "language": "en",
            "data": base64.b64encode(pdf).decode("ascii"), "size": len(pdf),
            "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),  # FHIR: SHA-1
            "title": f"{title} (A4 report)", "creation": row["created_at"],
        }],
    }
    if subject:
        report["subject"] = subject
    if row.get("checked_by"):
        report["performer"] = [{"display": row["checked_by"]}]
    entries.insert(0, (report_id, DiagnosticReport.model_validate(report)))
    out = {
        "resourceType": "Bundle", "type": "collection",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uid('bundle')}"},
        "timestamp": row["created_at"],
        "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r.model_dump(mode="json", exclude_none=True)}
                  for i, r in entries],
    }
    return Bundle.model_validate(out).model_dump(mode="json", exclude_none=True)
