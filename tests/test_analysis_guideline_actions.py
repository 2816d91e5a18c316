"""The guideline's actions are printed with the guideline's own conditions (issue 15, item 1):
overdose management (5.2.4) only "if the child shows signs of overdose, on medical decision",
withdrawal treatment (5.1.4) only "if there is no obvious differential and the child has
continuing symptoms", in the guideline's words, never an instruction the guideline does not give."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import SAMPLES

from analysis.check import PUMP_RECORD_ONLY, check
from analysis.risk import overdose_actions, withdrawal_actions
from clinical.rules import get_rules
from parsers import read_log

GUIDELINE = Path(__file__).resolve().parents[2] / "shared" / "guideline" / "chw-itb-practice-guideline.txt"


def _sample_check(name: str, hours_before: float = 2.0):
    log = read_log(SAMPLES / f"{name}.itblog")
    end = log.header.interrogated_at - dt.timedelta(hours=hours_before)
    return check(log, "mri", end, end - dt.timedelta(hours=1), weight_kg=30)


def test_overdose_management_is_conditional_and_never_says_program_a_stop():
    acts = overdose_actions(get_rules())
    management = [a for a in acts if a.section.startswith("5.2.4")]
    assert [a.section for a in management] == [f"5.2.4.{i}" for i in range(1, 8)]
    for a in management:
        assert a.condition == "If the child shows signs of overdose (5.2.2), on medical decision"
        assert a.text.startswith(a.condition + ": ")
    text = " ".join(a.text for a in acts).lower()
    assert "program the pump to stop" not in text
    assert "if necessary" in next(a.wording for a in acts if a.section == "5.2.4.5")


def test_withdrawal_treatment_is_for_a_child_with_continuing_symptoms_only():
    acts = withdrawal_actions(get_rules(), 35.0)
    treatment = [a for a in acts if a.section.startswith("5.1.4")]
    assert {a.section for a in treatment} == {f"5.1.4.{i}" for i in range(1, 7)}
    for a in treatment:
        if a.section in ("5.1.4.5", "5.1.4.6"):
            assert a.condition == "", a.section  # escalation and hydration: separate items
        else:
            assert a.condition, a.section
    oral = next(a for a in acts if a.section == "5.1.4.1")
    assert oral.condition.startswith(
        "If there is no obvious differential and the child has continuing symptoms")
    assert "20 mg stat" in oral.wording  # 35 kg: the over-30 kg regimen
    signs = next(a for a in acts if a.section == "5.1.2").wording
    for sign in ("pain", "hallucinations", "poor sleep", "pruritus"):
        assert sign in signs


@pytest.mark.parametrize("sample", ["titration_violation", "over_infusion_refill"])
def test_a_moderate_overdose_risk_prints_5_2_4_only_with_its_condition(sample):
    r = _sample_check(sample)
    d = r.to_dict()
    acts = d["risks"]["overdose"]["actions"]
    assert d["risks"]["overdose"]["level"] == "moderate"
    for a in acts:
        if a["section"].startswith("5.2.4"):
            assert a["condition"].startswith("If the child shows signs of overdose")
            assert a["text"].startswith("If the child shows signs of overdose")


def test_the_guideline_text_holds_the_quoted_wording():
    if not GUIDELINE.exists():
        pytest.skip("../shared/guideline is not beside this checkout")
    text = " ".join(GUIDELINE.read_text(encoding="utf-8").split())
    for words in ("If there is no obvious differential and the child has continuing symptoms",
                  "Stop further drug administration", "the following steps can be considered",
                  "Ensure adequate hydration", "Escalation plan - call PICU registrar/fellow on call"):
        assert words in text


def test_every_ok_says_it_is_the_pump_record_only():
    r = _sample_check("mri_prompt_recovery", hours_before=2.0)
    log = read_log(SAMPLES / "mri_prompt_recovery.itblog")
    end = log.header.interrogated_at - dt.timedelta(hours=2)
    r = check(log, "mri", end, end - dt.timedelta(minutes=45))
    assert r.verdict == "OK", r.reasons
    assert r.summary[-1] == PUMP_RECORD_ONLY


def test_escalation_on_the_ward_is_printed_with_each_risk_in_the_guideline_words():
    r = get_rules()
    for acts in (withdrawal_actions(r, 20.0), overdose_actions(r)):
        by = {a.section: a for a in acts}
        assert "(CERS)" in by["Key points"].wording
        assert "Rehabilitation Registrar (pager 7181)" in by["3.4.3"].wording
        assert by["3.4.3"].condition.startswith("If the child enters the Yellow Zone Criteria")
        assert "Rapid Response Call" in by["3.4.4"].wording
        assert by["3.4.4"].condition.startswith("If the child deteriorates into the Red Zone")
    special = [a for a in overdose_actions(r) if "specialled" in a.wording]
    assert len(special) == 1 and special[0].condition == "If overdose is thought to occur"
    assert "Bed Manager/After Hours Nurse Manager" in special[0].wording
    assert not any("specialled" in a.wording for a in withdrawal_actions(r, 20.0))
    if GUIDELINE.exists():
        text = " ".join(GUIDELINE.read_text(encoding="utf-8").split())
        for words in ("Clinical Emergency Response System (CERS)", "Rehabilitation Registrar (pager 7181)",
                      "specialled (1:1 Nurse: Patient)", "escalation to a Rapid Response Call"):
            assert words in text


def test_what_to_collect_is_a_checklist_in_text_json_and_report(tmp_path):
    from analysis.reports import write_check_report
    from itb_device.cli.check import render_text

    log = read_log(SAMPLES / "mri_delayed_recovery.itblog")
    end = log.header.interrogated_at - dt.timedelta(hours=2)
    r = check(log, "mri", end, end - dt.timedelta(hours=1), weight_kg=35)
    assert r.verdict == "URGENT"
    items = r.to_dict()["checklist"]
    assert [i["section"] for i in items] == ["5.1.3.4"] * 4  # withdrawal only: overdose risk none
    assert any("sweating" in i["item"] for i in items)
    text = render_text(r, log)
    boxes = [line for line in text.splitlines() if line.startswith("  [ ] ")]
    assert len(boxes) == 4 and "recent MRI" in boxes[-1]
    pdf = tmp_path / "r.pdf"
    write_check_report(r, log, pdf)
    from pypdf import PdfReader
    pdf_text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "To collect before calling Kids Rehab" in pdf_text
    assert pdf_text.count("\u2610") == 4


def test_an_overdose_risk_lists_the_investigations_with_their_condition():
    r = _sample_check("titration_violation")
    items = r.to_dict()["checklist"]
    inv = [i for i in items if i["section"] == "5.2.3.5"]
    assert [i["item"][:3] for i in inv] == ["FBC", "Con", "MSU"]
    assert all(i["condition"] == "If the child has signs of overdose" for i in inv)
    asked = [i["item"] for i in items if i["section"] == "5.2.3.7"]
    assert any(a.startswith("Pulse, BP, saturations") for a in asked)
    # asked by both 5.1.3.4 and 5.2.3.7, listed once
    assert sum("Date of the last refill" in i["item"] for i in items) == 1
