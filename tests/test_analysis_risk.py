"""Risk combination, guideline actions, disclaimer and limitations, and clinical-rules
overrides (dict, TOML file, environment variable)."""

from __future__ import annotations

import pytest
from test_analysis_logbuilder import LogBuilder, analyse_built, kinds

from analysis import DISCLAIMER, LEVELS, TELEMETRY_BLIND_SPOTS, Finding, get_rules
from analysis.risk import level_max, withdrawal_actions


def _stall_log(tmp_path, minutes: float, **kw):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    s = b.t(days=1, hours=10)
    b.stall(s, s + int(minutes * 60))
    return analyse_built(b, tmp_path, s + int(minutes * 60) + 2 * 3600, **kw)


def test_level_order_and_max():
    assert LEVELS == ("none", "cannot_rule_out", "low", "moderate", "high")
    assert level_max(["low", "none", "moderate"]) == "moderate"
    assert level_max([]) == "none"


def test_short_stall_raises_no_risk_longer_stall_does(tmp_path):
    assert _stall_log(tmp_path, 20).withdrawal.level == "none"  # 3% of a daily dose
    a = _stall_log(tmp_path, 180)  # 12.5% of a daily dose
    assert a.withdrawal.level == "low"
    a = _stall_log(tmp_path, 600)  # 42%, recent
    assert a.withdrawal.level == "moderate"
    a = _stall_log(tmp_path, 900)  # 62%, recent, and the CSF estimate long below half
    assert a.withdrawal.level == "high"


def test_damaged_history_is_never_none(tmp_path):
    b = LogBuilder(page_size=256)
    b.program(b.t(), 240.0)
    a = analyse_built(b, tmp_path, b.t(days=3), damage_pages=(3,))
    assert a.withdrawal.level == "cannot_rule_out" and a.overdose.level == "cannot_rule_out"
    assert any("incomplete" in r for r in a.withdrawal.reasons)
    assert a.withdrawal.actions and a.overdose.actions  # what to do if signs appear


def test_damaged_status_is_never_none(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    path = b.write(tmp_path / "s.itblog", b.t(days=2))
    data = bytearray(path.read_bytes())
    data[128 + 2] ^= 0xFF  # the reservoir volume in the status snapshot
    path.write_bytes(bytes(data))
    from analysis import analyse

    a = analyse(path)
    assert (a.withdrawal.level, a.overdose.level) == ("cannot_rule_out", "cannot_rule_out")


def test_actions_cite_the_guideline_with_weight_based_oral_baclofen():
    r = get_rules()
    light = {a.section: a.text for a in withdrawal_actions(r, 22.0)}
    heavy = {a.section: a.text for a in withdrawal_actions(r, 40.0)}
    unknown = {a.section: a.text for a in withdrawal_actions(r, None)}
    assert "10 mg stat" in light["5.1.4.1"] and "60 mg/day" in light["5.1.4.1"]
    assert "20 mg stat" in heavy["5.1.4.1"] and "120 mg/day" in heavy["5.1.4.1"]
    assert "10 mg" in unknown["5.1.4.1"] and "20 mg" in unknown["5.1.4.1"]
    assert "lumbar puncture" in light["5.1.3.3"].lower()
    assert "X-ray" in light["5.1.3.6"]


def test_overdose_actions_and_summary_text(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 250.0)
    b.refill(b.t(days=1), 20.0, conc=2000.0)
    b.program(b.t(days=2), 250.0, conc=1000.0)
    a = analyse_built(b, tmp_path, b.t(days=3), weight_kg=35)
    assert a.overdose.level == "high"
    sections = [x.section for x in a.overdose.actions]
    assert {"5.2.3.3", "5.2.3.6", "5.2.4.1", "5.2.4.4"} <= set(sections)
    text = a.summary()
    assert DISCLAIMER in text
    assert "OVERDOSE RISK: high" in text
    assert all(x.split(":")[0][:20] in text for x in TELEMETRY_BLIND_SPOTS)
    assert a.to_dict()["disclaimer"] == DISCLAIMER


def test_limitations_always_state_what_telemetry_cannot_show(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    a = analyse_built(b, tmp_path, b.t(days=1))
    text = " ".join(a.limitations)
    for word in ("kink", "leak", "Pocket fill", "over-infusion since the last refill"):
        assert word in text
    assert (a.withdrawal.level, a.overdose.level) == ("none", "none")


def test_rules_override_with_a_dict(tmp_path):
    a = _stall_log(tmp_path, 20, rules={"risk": {"low_share": 0.01}})
    assert a.withdrawal.level == "low"
    b = LogBuilder()
    b.program(b.t(), 240.0)
    b.stall(b.t(days=1), b.t(days=2, hours=6))  # 30 h
    assert "long_stall" not in kinds(analyse_built(b, tmp_path, b.t(days=3)))
    a = analyse_built(b, tmp_path, b.t(days=3), rules={"pump": {"stall_over_infusion_risk_h": 24}})
    assert "long_stall" in kinds(a)


def test_rules_override_with_a_hospital_file(tmp_path):
    b = LogBuilder()
    for day, dose in ((0, 300), (10, 450)):
        b.program(b.t(days=day), dose)
    assert "titration_violation" in kinds(analyse_built(b, tmp_path, b.t(days=11)))
    f = tmp_path / "hospital.toml"
    f.write_text("[titration]\nmax_step_fraction = 0.6\n")
    a = analyse_built(b, tmp_path, b.t(days=11), rules=f)
    assert "titration_violation" not in kinds(a)
    assert a.rules_source == str(f)
    assert get_rules(f).number("titration", "max_daily_dose_mcg") == 1000  # rest from default


def test_rules_from_the_environment(tmp_path, monkeypatch):
    f = tmp_path / "env.toml"
    f.write_text("[reservoir]\nsafe_residual_ml = 3.0\n")
    monkeypatch.setenv("ITB_CLINICAL_RULES", str(f))
    assert get_rules().number("reservoir", "safe_residual_ml") == 3.0


def test_missing_rule_names_section_and_key():
    r = get_rules()
    with pytest.raises(KeyError, match=r"\[risk\] nonexistent"):
        r.get("risk", "nonexistent")


def test_finding_rejects_unknown_kinds():
    with pytest.raises(ValueError):
        Finding("pump_exploded", "critical", 0, None, "x")
    f = Finding("motor_stall", "warning", 0, 3600, "x", missed_mcg=50, daily_dose_mcg=200)
    assert f.missed_share == 0.25 and f.duration_h(0) == 1.0
    assert f.to_dict()["start_utc"].startswith("1970-01-01")
