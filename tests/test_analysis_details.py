"""The typed contract between the detectors and their readers (issue 16, item 3): a finding's
``details`` is a :class:`~analysis.findings.FindingDetails`, so a misspelt key is an error
instead of a silently missing one, and risk grading reads its typed fields."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from test_analysis_logbuilder import LogBuilder, one

from analysis import Finding, FindingDetails, analyse, get_rules
from analysis.context import Context
from analysis.reconstruct import build
from analysis.risk import grade
from parsers import read_log


def test_a_misspelt_detail_is_an_error():
    with pytest.raises(TypeError, match="dreg_missing"):
        FindingDetails(dreg_missing=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        FindingDetails(True)  # type: ignore[misc]  # keywords only
    with pytest.raises(TypeError, match="FindingDetails"):
        Finding("refill_over_infusion", "critical", 0, 3600, "x",
                details={"drug_missing": True})  # type: ignore[arg-type]


def test_details_give_the_keys_set_in_their_order_none_included():
    d = FindingDetails(cause="spontaneous", procedure=None, logged=True)
    assert list(d.to_dict().items()) == [("cause", "spontaneous"), ("procedure", None), ("logged", True)]
    assert d.recovery_latency_h is None and d.drug_missing is None  # not set
    f = Finding("motor_stall", "warning", 0, 3600, "x", details=d)
    assert f.to_dict()["details"] == {"cause": "spontaneous", "procedure": None, "logged": True}
    assert Finding("battery_eos", "critical", 0, None, "x").to_dict()["details"] == {}
    back = pickle.loads(pickle.dumps(f))  # the cohort engine sends findings between processes
    assert back == f and back.to_dict() == f.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.cause = "procedure"  # type: ignore[misc]


def test_risk_grades_a_pocket_fill_by_the_typed_drug_missing(tmp_path):
    b = LogBuilder(reservoir_ml=20.0)
    b.program(b.t(), 400.0)
    b.refill(b.t(days=1), 20.0)
    b.refill(b.t(days=4), 20.0, expected=19.4, measured=0.0)  # nearly empty 3 days after a refill
    log = read_log(b.write(tmp_path / "pocket.itblog", b.t(days=4, hours=1)))
    a = analyse(log)
    f = one(a, "refill_over_infusion")
    assert f.details.drug_missing is True
    rules = get_rules()
    ctx = Context(log, build(log, rules), rules, ())
    assert grade(f, ctx) == ("high", "none")  # as before: the drug never reached the reservoir
    assert (a.withdrawal.level, a.overdose.level) == ("high", "none")
    # the same finding without the flag is graded as a pump over-infusing (a rate fault)
    kept = {k: v for k, v in f.details.to_dict().items() if k != "drug_missing"}
    rate_fault = dataclasses.replace(f, details=FindingDetails(**kept))
    assert grade(rate_fault, ctx) == ("low", "low")
