"""Independent tests, written from docs/check-json.md, docs/log-format.md (4, 12.6, 12.12)
and docs/clinical-rules.md alone: when the status snapshot, the event records and the
delivery rows disagree, the more dangerous reading decides and the disagreement is said;
damaged or missing data means "cannot rule out", never "all clear", and never a lower verdict
than the surviving evidence gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from logbuilder import H, LogBuilder

from analysis.check import check
from parsers import RecordCode, read_log
from parsers.model import clock_to_datetime

RANK = {"OK": 0, "REVIEW": 1, "URGENT": 2}
LEVEL = {"none": 0, "cannot_rule_out": 1, "low": 2, "moderate": 3, "high": 4}
STATUS_OFFSET, STATUS_CRC = 0x080, 0x17C  # docs/log-format.md 4


def build(page_size: int = 1024, ring_slots: int = 512):
    """200 mcg/day for three days; an MRI 4 h to 3 h before the interrogation (read late enough)."""
    b = LogBuilder(page_size=page_size, ring_slots=ring_slots)
    b.program(b.t(0, 0, 5), 200.0)
    u = b.t(3, 0, 30)
    s, e = u - 4 * H, u - 3 * H
    # the interrogating session (docs/log-format.md 12.7)
    b.event(u, RecordCode.TELEMETRY_START, session_id=99, programmer_clock=u)
    return b, u, s, e


def run(path: Path, s: int, e: int, kind: str = "mri") -> dict:
    return check(read_log(path), kind, clock_to_datetime(e), clock_to_datetime(s)).to_dict()


def text(d: dict) -> str:
    return " | ".join(d["reasons"] + d["summary"]).lower()


def flip(path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_baseline_normal_log_is_ok(tmp_path: Path) -> None:
    b, u, s, e = build()
    d = run(b.write(tmp_path / "n.itblog", u), s, e)
    assert d["verdict"] == "OK" and d["reasons"] == []
    assert d["stall"]["minutes"] == 0


# ----- the status says "not delivering", records and rows look normal ---------------------

def test_status_motor_stalled_with_normal_history_is_urgent(tmp_path: Path) -> None:
    # 12.12 table: "delivering | motor stalled | stalled now, since the last row that shows
    # delivery (URGENT)"
    b, u, s, e = build()
    d = run(b.write(tmp_path / "s.itblog", u, status={"motor_state": "stalled",
                                                      "active_alarms": ("motor_stall",)}), s, e)
    assert d["verdict"] == "URGENT"
    assert any("stalled" in r and "no drug is being delivered" in r for r in d["reasons"])
    assert any("status" in r for r in d["reasons"]), d["reasons"]
    assert d["stall"]["ongoing"] is True and d["stall"]["minutes"] > 0
    assert d["risks"]["withdrawal"]["level"] == "high"
    assert any(x["state"] == "not_delivering" for x in d["delivery_state"])


def test_status_stopped_with_normal_history_is_urgent(tmp_path: Path) -> None:
    # check-json: "a status snapshot (CRC good) that says ... the pump stopped" -> URGENT
    b, u, s, e = build()
    d = run(b.write(tmp_path / "st.itblog", u, status={"mode": "stopped"}), s, e)
    assert d["verdict"] == "URGENT"
    assert any("stopped" in r.lower() and "no drug is being delivered" in r for r in d["reasons"])


def test_status_stopped_risk_and_delivery_state(tmp_path: Path) -> None:
    # Failed before the fix (found by this file).
    # clinical-rules.md "Fixed grades: a stall, stop or empty reservoir still going at the
    # interrogation, and battery end of service, are **high** withdrawal"; log-format 12.12 (5):
    # the status mode `stopped` is "not delivering now"; check-json delivery_state source
    # "status" = "what the pump reports about itself now, when the history does not show it".
    # Expected: withdrawal high (with its actions and checklist) and a not_delivering span.
    # Actual: verdict URGENT, but no finding, withdrawal "none" ("nothing in the log points to
    # it"), checklist empty, delivery_state only "delivering", missed_mcg 0.0.
    b, u, s, e = build()
    d = run(b.write(tmp_path / "st.itblog", u, status={"mode": "stopped"}), s, e)
    assert d["verdict"] == "URGENT"
    assert d["risks"]["withdrawal"]["level"] == "high", d["risks"]["withdrawal"]["reasons"]
    assert d["checklist"], "no withdrawal checklist for a pump that reports it is stopped"
    assert any(x["state"] == "not_delivering" for x in d["delivery_state"]), d["delivery_state"]


def test_status_reservoir_empty_with_normal_history_is_urgent(tmp_path: Path) -> None:
    b, u, s, e = build()
    d = run(b.write(tmp_path / "r.itblog", u, status={"reservoir_ml": 0.2}), s, e)
    assert d["verdict"] == "URGENT"
    assert any("empty" in r and "no drug is being delivered" in r for r in d["reasons"])
    assert d["risks"]["withdrawal"]["level"] == "high"


def test_status_battery_eos_with_normal_history_is_urgent(tmp_path: Path) -> None:
    b, u, s, e = build()
    d = run(b.write(tmp_path / "b.itblog", u, status={"battery_state": "eos"}), s, e)
    assert d["verdict"] == "URGENT"
    assert any("end of service" in r for r in d["reasons"])
    assert d["risks"]["withdrawal"]["level"] == "high"


def test_status_battery_eos_delivery_state(tmp_path: Path) -> None:
    # Failed before the fix (found by this file).
    # log-format 12.12 (5) "The status ... says ... the battery at `eos` ...: the pump
    # is not delivering **now**"; check-json delivery_state is "merged from every source of
    # evidence", not_delivering covers "a stop", source "status". Expected a not_delivering
    # span; actual delivery_state is [delivering/history] only.
    b, u, s, e = build()
    d = run(b.write(tmp_path / "b.itblog", u, status={"battery_state": "eos"}), s, e)
    assert any(x["state"] == "not_delivering" for x in d["delivery_state"]), d["delivery_state"]


@pytest.mark.parametrize("alarm", ["motor_stall", "low_battery_reset", "memory_error", "eos"])
def test_status_critical_alarm_no_finding_explains_is_at_least_review(tmp_path: Path,
                                                                      alarm: str) -> None:
    # 12.12 table: "anything | a critical alarm (12.5) no finding explains | alarm_active (at
    # least REVIEW)"; check-json: "the pump reports the motor-stall alarm active: confirm with
    # the programmer"
    b, u, s, e = build()
    d = run(b.write(tmp_path / "a.itblog", u, status={"active_alarms": (alarm,)}), s, e)
    assert RANK[d["verdict"]] >= RANK["REVIEW"], d
    assert any("alarm active" in r and "confirm with the programmer" in r
               for r in d["reasons"]), d["reasons"]
    assert any(f["kind"] == "alarm_active" for f in d["findings"])


def test_status_memory_error_alarm_grades_withdrawal_low(tmp_path: Path) -> None:
    # Failed before the fix (found by this file).
    # log-format 12.5 "`memory_error` is taken as critical: a pump whose memory failed
    # cannot be trusted to deliver"; clinical-rules finding table: "alarm_active | a critical
    # alarm (... memory error) active in the status that no other finding explains: the sources
    # disagree | withdrawal low (REVIEW)". Expected withdrawal "low"; actual "none" ("nothing
    # in the log points to it"), no withdrawal actions (the other critical alarms give "low").
    b, u, s, e = build()
    d = run(b.write(tmp_path / "m.itblog", u, status={"active_alarms": ("memory_error",)}), s, e)
    assert LEVEL[d["risks"]["withdrawal"]["level"]] >= LEVEL["low"], d["risks"]["withdrawal"]


def test_status_empty_alarm_bit_with_normal_history_is_urgent(tmp_path: Path) -> None:
    b, u, s, e = build()
    d = run(b.write(tmp_path / "ea.itblog", u, status={"active_alarms": ("empty_reservoir",)}),
            s, e)
    assert RANK[d["verdict"]] >= RANK["REVIEW"]
    assert d["reasons"]


# ----- the rows say "not delivering", the status says running ------------------------------

def test_rows_rotor_still_no_record_status_running_is_urgent(tmp_path: Path) -> None:
    # 12.12 table: "not delivering to the last row, no recovery logged | motor running | still
    # not delivering (URGENT), disagreement named"; reason suffix "(seen in the delivery
    # history; no stall record)"
    b, u, s, e = build()
    b.stall(s + 600, None, record=False)
    d = run(b.write(tmp_path / "r0.itblog", u), s, e)
    assert d["verdict"] == "URGENT"
    assert any("still stalled" in r and "seen in the delivery history; no stall record" in r
               for r in d["reasons"]), d["reasons"]
    assert d["stall"]["ongoing"] is True and d["stall"]["minutes"] >= 200
    assert any(x["state"] == "not_delivering" and x["note"] and "disagree" in x["note"]
               for x in d["delivery_state"]), d["delivery_state"]
    assert d["missed_mcg"] and d["missed_mcg"] > 25


@pytest.mark.parametrize("factor", [0.05, 0.3])
def test_rows_still_rotor_without_stalled_s_is_urgent(tmp_path: Path, factor: float) -> None:
    # 12.12 (1): rotor_ml under half of commanded is a stall "with or without `stalled_s` and
    # a `motor_stall` record". The rotor confirms 5% / 30% of commanded in every row from the
    # MRI to the last row, stalled_s 0, no record, status running.
    # Failed before the fix (found by this file).
    # 12.12 "The end of the history is not a recovery. A stall or stop that reaches the
    # last row is still going at the interrogation unless a later record ends it; a status
    # `running` alone does not"; table: "not delivering to the last row, no recovery logged |
    # motor running | still not delivering (URGENT), disagreement named". Expected URGENT;
    # actual REVIEW, "the motor stall recovered only at 2024-03-03 23:57 UTC" (23:42 at 30%):
    # the rotor's share of the LAST row is placed at its end and read as a recovery
    # (stall.ongoing false, motor_stall severity warning, withdrawal low).
    b, u, s, e = build()
    b.rotor_factors.append((s + 600, u + H, factor))
    d = run(b.write(tmp_path / "r5.itblog", u), s, e)
    assert d["verdict"] == "URGENT", d["reasons"]
    assert any("no drug is being delivered" in r for r in d["reasons"])


def test_rows_commanded_none_no_stop_record_is_urgent(tmp_path: Path) -> None:
    # 12.12 (2): commanded under a tenth of the program "the pump stopped, with or without a
    # record"; check-json: a pump_stopped that is ongoing is URGENT.
    b, u, s, e = build()
    b.cmd_factors.append((s + 600, u + H, 0.0))
    d = run(b.write(tmp_path / "c0.itblog", u), s, e)
    assert d["verdict"] == "URGENT", d["reasons"]
    assert any(f["kind"] == "pump_stopped" for f in d["findings"])
    assert d["risks"]["withdrawal"]["level"] == "high"


def test_recovery_record_but_rows_still_stalled_is_urgent(tmp_path: Path) -> None:
    # 12.12 (4)/table: rows show no rotor movement after the recovery record; the more
    # dangerous reading decides and the finding names the disagreement
    # (stall_recovery_unlogged: "a recovery logged while the rotor stays stalled").
    b, u, s, e = build()
    b.stall(s + 600, None, recovery_at=s + 1800)
    d = run(b.write(tmp_path / "rr.itblog", u), s, e)
    assert d["verdict"] == "URGENT", d["reasons"]
    assert any("still stalled" in r for r in d["reasons"])
    assert any("disagree" in line for line in d["summary"]) or any(
        x["note"] and "disagree" in x["note"] for x in d["delivery_state"])
    assert d["stall"]["ongoing"] is True


# ----- damaged status snapshot or header ---------------------------------------------------

@pytest.mark.parametrize("offset", [STATUS_OFFSET, 0x09E, STATUS_CRC])
def test_damaged_status_normal_log_is_review(tmp_path: Path, offset: int) -> None:
    # check-json REVIEW: "the file header or the status snapshot is damaged"; clinical-rules:
    # a damaged status snapshot "lifts both risks to at least cannot_rule_out, never none"
    b, u, s, e = build()
    p = flip(b.write(tmp_path / "sd.itblog", u), offset)
    d = run(p, s, e)
    assert d["verdict"] == "REVIEW"
    assert any("status snapshot is damaged" in r for r in d["reasons"]), d["reasons"]
    for risk in ("withdrawal", "overdose"):
        assert d["risks"][risk]["level"] != "none"


def test_damaged_status_saying_running_does_not_hide_stalled_rows(tmp_path: Path) -> None:
    b, u, s, e = build()
    b.stall(s + 600, None)
    p = flip(b.write(tmp_path / "sd2.itblog", u, status={"motor_state": "stalled",
                                                         "active_alarms": ("motor_stall",)}),
             0x09E)  # motor_state byte: stalled -> garbage, CRC fails
    d = run(p, s, e)
    assert d["verdict"] == "URGENT"
    assert any("still stalled" in r for r in d["reasons"])
    assert any("status snapshot is damaged" in r for r in d["reasons"]), d["reasons"]


@pytest.mark.parametrize("offset", [0x1C, 0x54, 0x7C])
def test_damaged_header_normal_log_is_review(tmp_path: Path, offset: int) -> None:
    b, u, s, e = build()
    d = run(flip(b.write(tmp_path / "hd.itblog", u), offset), s, e)
    assert d["verdict"] == "REVIEW"
    assert any("header is damaged" in r for r in d["reasons"]), d["reasons"]
    for risk in ("withdrawal", "overdose"):
        assert d["risks"][risk]["level"] != "none"


# ----- diathermy over-delivery in the rows, status normal ----------------------------------

def test_diathermy_over_delivery_rows_normal_status_is_review(tmp_path: Path) -> None:
    # check-json REVIEW: "more drug than programmed was delivered in or after the DIATHERMY
    # window"; 12.2: rotor above commanded = diathermy heating
    b, u, s, e = build()
    b.rotor_factors.append((s, e + H, 1.8))
    d = run(b.write(tmp_path / "do.itblog", u), s, e, "diathermy")
    assert RANK[d["verdict"]] >= RANK["REVIEW"]
    assert any("more drug than programmed" in r and "DIATHERMY" in r for r in d["reasons"])
    assert d["excess_mcg"] and d["excess_mcg"] > 5
    assert d["risks"]["overdose"]["level"] != "none"
    assert any(x["state"] == "over_delivering" for x in d["delivery_state"])


def test_diathermy_large_over_delivery_is_urgent(tmp_path: Path) -> None:
    # clinical-rules: recent, >= 50% of the daily dose per day -> high -> URGENT
    b, u, s, e = build()
    b.rotor_factors.append((s, u + H, 5.0))  # 4x extra for ~4 h: ~130 mcg of a 200 mcg dose
    d = run(b.write(tmp_path / "dl.itblog", u), s, e, "diathermy")
    assert d["verdict"] == "URGENT", d["reasons"]
    assert any("overdose risk is high" in r for r in d["reasons"])


# ----- last page damaged vs intact: never a lower verdict ----------------------------------

def _stall_on(b, s, e, u):
    b.stall(s + 600, None)
    return {"motor_state": "stalled", "active_alarms": ("motor_stall",)}


def _silent(b, s, e, u):
    b.stall(s + 600, None, record=False)
    return {"motor_state": "stalled"}


def _late_rec(b, s, e, u):
    b.stall(s + 600, e + 2 * H)
    return None


def _normal(b, s, e, u):
    return None


def _over(b, s, e, u):
    b.rotor_factors.append((s, e + H, 1.8))
    return None


@pytest.mark.parametrize("setup", [_normal, _stall_on, _silent, _late_rec, _over])
@pytest.mark.parametrize("kind", ["mri", "diathermy"])
def test_damaged_last_pages_never_lower_verdict(tmp_path: Path, setup, kind: str) -> None:
    b, u, s, e = build(page_size=256, ring_slots=64)
    status = setup(b, s, e, u)
    intact = run(b.write(tmp_path / "i.itblog", u, status=status), s, e, kind)
    n = read_log(tmp_path / "i.itblog").header.page_count
    for k in (1, 2, 3):
        p = b.write(tmp_path / f"d{k}.itblog", u, status=status, damage_pages=(n - k,))
        d = run(p, s, e, kind)
        assert RANK[d["verdict"]] >= max(RANK[intact["verdict"]], RANK["REVIEW"]), (
            k, intact["verdict"], d["verdict"], d["reasons"])
        assert d["reasons"]
        if d["stall"]["minutes"] is None:  # "null never means no stall": the summary says so
            assert "cannot be ruled out" in " ".join(d["summary"])


def test_status_stalled_with_damaged_history_is_urgent(tmp_path: Path) -> None:
    # check-json URGENT: a status that says the motor is stalled "even when the history is
    # damaged, cut short or silent"
    b, u, s, e = build(page_size=256, ring_slots=64)
    b.write(tmp_path / "i.itblog", u)
    n = read_log(tmp_path / "i.itblog").header.page_count
    p = b.write(tmp_path / "d.itblog", u, status={"motor_state": "stalled"},
                damage_pages=(n - 1, n - 2))
    d = run(p, s, e)
    assert d["verdict"] == "URGENT"
    assert any("stalled" in r.lower() and "no drug is being delivered" in r for r in d["reasons"])
    assert any("missing or damaged" in r or "history" in r for r in d["reasons"]), d["reasons"]
