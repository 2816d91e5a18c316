"""``analysis.research.tables``: the tidy research tables of one log, on the committed sample logs
and on hand-built logs, with their schemas, the guideline numbers from the rules file, and
damaged logs (fewer rows, never an exception)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SAMPLES
from test_analysis_logbuilder import D, LogBuilder, unix

from analysis import analyse
from analysis.research import tables as history_tables
from parsers import read_log, read_log_bytes

UTC = pd.Timestamp


def sample(name: str):
    return read_log(SAMPLES / f"{name}.itblog")


def procedures(name: str) -> list[dict]:
    return json.loads((SAMPLES / f"{name}.truth.json").read_text())["procedures"]


def assert_schema(name: str, df: pd.DataFrame) -> None:
    assert list(df.columns) == list(history_tables.SCHEMAS[name])
    for col, dtype in history_tables.SCHEMAS[name].items():
        assert str(df[col].dtype) == dtype, (name, col, df[col].dtype)


@pytest.fixture(scope="module")
def normal_year():
    log = sample("normal_year")
    return log, history_tables.tables(log)


def test_normal_year_has_three_titration_steps_within_the_guideline(normal_year):
    _, t = normal_year
    ti = t["titration"]
    assert ti["kind"].tolist() == ["initial", "increase", "increase"]
    assert ti["new_daily_dose_mcg"].tolist() == [300.0, 330.0, 360.0]
    assert np.isnan(ti["old_daily_dose_mcg"].iat[0]) and np.isnan(ti["step_pct"].iat[0])
    assert ti["step_pct"].iloc[1:].round(2).tolist() == [10.0, 9.09]
    assert ti["days_since_previous"].iloc[1:].tolist() == [14.0, 14.0]
    assert ti["within_guideline"].all() and ti["step_ok"].all() and ti["interval_ok"].all()
    assert ti["time_utc"].iat[0] == UTC("2025-11-01T09:00:00Z")


def test_normal_year_has_four_refills_about_ninety_days_apart(normal_year):
    _, t = normal_year
    rf = t["refills"]
    assert len(rf) == 4
    assert np.isnan(rf["days_since_previous"].iat[0])
    assert rf["days_since_previous"].iloc[1:].tolist() == [90.0, 90.0, 90.0]
    np.testing.assert_allclose(rf["discrepancy_ml"], rf["measured_residual_ml"] - rf["expected_residual_ml"])
    assert rf["used_from"].tolist() == ["history_start"] + ["previous_refill"] * 3
    # used since the last refill: 20 mL put in, the expected residual left
    np.testing.assert_allclose(rf["used_ml"].iloc[1:], 20.0 - rf["expected_residual_ml"].iloc[1:])
    np.testing.assert_allclose(rf["discrepancy_pct_of_used"], 100 * rf["discrepancy_ml"] / rf["used_ml"])
    assert not rf["beyond_limit"].any()
    assert (rf["concentration_mcg_ml"] == 2000.0).all()


def test_normal_year_daily_dose_covers_every_utc_day(normal_year):
    log, t = normal_year
    dd = t["daily_dose"]
    assert dd["day"].iat[0] == UTC("2025-11-01T00:00:00Z")
    assert dd["day"].iat[-1] == UTC("2026-11-01T00:00:00Z")
    assert (dd["day"].diff().dropna() == pd.Timedelta(days=1)).all()
    assert dd["hours_in_window"].iat[0] == 15.0 and dd["hours_in_window"].iat[-1] == 9.0
    full = dd.iloc[1:-1]
    assert (full["hours_in_window"] == 24).all()
    np.testing.assert_allclose(full["hours_covered"], 24.0, atol=0.01)
    # one program change a fortnight: the day's prescription is the program's dose
    assert dd.set_index("day").loc[UTC("2025-11-10T00:00:00Z"), "prescribed_mcg"] == pytest.approx(300.0)
    assert dd.set_index("day").loc[UTC("2026-06-10T00:00:00Z"), "prescribed_daily_dose_mcg"] == \
        pytest.approx(360.0)
    # nothing lost between the delivery history and the table
    rows = log.delivery
    assert dd["rotor_mcg"].sum() == pytest.approx(rows["rotor_ml"].sum() * 2000.0, rel=1e-9)
    assert dd["commanded_mcg"].sum() == pytest.approx(rows["commanded_ml"].sum() * 2000.0, rel=1e-9)
    assert dd["delivered_fraction"].iloc[1:-1].between(0.99, 1.01).all()
    assert not dd["history_missing"].any() and dd["stalled_h"].sum() == 0


def test_normal_year_summary(normal_year):
    log, t = normal_year
    s = t["summary"]
    assert len(s) == 1
    row = s.iloc[0]
    assert row["serial"] == log.header.serial == "NGP210001" and row["model_ml"] == 20
    assert row["history_days"] == pytest.approx(365.0)
    assert row["refill_count"] == 4 and row["titration_steps"] == 2
    assert row["titration_outside_guideline"] == 0 and row["stall_count"] == 0 and row["problems"] == 0
    assert 330 < row["mean_daily_dose_mcg"] < 360
    assert row["withdrawal_risk"] == "none" and row["overdose_risk"] == "none"
    assert row["interrogated_utc"] == UTC("2026-11-01T09:00:00Z")


def test_titration_violation_is_flagged_outside_the_guideline():
    log = sample("titration_violation")
    ti = history_tables.titration(log)
    last = ti.iloc[-1]
    assert last["old_daily_dose_mcg"] == 340.0 and last["new_daily_dose_mcg"] == 510.0
    assert last["step_pct"] == pytest.approx(50.0) and last["days_since_previous"] == pytest.approx(2.0)
    assert not last["step_ok"] and not last["interval_ok"] and last["max_ok"] and last["override"]
    assert not last["within_guideline"]
    assert ti["within_guideline"].tolist() == [True, True, False]
    # the analysis flags the same program change
    finding = next(f for f in analyse(log).findings if f.kind == "titration_violation")
    assert finding.start == last["time_utc"]
    assert history_tables.summary(log)["titration_outside_guideline"].iat[0] == 1


def test_guideline_numbers_come_from_the_rules():
    log = sample("titration_violation")
    loose = {"titration": {"max_step_fraction": 0.6, "min_step_interval_days": 1}}
    assert history_tables.titration(log, rules=loose)["within_guideline"].all()
    strict = {"titration": {"max_daily_dose_mcg": 400}}
    assert history_tables.titration(log, rules=strict)["max_ok"].tolist() == [True, True, False]


def test_mri_delayed_recovery_has_an_ongoing_stall_caused_by_the_mri():
    log = sample("mri_delayed_recovery")
    st = history_tables.stalls(log, procedures("mri_delayed_recovery"))
    assert len(st) == 1
    s = st.iloc[0]
    assert s["ongoing"] and pd.isna(s["end_utc"])
    assert s["start_utc"] == UTC("2026-03-10T14:00:00Z")
    assert s["duration_h"] == pytest.approx(3.0)  # to the interrogation at 17:00
    assert s["cause"] == "procedure" and s["procedure_kind"] == "mri"
    assert s["hours_after_procedure"] == pytest.approx(2.0)
    assert s["recorded"] and not s["recovery_logged"] and s["missed_mcg"] > 0
    no_window = history_tables.stalls(log)
    assert no_window["cause"].tolist() == ["spontaneous"] and no_window["procedure_kind"].isna().all()
    al = history_tables.alarms(log)
    assert al["alarm"].tolist() == ["motor_stall"] and al["active"].tolist() == [True]
    assert pd.isna(al["cleared_utc"].iat[0]) and al["duration_h"].iat[0] == pytest.approx(3.0)
    summ = history_tables.summary(log, procedures("mri_delayed_recovery"))
    assert summ["stall_ongoing"].iat[0] and summ["withdrawal_risk"].iat[0] == "high"


def test_corrupted_log_still_gives_tables_and_a_summary_with_problems():
    log = sample("corrupted_log")
    assert log.damaged
    t = history_tables.tables(log)
    for name, df in t.items():
        assert_schema(name, df)
    s = t["summary"].iloc[0]
    assert s["problems"] == len(log.problems) >= 3 and s["errors"] >= 3 and s["damaged"]
    assert s["withdrawal_risk"] == "cannot_rule_out"
    dd = t["daily_dose"]
    assert dd["history_missing"].any()  # the damaged pages' days are marked, not filled
    assert s["covered_days"] < s["history_days"]
    assert len(t["refills"]) == 1 and len(t["titration"]) == 1


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.itblog")), ids=lambda p: p.stem)
def test_every_sample_gives_typed_tables_matching_the_analysis(path):
    log = read_log(path)
    procs = procedures(path.stem)
    a = analyse(log, procs)
    t = history_tables.tables(log, procs, assessment=a)
    assert set(t) == set(history_tables.TABLES)
    for name, df in t.items():
        assert_schema(name, df)
    s = t["summary"].iloc[0]
    assert (s["withdrawal_risk"], s["overdose_risk"]) == (a.withdrawal.level, a.overdose.level)
    assert s["findings"] == len(a.findings)
    # one stall row per motor_stall finding
    assert len(t["stalls"]) == a.kinds().count("motor_stall")
    assert t["stalls"]["cause"].isin(["procedure", "spontaneous"]).all()
    # without an assessment the tables analyse on their own reconstruction: same result
    shared = history_tables.tables(log, procs)
    for name in history_tables.TABLES:
        pd.testing.assert_frame_equal(shared[name], t[name], obj=name)


def test_analysis_on_a_given_reconstruction_equals_its_own():
    """analyse(reconstruction=...) (what the research tables pass, to build it once) finds
    exactly what analyse finds on its own reconstruction."""
    from analysis.reconstruct import build
    from clinical.rules import get_rules

    log = read_log(SAMPLES / "mri_delayed_recovery.itblog")
    procs = procedures("mri_delayed_recovery")
    own = analyse(log, procs)
    given = analyse(log, procs, reconstruction=build(log, get_rules()))
    assert [f.to_dict() for f in given.findings] == [f.to_dict() for f in own.findings]
    assert {k: r.level for k, r in given.risks.items()} == {k: r.level for k, r in own.risks.items()}
    pd.testing.assert_frame_equal(given.reconstruction, own.reconstruction)
    pd.testing.assert_frame_equal(given.csf, own.csf)
    assert own.findings


def test_empty_tables_keep_their_columns_and_types():
    for name in history_tables.TABLES:
        df = history_tables.empty_table(name)
        assert len(df) == 0
        assert_schema(name, df)
    with pytest.raises(KeyError):
        history_tables.typed("alarms", {"no_such_column": [1]})


def test_hand_built_stop_restart_decrease_refill_and_alarms(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 200.0)
    b.program(b.t(days=4), 220.0)                        # +10% after 4 days: fine
    b.program(b.t(days=10), mode="stopped")              # stop for two days ...
    b.program(b.t(days=12), 220.0)                       # ... restart at the full dose: not fine
    b.program(b.t(days=16), 180.0)                       # a decrease is always allowed
    b.refill(b.t(days=20), 20.0, measured=None, expected=None)
    b.alarm(b.t(days=18), "low_reservoir", cleared=b.t(days=20))
    b.alarm(b.t(days=21), "eri")                         # never cleared
    b.stall(b.t(days=22), b.t(days=22, hours=5))
    log = read_log(b.write(tmp_path / "h.itblog", b.t(days=25)))
    ti = history_tables.titration(log)
    assert ti["kind"].tolist() == ["initial", "increase", "stop", "restart", "decrease"]
    restart = ti.iloc[3]
    assert restart["old_daily_dose_mcg"] == 220.0 and restart["stopped_h"] == pytest.approx(48.0)
    assert not restart["step_ok"] and not restart["within_guideline"]
    assert ti["within_guideline"].tolist() == [True, True, True, False, True]
    assert ti.iloc[4]["step_pct"] == pytest.approx(100 * (180 - 220) / 220)
    rf = history_tables.refills(log)
    assert len(rf) == 1 and rf["used_from"].iat[0] == "history_start"
    assert rf["used_ml"].iat[0] == pytest.approx(20.0 - rf["expected_residual_ml"].iat[0])
    al = history_tables.alarms(log).set_index("alarm")
    assert al.loc["low_reservoir", "duration_h"] == pytest.approx(48.0)
    assert not al.loc["low_reservoir", "active"]
    assert al.loc["eri", "active"] and al.loc["eri", "duration_h"] == pytest.approx(4 * 24.0)
    assert al.loc["motor_stall", "duration_h"] == pytest.approx(5.0)
    surgery_end = pd.Timestamp(unix(b.t(days=22)), unit="s", tz="UTC")
    window = {"kind": "diathermy", "start_utc": (surgery_end - pd.Timedelta(hours=1)).isoformat(),
              "end_utc": surgery_end.isoformat()}
    st = history_tables.stalls(log, [window])
    assert st["cause"].tolist() == ["procedure"] and st["procedure_kind"].tolist() == ["diathermy"]
    assert st["duration_h"].iat[0] == pytest.approx(5.0) and not st["ongoing"].iat[0]
    dd = history_tables.daily_dose(log).set_index("day")
    stall_day = pd.Timestamp(unix(b.t(days=22)) // D * D, unit="s", tz="UTC")
    assert dd.loc[stall_day, "stalled_h"] == pytest.approx(5.0)
    assert dd.loc[stall_day, "rotor_mcg"] < dd.loc[stall_day, "prescribed_covered_mcg"]
    stopped_day = pd.Timestamp(unix(b.t(days=11)) // D * D, unit="s", tz="UTC")
    assert dd.loc[stopped_day, "prescribed_mcg"] == 0.0


def _damaged_variants(data: bytes) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = [data[:n] for n in (2000, len(data) // 3, len(data) - 700)]
    for _ in range(3):
        buf = bytearray(data)
        for i in rng.integers(0, len(buf), 20):
            buf[int(i)] ^= 0xA5
        out.append(bytes(buf))
    return out


@pytest.mark.parametrize("name", ["titration_violation", "clock_reset"])
def test_damaged_logs_give_fewer_rows_never_an_exception(name):
    data = (SAMPLES / f"{name}.itblog").read_bytes()
    whole = history_tables.tables(read_log_bytes(data, name))
    for k, variant in enumerate(_damaged_variants(data)):
        log = read_log_bytes(variant, f"{name}-{k}")
        t = history_tables.tables(log)
        for table, df in t.items():
            assert_schema(table, df)
        assert t["summary"]["problems"].iat[0] == len(log.problems) > 0
        # never more history than the intact log (a damaged header can misplace it in time)
        assert t["summary"]["covered_days"].iat[0] <= whole["summary"]["covered_days"].iat[0] + 1e-9
        assert len(t["refills"]) <= len(whole["refills"]) and len(t["titration"]) <= len(whole["titration"])


def test_every_column_is_documented():
    doc = (ROOT / "docs" / "research.md").read_text()
    for name, schema in history_tables.SCHEMAS.items():
        assert f"### `{name}`" in doc, name
        section = re.split(r"\n##+ ", doc.split(f"### `{name}`", 1)[1], maxsplit=1)[0]
        documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", section, flags=re.M))
        assert documented == set(schema), (name, set(schema) ^ documented)
