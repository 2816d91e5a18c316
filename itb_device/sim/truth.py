"""Ground truth of a scenario run: what happened, what was missed or in excess, and what the
log should let an analyst find.

The expected findings are derived from the simulator's own record of events (never from
the analysis code), using the finding kinds of docs/clinical-rules.md; the expected risks
are the scenario author's clinical label (``[expected_risk]`` in the scenario file).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from parsers.model import clock_to_datetime

from .scenario import ScenarioResult

if TYPE_CHECKING:
    from clinical.rules import Rules

HOUR = 3600


def _iso(t: int | None) -> str | None:
    return None if t is None else clock_to_datetime(int(t)).isoformat().replace("+00:00", "Z")


def hourly_delivery(result: ScenarioResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hour starts, mcg that reached the intrathecal space and mcg intended, per hour."""
    tr = result.pump.truth
    t0 = np.asarray(tr.t0, dtype=np.int64)
    if len(t0) == 0:
        e = np.array([])
        return e.astype(np.int64), e, e
    base = t0[0] - t0[0] % HOUR
    idx = (t0 - base) // HOUR
    n = int(idx.max()) + 1
    csf = np.bincount(idx, weights=np.asarray(tr.csf_mcg), minlength=n)
    intended = np.bincount(idx, weights=np.asarray(tr.intended_mcg), minlength=n)
    return base + np.arange(n, dtype=np.int64) * HOUR, csf, intended


def minute_delivery(result: ScenarioResult) -> tuple[np.ndarray, np.ndarray]:
    """Minute starts and mcg that reached the intrathecal space in each minute.

    Each sub-step's drug is spread evenly over its span (the model's resolution)."""
    tr = result.pump.truth
    t0 = np.asarray(tr.t0, dtype=np.float64)
    t1 = np.asarray(tr.t1, dtype=np.float64)
    if len(t0) == 0:
        return np.array([], dtype=np.int64), np.array([])
    cum = np.concatenate([[0.0], np.cumsum(tr.csf_mcg)])
    edges = np.concatenate([t0, t1[-1:]])
    start = int(t0[0]) - int(t0[0]) % 60
    grid = np.arange(start, int(t1[-1]) + 60, 60, dtype=np.int64)
    at = np.interp(grid, edges, cum)
    return grid[:-1], np.diff(at)


