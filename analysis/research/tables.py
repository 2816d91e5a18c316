"""Tidy research tables from one interrogation log: daily dose, titration steps, refills,
stalls, alarms and a one-row summary per pump.

Each table is a :class:`pandas.DataFrame` with a fixed, typed schema (``SCHEMAS``; times are
``datetime64[ns, UTC]``), so tables from many logs concatenate and store as one Parquet
dataset.  They are built on the same reconstruction and paired events the analysis uses
(``analysis.reconstruct.build``, ``analysis.episodes``, the stall detector's episodes), so a
table never disagrees with a finding about what the log says.  Clinical limits come from
``clinical/clinical_rules.toml``.  A damaged log gives fewer rows, never an exception; the
summary says how many problems the reader found.  Columns and units: ``docs/research.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clinical.rules import Rules, get_rules
from clinical.titration import TitrationLimits, in_hospital_window_end_s, judge_step
from parsers import InterrogationLog

from ..assessment import Assessment, analyse
from ..context import Context, Procedure, coerce_procedures
from ..detectors.stalls import episodes as stall_episodes
from ..piecewise import overlaps
from ..reconstruct import Reconstruction, bin_edges, build, spread_rows
from ..timeutil import DAY, HOUR

UTC_NS = "datetime64[ns, UTC]"

# Every table's columns, in order, with their dtypes (documented in docs/research.md).
SCHEMAS: dict[str, dict[str, str]] = {
    "daily_dose": {
        "day": UTC_NS,
        "hours_in_window": "float64",
        "hours_covered": "float64",
        "prescribed_mcg": "float64",
        "prescribed_bolus_mcg": "float64",
        "prescribed_daily_dose_mcg": "float64",
        "prescribed_covered_mcg": "float64",
        "commanded_mcg": "float64",
        "rotor_mcg": "float64",
        "delivered_fraction": "float64",
        "stalled_h": "float64",
        "history_missing": "bool",
        "inferred": "bool",
    },
    "titration": {
        "time_utc": UTC_NS,
        "kind": "str",
        "mode": "str",
        "old_daily_dose_mcg": "float64",
        "new_daily_dose_mcg": "float64",
        "change_mcg": "float64",
        "step_pct": "float64",
        "days_since_previous": "float64",
        "days_since_previous_increase": "float64",
        "stopped_h": "float64",
        "concentration_mcg_ml": "float64",
        "override": "bool",
        "inpatient": "bool",
        "step_ok": "bool",
        "interval_ok": "bool",
        "max_ok": "bool",
        "within_guideline": "bool",
        "complete": "bool",
        "time_uncertain": "bool",
        "offset": "int64",
    },
    "refills": {
        "time_utc": UTC_NS,
        "days_since_previous": "float64",
        "volume_added_ml": "float64",
        "expected_residual_ml": "float64",
        "measured_residual_ml": "float64",
        "discrepancy_ml": "float64",
        "used_ml": "float64",
        "used_from": "str",
        "discrepancy_pct_of_used": "float64",
        "limit_ml": "float64",
        "beyond_limit": "bool",
        "concentration_mcg_ml": "float64",
        "previous_concentration_mcg_ml": "float64",
        "reservoir_ml": "float64",
        "offset": "int64",
    },
    "stalls": {
        "start_utc": UTC_NS,
        "end_utc": UTC_NS,
        "ongoing": "bool",
        "duration_h": "float64",
        "cause": "str",
        "procedure_kind": "str",
        "procedure_start_utc": UTC_NS,
        "procedure_end_utc": UTC_NS,
        "hours_after_procedure": "float64",
        "missed_mcg": "float64",
        "recorded": "bool",
        "recovery_logged": "bool",
        "offset": "int64",
    },
    "alarms": {
        "alarm": "str",
        "raised_utc": UTC_NS,
        "cleared_utc": UTC_NS,
        "active": "bool",
        "duration_h": "float64",
        "offset": "int64",
    },
    "summary": {
        "log": "str",
        "serial": "str",
        "model_ml": "int64",
        "firmware": "str",
        "implant_date": UTC_NS,
        "interrogated_utc": UTC_NS,
        "history_start_utc": UTC_NS,
        "history_end_utc": UTC_NS,
        "history_days": "float64",
        "covered_days": "float64",
        "mean_daily_dose_mcg": "float64",
        "mean_delivered_mcg_day": "float64",
        "titration_steps": "int64",
        "titration_outside_guideline": "int64",
        "refill_count": "int64",
        "mean_discrepancy_ml": "float64",
        "mean_discrepancy_pct": "float64",
        "refills_beyond_limit": "int64",
        "stall_count": "int64",
        "stall_hours": "float64",
        "stall_ongoing": "bool",
        "alarm_count": "int64",
        "alarms_active": "int64",
        "findings": "int64",
        "problems": "int64",
        "errors": "int64",
        "damaged": "bool",
        "header_ok": "bool",
        "status_ok": "bool",
        "withdrawal_risk": "str",
        "overdose_risk": "str",
    },
}

TABLES: tuple[str, ...] = tuple(SCHEMAS)

ProcedureLike = Procedure | Mapping[str, Any]


def empty_table(name: str) -> pd.DataFrame:
    """A table with no rows but every column of ``name`` typed (for concatenation)."""
    return typed(name, {})


def typed(name: str, data: Mapping[str, Any]) -> pd.DataFrame:
    """Build table ``name`` from column values, cast to its schema.

    Time columns take Unix seconds (None or NaN for no time); a missing column is all
    missing.  Raises KeyError for a column the schema does not have (a programming error).
    """
    schema = SCHEMAS[name]
    extra = set(data) - set(schema)
    if extra:
        raise KeyError(f"table {name} has no columns {sorted(extra)}")
    n = max((len(v) for v in data.values()), default=0)
    cols: dict[str, Any] = {}
    for col, dtype in schema.items():
        values = data.get(col)
        if dtype == UTC_NS:
            secs = np.full(n, np.nan) if values is None else np.array(values, dtype=np.float64)
            ns = np.where(np.isnan(secs), np.iinfo(np.int64).min,
                          np.round(np.nan_to_num(secs) * 1e9)).astype(np.int64)
            cols[col] = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
        elif dtype == "str":
            cols[col] = pd.array([None] * n if values is None else list(values), dtype="str")
        elif dtype == "bool":
            cols[col] = np.zeros(n, dtype=bool) if values is None else np.array(values, dtype=bool)
        elif dtype == "int64":
            cols[col] = np.zeros(n, dtype=np.int64) if values is None else np.array(values, dtype=np.int64)
        else:
            cols[col] = np.full(n, np.nan) if values is None else np.array(values, dtype=np.float64)
    return pd.DataFrame(cols, columns=list(schema))


@dataclass
class _Basis:
    """What every table is built from: the log, rules, procedures and one reconstruction."""

    log: InterrogationLog
    rules: Rules
    procedures: tuple[Procedure, ...]
    rec: Reconstruction

    @property
    def ctx(self) -> Context:
        return Context(self.log, self.rec, self.rules, self.procedures)


def _basis(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None,
           rules: Rules | Mapping[str, Any] | str | None) -> _Basis:
    r = get_rules(rules)
    return _Basis(log, r, coerce_procedures(procedures), build(log, r))


# ----- daily dose ---------------------------------------------------------------------------

def daily_dose(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
               rules: Rules | Mapping[str, Any] | str | None = None) -> pd.DataFrame:
    """Prescribed against delivered drug per UTC day (one row per day of the history window).

    Prescribed is the program(s) in effect (flex steps by the pump clock) plus prescribed
    boluses; commanded and rotor-confirmed are the delivery history's volumes times the
    concentration of the drug in the reservoir.  Days (or parts) without delivery history
    have ``hours_covered`` below 24 and NaN delivered amounts where nothing is known.
    """
    return _daily(_basis(log, procedures, rules))


def _daily(b: _Basis) -> pd.DataFrame:
    rec = b.rec
    w0, w1 = rec.window
    if w1 <= w0:
        return empty_table("daily_dose")
    a, e = bin_edges(rec.window, DAY)
    ia, ib = np.maximum(a, w0), np.minimum(e, w1)
    in_window = np.clip(ib - ia, 0, None).astype(float)
    prescribed = rec.prescribed_mcg.integral(ia, ib)
    bolus = rec.bolus_mcg.integral(ia, ib)
    rows = rec.rows
    rs, re_ = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()

    def spread(values: np.ndarray) -> np.ndarray:
        return spread_rows(rows, a, e, values)

    covered = np.clip(spread((re_ - rs).astype(float)), 0, DAY)
    has = covered > 0
    commanded = np.where(has, spread(rows["commanded_mcg"].to_numpy()), np.nan)
    rotor = np.where(has, spread(rows["rotor_mcg"].to_numpy()), np.nan)
    presc_cov = spread(rows["prescribed_mcg"].to_numpy())
    stalled = spread(np.minimum(rows["stalled_s"].to_numpy(dtype=float), re_ - rs))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(in_window > 0, (prescribed - bolus) / in_window * DAY, np.nan)
        frac = np.where(has & (presc_cov > 0), rotor / presc_cov, np.nan)
    inferred_spans = [(s.start_s, s.end_s) for s in (*rec.inferred, *rec.uncertain)]
    return typed("daily_dose", {
        "day": a,
        "hours_in_window": in_window / HOUR,
        "hours_covered": covered / HOUR,
        "prescribed_mcg": prescribed,
        "prescribed_bolus_mcg": bolus,
        "prescribed_daily_dose_mcg": rate,
        "prescribed_covered_mcg": np.where(has, presc_cov, 0.0),
        "commanded_mcg": commanded,
        "rotor_mcg": rotor,
        "delivered_fraction": frac,
        "stalled_h": stalled / HOUR,
        "history_missing": overlaps(a, e, [(s.start_s, s.end_s) for s in rec.missing]),
        "inferred": overlaps(a, e, inferred_spans),
    })


# ----- titration ----------------------------------------------------------------------------

def titration(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
              rules: Rules | Mapping[str, Any] | str | None = None) -> pd.DataFrame:
    """Every change of the programmed daily dose in the log, checked against the guideline.

    One row per program record that changes the daily dose (changes below
    ``[titration_checks] dose_change_tolerance`` are not steps), the first program in the log
    included (``kind`` ``initial``, no old dose).  ``within_guideline`` needs an increase of at
    most ``[titration] max_step_fraction`` (in hospital just after implant also
    ``inpatient_step_mcg_day``), at least ``min_step_interval_days`` after the previous
    increase, and a dose of at most ``max_daily_dose_mcg``; a restart after a stop of
    ``restart_after_stop_hours`` or more must be below ``restart_full_dose_fraction`` of the
    dose before the stop.
    """
    return _titration(_basis(log, procedures, rules))


def _implant_s(log: InterrogationLog) -> int:
    d = log.header.implant_date
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp())


def _titration(b: _Basis) -> pd.DataFrame:
    """Each step judged by the one titration judgement (:mod:`clinical.titration`), the one the
    detectors and the programmer use."""
    limits = TitrationLimits.from_rules(b.rules)
    inpatient_end = in_hospital_window_end_s(b.log.header.implant_date, limits)
    cols: dict[str, list[Any]] = {c: [] for c in SCHEMAS["titration"]}
    prev_dose: float | None = None
    last_t: int | None = None
    last_increase: int | None = None
    stop_start: int | None = None
    pre_stop: float | None = None
    for ps in b.rec.program_spans:
        p = ps.program
        if p.source != "log":
            continue
        t, new = p.start_s, p.daily_dose_mcg
        old: float | None = prev_dose
        stopped_h = np.nan
        inpatient = t < inpatient_end
        since = None if last_increase is None else (t - last_increase) / DAY
        if prev_dose is None:
            kind = "initial"
            j = judge_step(None, new, limits, in_hospital=inpatient)
        elif new <= 0 and prev_dose <= 0:
            continue
        elif new <= 0:
            kind, stop_start, pre_stop = "stop", t, prev_dose
            j = judge_step(prev_dose, new, limits, in_hospital=inpatient)
        elif prev_dose <= 0:
            kind, old = "restart", pre_stop
            stopped_h = (t - stop_start) / HOUR if stop_start is not None else np.nan
            j = judge_step(old, new, limits, in_hospital=inpatient, days_since_increase=since,
                           stopped_h=None if np.isnan(stopped_h) else stopped_h)
            if j.kind == "restart":
                last_increase = None
        else:
            j = judge_step(prev_dose, new, limits, in_hospital=inpatient, days_since_increase=since)
            if j.kind == "same":
                continue
            kind = j.kind
        step_ok, interval_ok, max_ok = j.step_ok, j.interval_ok, j.max_ok
        since_inc = (t - last_increase) / DAY if last_increase is not None and kind != "initial" else np.nan
        if j.kind == "increase":
            last_increase = t
        old_v = np.nan if old is None else float(old)
        cols["time_utc"].append(t)
        cols["kind"].append(kind)
        cols["mode"].append(p.mode)
        cols["old_daily_dose_mcg"].append(old_v)
        cols["new_daily_dose_mcg"].append(float(new))
        cols["change_mcg"].append(float(new) - old_v)
        cols["step_pct"].append(100 * (new - old_v) / old_v if old_v > 0 else np.nan)
        cols["days_since_previous"].append((t - last_t) / DAY if last_t is not None else np.nan)
        cols["days_since_previous_increase"].append(since_inc)
        cols["stopped_h"].append(stopped_h)
        cols["concentration_mcg_ml"].append(p.concentration_mcg_ml)
        cols["override"].append(bool(p.override))
        cols["inpatient"].append(bool(inpatient))
        cols["step_ok"].append(bool(step_ok))
        cols["interval_ok"].append(bool(interval_ok))
        cols["max_ok"].append(bool(max_ok))
        cols["within_guideline"].append(bool(step_ok and interval_ok and max_ok))
        cols["complete"].append(bool(p.complete))
        cols["time_uncertain"].append(bool(p.time_uncertain))
        cols["offset"].append(int(p.offsets[0]) if p.offsets else -1)
        prev_dose, last_t = float(new), t
    return typed("titration", cols)


# ----- refills ------------------------------------------------------------------------------

def refills(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
            rules: Rules | Mapping[str, Any] | str | None = None) -> pd.DataFrame:
    """Every refill: interval since the previous one, volumes, and the residual discrepancy.

    ``discrepancy_ml`` is measured minus expected residual (positive: more drug left than
    the pump thinks, it delivered less).  ``used_ml`` is the volume the pump counted since
    the previous refill (for the first refill in the log: since the start of its delivery
    history), and the discrepancy is also given as a percentage of it.  ``beyond_limit``
    uses the analysis' limit: the larger of ``[pump] refill_discrepancy_ml`` for the model and
    ``flow_accuracy_fraction`` of the volume used.
    """
    return _refills(_basis(log, procedures, rules))


def _refills(b: _Basis) -> pd.DataFrame:
    r, rec = b.rules, b.rec
    acc = r.number("pump", "flow_accuracy_fraction")
    limit = r.refill_discrepancy_ml(b.log.header.model_ml)
    rows = rec.rows
    start_res = None
    if len(rows):
        start_res = (float(rows["start_s"].iat[0]),
                     float(rows["reservoir_ml"].iat[0] + rows["rotor_ml"].iat[0]))
    cols: dict[str, list[Any]] = {c: [] for c in SCHEMAS["refills"]}
    prev = None
    for rf in sorted(rec.episodes.refills, key=lambda x: x.time_s):
        if prev is not None:
            used, src = prev.reservoir_ml - rf.expected_residual_ml, "previous_refill"
        elif start_res is not None and start_res[0] < rf.time_s:
            used, src = start_res[1] - rf.expected_residual_ml, "history_start"
        else:
            used, src = np.nan, None
        measured = rf.measured_residual_ml
        if measured > b.log.header.model_ml:  # not measured (docs/log-format.md 12.8)
            measured = np.nan
        diff = measured - rf.expected_residual_ml
        tol = max(limit, acc * used) if used == used and used > 0 else limit
        cols["time_utc"].append(rf.time_s)
        cols["days_since_previous"].append((rf.time_s - prev.time_s) / DAY if prev else np.nan)
        cols["volume_added_ml"].append(rf.volume_added_ml)
        cols["expected_residual_ml"].append(rf.expected_residual_ml)
        cols["measured_residual_ml"].append(measured)
        cols["discrepancy_ml"].append(diff)
        cols["used_ml"].append(used)
        cols["used_from"].append(src)
        cols["discrepancy_pct_of_used"].append(100 * diff / used if used == used and used > 0 else np.nan)
        cols["limit_ml"].append(tol)
        cols["beyond_limit"].append(bool(abs(diff) > tol))
        cols["concentration_mcg_ml"].append(rf.concentration_mcg_ml)
        cols["previous_concentration_mcg_ml"].append(rec.drug_concentration_at(rf.time_s - 1))
        cols["reservoir_ml"].append(rf.reservoir_ml)
        cols["offset"].append(rf.offset)
        prev = rf
    return typed("refills", cols)


# ----- stalls -------------------------------------------------------------------------------

def stalls(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
           rules: Rules | Mapping[str, Any] | str | None = None) -> pd.DataFrame:
    """Every motor stall (records and delivery rows together, as the stall detector sees them).

    ``cause`` is ``procedure`` when the stall starts within ``[stalls] procedure_margin_h`` of
    a given procedure window (MRI, diathermy), else ``spontaneous``; a stall still going at
    interrogation has no end and its duration runs to the interrogation.
    """
    return _stalls(_basis(log, procedures, rules))


def _stalls(b: _Basis) -> pd.DataFrame:
    ctx = b.ctx
    now = b.rec.now_s
    cols: dict[str, list[Any]] = {c: [] for c in SCHEMAS["stalls"]}
    for ep in stall_episodes(ctx):
        end = None if ep.ongoing else ep.end_s
        until = end if end is not None else now
        p = ep.procedure
        cols["start_utc"].append(ep.start_s)
        cols["end_utc"].append(end)
        cols["ongoing"].append(bool(ep.ongoing))
        cols["duration_h"].append(max(0.0, (until - ep.start_s) / HOUR))
        cols["cause"].append("procedure" if p is not None else "spontaneous")
        cols["procedure_kind"].append(p.kind if p is not None else None)
        cols["procedure_start_utc"].append(p.start_s if p is not None else None)
        cols["procedure_end_utc"].append(p.end_s if p is not None else None)
        cols["hours_after_procedure"].append((until - p.end_s) / HOUR if p is not None else np.nan)
        cols["missed_mcg"].append(ep.missed_mcg if ep.missed_known else np.nan)
        cols["recorded"].append(ep.record is not None)
        cols["recovery_logged"].append(ep.recovery is not None)
        if ep.record is not None:
            off = ep.record.offset
        elif ep.rows:
            off = int(ctx.rows["offset"].iat[ep.rows[0]])
        else:
            off = -1
        cols["offset"].append(int(off))
    return typed("stalls", cols)


# ----- alarms -------------------------------------------------------------------------------

def alarms(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
           rules: Rules | Mapping[str, Any] | str | None = None) -> pd.DataFrame:
    """Every alarm raised in the log, paired with its clearing (``active`` if never cleared:
    its duration then runs to the interrogation)."""
    return _alarms(_basis(log, procedures, rules))


def _alarms(b: _Basis) -> pd.DataFrame:
    now = b.rec.now_s
    spans = b.rec.episodes.alarms
    return typed("alarms", {
        "alarm": [a.alarm for a in spans],
        "raised_utc": [a.raised_s for a in spans],
        "cleared_utc": [a.cleared_s for a in spans],
        "active": [a.cleared_s is None for a in spans],
        "duration_h": [max(0.0, ((a.cleared_s if a.cleared_s is not None else now) - a.raised_s) / HOUR)
                       for a in spans],
        "offset": [int(a.offsets[0]) if a.offsets else -1 for a in spans],
    })


# ----- summary and all tables ---------------------------------------------------------------

def summary(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
            weight_kg: float | None = None, rules: Rules | Mapping[str, Any] | str | None = None,
            assessment: Assessment | None = None) -> pd.DataFrame:
    """One row for the pump: identity, history span, dose, refills, stalls, alarms, problems
    and the withdrawal/overdose risk ``analysis.analyse`` grades (pass ``assessment`` if you
    already have it)."""
    return tables(log, procedures, weight_kg=weight_kg, rules=rules, assessment=assessment)["summary"]


def tables(log: InterrogationLog, procedures: Iterable[ProcedureLike] | None = None, *,
           weight_kg: float | None = None, rules: Rules | Mapping[str, Any] | str | None = None,
           assessment: Assessment | None = None) -> dict[str, pd.DataFrame]:
    """Every table of ``log`` (keys ``TABLES``), built on one reconstruction; the summary runs
    ``analysis.analyse`` for the risks unless ``assessment`` is given."""
    b = _basis(log, procedures, rules)
    out = {
        "daily_dose": _daily(b),
        "titration": _titration(b),
        "refills": _refills(b),
        "stalls": _stalls(b),
        "alarms": _alarms(b),
    }
    if assessment is None:
        assessment = analyse(log, b.procedures, weight_kg=weight_kg, rules=b.rules, reconstruction=b.rec)
    out["summary"] = _summary(b, out, assessment)
    return out


def _mean(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.mean()) if len(s) else np.nan


def _summary(b: _Basis, t: dict[str, pd.DataFrame], a: Assessment) -> pd.DataFrame:
    log, rec = b.log, b.rec
    h = log.header
    w0, w1 = rec.window
    dd = t["daily_dose"]
    in_window_h = float(dd["hours_in_window"].sum())
    covered_h = float(rec.rows["interval_s"].sum()) / HOUR if len(rec.rows) else 0.0
    basal = float((dd["prescribed_mcg"] - dd["prescribed_bolus_mcg"]).sum())
    covered_day_h = float(dd["hours_covered"].sum())
    ti, rf, st, al = t["titration"], t["refills"], t["stalls"], t["alarms"]
    steps = ti[ti["kind"] != "initial"]
    try:
        implant: float | None = float(_implant_s(log))
    except (ValueError, OverflowError):
        implant = None
    return typed("summary", {
        "log": [log.path.name],
        "serial": [h.serial],
        "model_ml": [int(h.model_ml)],
        "firmware": [h.firmware],
        "implant_date": [implant],
        "interrogated_utc": [rec.now_s],
        "history_start_utc": [w0 if w1 > w0 else None],
        "history_end_utc": [w1 if w1 > w0 else None],
        "history_days": [(w1 - w0) / DAY],
        "covered_days": [covered_h / 24],
        "mean_daily_dose_mcg": [basal / in_window_h * 24 if in_window_h > 0 else np.nan],
        "mean_delivered_mcg_day": [float(dd["rotor_mcg"].sum()) / covered_day_h * 24
                                   if covered_day_h > 0 else np.nan],
        "titration_steps": [len(steps)],
        "titration_outside_guideline": [int((~ti["within_guideline"]).sum())],
        "refill_count": [len(rf)],
        "mean_discrepancy_ml": [_mean(rf["discrepancy_ml"])],
        "mean_discrepancy_pct": [_mean(rf["discrepancy_pct_of_used"])],
        "refills_beyond_limit": [int(rf["beyond_limit"].sum())],
        "stall_count": [len(st)],
        "stall_hours": [float(st["duration_h"].sum())],
        "stall_ongoing": [bool(st["ongoing"].any())],
        "alarm_count": [len(al)],
        "alarms_active": [int(al["active"].sum())],
        "findings": [len(a.findings)],
        "problems": [len(log.problems)],
        "errors": [sum(p.severity == "error" for p in log.problems)],
        "damaged": [bool(log.damaged)],
        "header_ok": [bool(log.header_ok)],
        "status_ok": [bool(log.status_ok)],
        "withdrawal_risk": [a.withdrawal.level],
        "overdose_risk": [a.overdose.level],
    })


__all__ = [
    "SCHEMAS", "TABLES", "alarms", "daily_dose", "empty_table", "refills", "stalls", "summary",
    "tables", "titration", "typed",
]