def build_truth(result: ScenarioResult, rules: Rules) -> dict[str, Any]:
    """The truth document written beside a sample log (schema in docs/scenarios.md)."""
    sc, pump = result.scenario, result.pump
    end = result.interrogated_at
    _hours, csf, intended = hourly_delivery(result)
    diff = csf - intended
    missed = float(np.clip(-diff, 0, None).sum())
    excess = float(np.clip(diff, 0, None).sum())
    findings: list[dict[str, Any]] = []

    def expect(kind: str, start: int | None = None, stop: int | None = None) -> None:
        findings.append({"kind": kind, "start_utc": _iso(start), "end_utc": _iso(stop)})

    stall_limit_h = rules["pump"]["stall_over_infusion_risk_h"]
    events = pump.truth.events
    for ev in events:
        k, s, e = ev["kind"], ev["start"], ev["end"]
        if k == "motor_stall" and s <= end:
            stop = e if e is not None and e <= end else None
            expect("motor_stall", s, stop)
            if stop is None:
                expect("stall_ongoing", s, None)
            if ((stop or end) - s) > stall_limit_h * HOUR:
                expect("long_stall", s, stop)
        elif k == "recovery_log_delayed" and s <= end and (e is None or e >= end):
            expect("stall_recovery_unlogged", s, None)
        elif k == "intermittent_stalls":
            expect("intermittent_stalls", s, e if e is not None and e <= end else None)
        elif k == "diathermy":
            expect("over_delivery", s, e)
        elif k == "battery_eri" and s <= end:
            expect("battery_eri", s, None)
        elif k == "pump_halt" and s <= end:
            expect("pump_stopped", s, e if e is not None and e <= end else None)
        elif k == "battery_eos" and s <= end:
            expect("battery_eos", s, None)
            expect("pump_stopped", s, None)
    _refill_findings(result, rules, expect)
    if any(r["problems"] and r["override"] and not r["concentration_mismatch"] for r in result.programming):
        for r in result.programming:
            if r["problems"] and r["override"] and not r["concentration_mismatch"]:
                expect("titration_violation", r["t"], None)
    for r in result.programming:
        if r["concentration_mismatch"]:
            expect("concentration_mismatch", r["t"], None)
    cut = rules["titration_checks"]["large_decrease_fraction"]
    doses = [r for r in result.programming if r.get("daily_dose_mcg")]
    for old, new in itertools.pairwise(doses):  # a large cut (guideline 5.1.1.3, 5.1.1.8)
        if new["daily_dose_mcg"] < (1 - cut) * old["daily_dose_mcg"]:
            expect("dose_decrease", new["t"], None)
    if "empty_reservoir" in _alarms_raised(result):
        t = _first_alarm(result, "empty_reservoir")
        expect("empty_reservoir", t, None)
    label = sc.data.get("truth", {})
    findings = [f for f in findings if f["kind"] not in set(label.get("drop_findings", []))]
    for kind in label.get("extra_findings", []):
        expect(kind)
    risk = sc.data.get("expected_risk", {})
    return {
        "scenario": sc.name,
        "seed": result.seed,
        "description": sc.description,
        "interrogated_at_utc": _iso(end),
        "procedures": [
            {"kind": p["kind"], "start_utc": _iso(p["start"]), "end_utc": _iso(p["end"])}
            for p in result.procedures
        ],
        "weight_kg": sc.data.get("patient", {}).get("weight_kg"),
        "age_years": sc.data.get("patient", {}).get("age_years"),
        "expected_findings": findings,
        "expected_risk": {
            "withdrawal": risk.get("withdrawal", "none"),
            "overdose": risk.get("overdose", "none"),
        },
        "true_events": [
            {
                **{k: v for k, v in ev.items() if k not in ("start", "end")},
                "start_utc": _iso(ev["start"]),
                "end_utc": _iso(ev["end"]),
            }
            for ev in events
            if ev["start"] is None or ev["start"] <= end
        ],
        "missed_mcg": round(missed, 3),
        "excess_mcg": round(excess, 3),
        "pocket_mcg": round(pump.truth.pocket_mcg, 3),
        "delivered_to_csf_mcg": round(float(csf.sum()), 3),
        "intended_mcg": round(float(intended.sum()), 3),
        "pump_accuracy_factor": round(pump.accuracy * pump.over_factor, 4),
    }


def _alarm_records(result: ScenarioResult) -> list[tuple[int, str]]:
    out = []
    for page in sorted(result.image.pages, key=lambda p: p.seq):
        for rec in page.records:
            if rec.code == 0x06:
                out.append((rec.clock, rec.values["alarm"]))
    return out


def _alarms_raised(result: ScenarioResult) -> set[str]:
    return {a for _, a in _alarm_records(result)}


def _first_alarm(result: ScenarioResult, alarm: str) -> int | None:
    pump = result.pump
    for clock, a in _alarm_records(result):
        if a == alarm:
            return int(clock - (pump.pump_clock(pump.now) - pump.now))
    return None


def _refill_findings(result: ScenarioResult, rules: Rules, expect: Any) -> None:
    """A refill whose measured residual differs from the expected beyond the labeled
    accuracy and beyond the consequential volume is an expected finding."""
    pump = result.pump
    acc = rules["pump"]["flow_accuracy_fraction"]
    limit_ml = rules["pump"]["refill_discrepancy_ml"][str(pump.cfg.model_ml)]
    offset = pump.pump_clock(pump.now) - pump.now
    prev_fill = None
    for page in sorted(result.image.pages, key=lambda p: p.seq):
        for rec in page.records:
            if rec.code != 0x05:
                continue
            v = rec.values
            exp, meas = v["expected_residual_ml"], v["measured_residual_ml"]
            used = (prev_fill - exp) if prev_fill is not None else None
            tol = max(limit_ml, acc * used) if used is not None else limit_ml
            t = int(rec.clock - offset)
            if meas - exp > tol:
                expect("refill_under_delivery", t, None)
            elif exp - meas > tol:
                expect("refill_over_infusion", t, None)
            prev_fill = v["reservoir_ml"]
