"""The two-hour check after an MRI or surgery with diathermy (guideline section 2).

``check(log, procedure)`` answers what Kids Rehab staff must know at the bedside: did the
pump stall, did it recover and when, how much drug was missed or in excess, what is the
withdrawal and overdose risk and what does the guideline say to do.  It gives a verdict:

- ``URGENT``: a high risk, or the pump is not delivering now (stall ongoing, stopped, empty);
- ``REVIEW``: anything a clinician must look at, and every case where the software cannot
  reassure (interrogated too early, the log does not cover the procedure, damaged history or
  an untrusted clock in the window);
- ``OK``: the log covers the procedure and shows nothing that needs action.

It supports, and does not replace, the manufacturer's programmer and clinical judgement.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clinical.rules import Rules, get_rules
from parsers import InterrogationLog

from .assessment import Assessment, analyse, no_drug_spans
from .context import Procedure
from .findings import Finding
from .piecewise import merge_spans
from .risk import Risk, checklist
from .timeutil import HOUR, Clock, to_seconds

VERDICTS = ("OK", "REVIEW", "URGENT")
NOT_DELIVERING = ("stall_ongoing", "pump_stopped", "battery_eos", "empty_reservoir")
SCHEMA = "itb-check/1"
PUMP_RECORD_ONLY = ("OK is from the pump's record only: telemetry cannot show a catheter kink, leak "
                    "or disconnection. Act on the child's signs.")
_EVENT_TEXT = {
    "motor_stall": "motor stall logged",
    "motor_stall_recovery": "motor stall recovery logged",
    "alarm_raised": "alarm raised: {alarm}",
    "alarm_cleared": "alarm cleared: {alarm}",
    "telemetry_start": "programmer session started",
    "telemetry_end": "programmer session ended",
    "bolus_start": "{kind} bolus started: {dose_mcg:g} mcg",
    "bolus_end": "{kind} bolus ended",
    "prescription": "prescription programmed: {mode}, {daily_dose_mcg_day:g} mcg/day",
    "refill": "refill: {volume_added_ml:g} mL of {concentration_mcg_ml:g} mcg/mL",
    "ptm_request": "patient bolus request ({reason})",
    "override_note": "programmer check overridden: reason {override_reason}, operator {operator_id}",
    "clock_set": "pump clock set",
    "pump_reset": "pump reset",
}


@dataclass
class Evidence:
    """One dated line of evidence from the log."""

    time_s: int
    text: str
    offset: int | None = None


@dataclass
class CheckResult:
    """The verdict and everything behind it.  Times are Unix seconds (UTC).  ``assumed_start``:
    the procedure's start was not given (assumed from its kind); ``records_until_s``: the end of
    the last delivery record in the window (None: none); ``not_delivering_now``: the pump is
    not delivering at the interrogation.  ``details`` repeats these three under their names,
    for readers not yet moved to the fields.

    ``stall_s``: seconds the motor was stalled in the check window (``stall_from_s``, that is
    ``[check] lookback_h`` before the procedure start, to the interrogation): the union of the
    ``motor_stall`` and ``stall_ongoing`` findings there, a stall still going (or with no known
    end) counted to the interrogation; 0 when none was found, None when none was found and the
    window's history is incomplete (``missed_mcg`` None: a stall cannot be ruled out).
    ``stall_ongoing``: one of them is still going at the interrogation.  Computed here, once
    (:func:`stall_time`), beside the rest of the verdict, so that every reader of the result
    (the JSON's ``stall``, the ward app, the FHIR export) takes this figure and none works out
    its own; ``_summary`` tells the stalls of the same window."""

    verdict: str
    reasons: list[str]
    procedure: Procedure
    interrogated_s: int
    summary: list[str]
    evidence: list[Evidence]
    missed_mcg: float | None
    excess_mcg: float | None
    daily_dose_mcg: float | None
    assessment: Assessment
    assumed_start: bool
    records_until_s: int | None
    not_delivering_now: bool
    stall_s: int | None
    stall_ongoing: bool
    stall_from_s: int
    weight_kg: float | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def clock(self) -> Clock:
        """The clock the check wrote its times with (the analysis' clock): its renderers show
        times with it, so a report's labels name the zone its texts use."""
        return self.assessment.clock

    @property
    def hours_after_end(self) -> float:
        """Hours from the end of the procedure to the interrogation."""
        return (self.interrogated_s - self.procedure.end_s) / HOUR

    def to_dict(self, tz: dt.tzinfo | None = None) -> dict[str, Any]:
        """The stable JSON structure of docs/check-json.md (times ISO 8601 with offsets)."""
        zone = tz or dt.UTC

        def iso(s: int | None) -> str | None:
            return None if s is None else dt.datetime.fromtimestamp(s, zone).isoformat()

        a = self.assessment
        share = lambda mcg: None if mcg is None or not self.daily_dose_mcg else mcg / self.daily_dose_mcg  # noqa: E731
        return {
            "schema": SCHEMA,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "summary": list(self.summary),
            "procedure": {
                "kind": self.procedure.kind,
                "start": iso(self.procedure.start_s),
                "end": iso(self.procedure.end_s),
            },
            "interrogated_at": iso(self.interrogated_s),
            "hours_after_procedure_end": round(self.hours_after_end, 2),
            "daily_dose_mcg": self.daily_dose_mcg,
            "missed_mcg": _round(self.missed_mcg),
            "missed_share_of_daily_dose": _round(share(self.missed_mcg), 4),
            "excess_mcg": _round(self.excess_mcg),
            "excess_share_of_daily_dose": _round(share(self.excess_mcg), 4),
            "stall": {
                "minutes": None if self.stall_s is None else round(self.stall_s / 60, 1),
                "ongoing": self.stall_ongoing,
                "from": iso(self.stall_from_s),
            },
            "risks": {
                k: {
                    "level": r.level,
                    "reasons": list(r.reasons),
                    "actions": [x.to_dict() for x in r.actions],
                }
                for k, r in a.risks.items()
            },
            "checklist": [c.to_dict() for c in checklist(a.risks)],
            "findings": [
                {
                    "kind": f.kind,
                    "severity": f.severity,
                    "start": iso(f.start_s),
                    "end": iso(f.end_s),
                    "ongoing": f.ongoing,
                    "direction": f.direction,
                    "missed_mcg": _round(f.missed_mcg),
                    "excess_mcg": _round(f.excess_mcg),
                    "missed_share_of_daily_dose": _round(f.missed_share, 4),
                    "excess_share_of_daily_dose": _round(f.excess_share, 4),
                    "explanation": f.explanation,
                    "evidence_offsets": list(f.evidence),
                }
                for f in a.findings
            ],
            "delivery_state": self._delivery_state(iso),
            "evidence": [{"time": iso(e.time_s), "text": e.text, "offset": e.offset} for e in self.evidence],
            "cannot_show": list(a.limitations),
            "weight_kg": self.weight_kg,
            "timezone": str(zone),
            "disclaimer": a.disclaimer,
        }


    def _delivery_state(self, iso: Callable[[int | None], str | None]) -> list[dict[str, Any]]:
        """The delivery-state spans that touch the check window (from ``[check] lookback_h``
        before the procedure, as the stall time)."""
        df = self.assessment.delivery_state
        if df is None or df.empty:
            return []
        lo = self.stall_from_s
        out = []
        for r in df.itertuples(index=False):
            a, b = int(r.start_utc.timestamp()), int(r.end_utc.timestamp())
            if b >= lo:
                out.append({"start": iso(max(a, lo) if r.state == "delivering" else a), "end": iso(b),
                            "state": r.state, "source": r.source, "finding": r.finding or None,
                            "note": r.note or None})
        return out


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(float(x), nd)


class CheckInputError(ValueError):
    """The procedure the user entered cannot be checked against this log (one line, for the
    command line's exit 2)."""


def check(
    log: InterrogationLog,
    kind: str,
    end: dt.datetime,
    start: dt.datetime | None = None,
    weight_kg: float | None = None,
    rules: Rules | None = None,
    clock: Clock | None = None,
) -> CheckResult:
    """Run the two-hour check for a procedure of ``kind`` (``mri`` or ``diathermy``) that
    ended at ``end`` (aware datetime).  ``clock`` writes every time in the result's texts
    (summary, reasons, notes and the analysis' explanations) in the user's zone, labelled (UTC
    by default); the result keeps it as ``clock``, for its renderers.  Raises
    :class:`CheckInputError` for a procedure that ends after the interrogation (the wrong log
    or the wrong date)."""
    rules = get_rules(rules)
    kind = kind.lower()
    if kind not in ("mri", "diathermy"):
        raise CheckInputError(f"procedure must be mri or diathermy, not {kind!r}")
    if end.tzinfo is None or (start is not None and start.tzinfo is None):
        raise CheckInputError("procedure times must carry a time zone")
    end_s = int(end.timestamp())
    if start is None:
        start_s = end_s - int(float(rules.get("check", "default_window_h")[kind]) * HOUR)
        assumed_start = True
    else:
        start_s = int(start.timestamp())
        assumed_start = False
    if start_s > end_s:
        raise CheckInputError("the procedure starts after it ends")
    clock = clock if clock is not None else Clock()
    if log.header_ok:
        asked_s = int(log.header.interrogated_at.timestamp())
        if end_s > asked_s + 60:
            raise CheckInputError(
                f"the {kind.upper()} ends at {clock.time(end_s)}, after the pump was interrogated "
                f"({clock.time(asked_s)}): is this the right log, or the right date?")
    proc = Procedure(kind, start_s, end_s)
    a = analyse(log, procedures=[proc], weight_kg=weight_kg, rules=rules, clock=clock)
    now_s = int(a.now_s or log.header.interrogated_at.timestamp())
    tl = a.reconstruction
    # the stored program's dose: a pump that stopped itself keeps it (docs/log-format.md 12.6)
    daily = log.status.daily_dose_mcg_day if log.status_ok else None
    daily = daily or _daily_dose(tl)
    status_says = a.status_now.not_delivering() if a.status_now is not None else []
    stopped = [f for f in a.findings if f.kind in NOT_DELIVERING and (f.ongoing or f.end_s is None)]
    stalled_now = bool(status_says or stopped)
    missed, excess, covered = _window_drug(a, start_s, now_s, rules)
    reasons_urgent = [_NOT_DELIVERING_TEXT[f.kind] + _source(f) for f in stopped]
    kinds_now = {f.kind for f in stopped}
    for x in status_says:  # what the pump says now, unless a finding already says it
        if not any(word in x and kind in kinds_now for word, kind in _STATUS_KIND):
            reasons_urgent.append(f"{x}: no drug is being delivered")
    reasons_review = []
    for k, r in a.risks.items():
        cause = _risk_cause(r)
        if r.level == "high":
            reasons_urgent.append(f"{k} risk is high{cause}")
        elif r.level in ("moderate", "low"):
            reasons_review.append(f"{k} risk is {r.level}{cause}")
        elif r.level == "cannot_rule_out":
            reasons_review.append(f"{k} risk cannot be ruled out")
    reasons_review += _coverage_reasons(log, a, proc, now_s, rules, clock)
    notes = (
        [f"the {kind.upper()} start was not given; assumed {clock.time(start_s)} for the drug sums"]
        if assumed_start
        else []
    )
    if kind == "diathermy":
        cm = float(rules.get("procedures", "diathermy_min_distance_cm"))
        notes.append(
            f"guideline: monopolar (short-wave) diathermy should not be used within {cm:g} cm of the "
            "pump (heating can change delivery and cause overdose); bipolar cautery is the "
            "alternative. Ask which diathermy was used, and how close to the pump."
        )
    lookback = float(rules.get("check", "lookback_h")) * HOUR
    for f in a.findings:
        reasons_review += _finding_reasons(f, a, proc, now_s, lookback, clock)
    verdict = "URGENT" if reasons_urgent else "REVIEW" if reasons_review else "OK"
    stall_from = start_s - int(lookback)
    complete = missed is not None and window_history_complete(a, stall_from, now_s)
    stall_s, stall_ongoing = stall_time(a.findings, stall_from, now_s, history_complete=complete)
    summary = _summary(a, proc, now_s, daily, missed, excess, clock, covered, stalled_now, status_says,
                       stall_from, complete)
    if verdict == "OK":
        summary.append(PUMP_RECORD_ONLY)
    return CheckResult(
        verdict=verdict,
        reasons=_unique(reasons_urgent + reasons_review),
        procedure=proc,
        interrogated_s=now_s,
        summary=summary,
        evidence=_evidence(log, start_s, now_s, rules),
        missed_mcg=missed,
        excess_mcg=excess,
        daily_dose_mcg=daily,
        assessment=a,
        assumed_start=assumed_start,
        records_until_s=covered,
        not_delivering_now=stalled_now,
        stall_s=stall_s,
        stall_ongoing=stall_ongoing,
        stall_from_s=stall_from,
        weight_kg=weight_kg,
        notes=notes,
        details={"assumed_start": assumed_start, "records_until_s": covered,
                 "not_delivering_now": stalled_now},
    )


def stall_time(findings: list[Finding], from_s: int, now_s: int, *,
               history_complete: bool) -> tuple[int | None, bool]:
    """Seconds the motor was stalled, counting every stall that touches the check window
    (``from_s`` to ``now_s``, the interrogation) from its own start: how long the child has
    gone without drug drives the withdrawal risk, so a stall that began before the window is
    counted whole, not cut at the window.  The union of the ``motor_stall`` and
    ``stall_ongoing`` findings (the same stall seen from different sources: not added twice);
    a stall with no known start counted from ``from_s`` (at least that long), one still going
    or with no known end to ``now_s``.  Also whether one is still going.  None when no stall
    touches the window and the window's history is not complete: a stall cannot be ruled
    out, which is not 0."""
    spans: list[tuple[float, float]] = []
    ongoing = False
    for f in findings:
        if f.kind not in ("motor_stall", "stall_ongoing"):
            continue
        a = from_s if f.start_s is None else f.start_s
        b = now_s if f.end_s is None else f.end_s
        if b < from_s or a > now_s:
            continue
        b = min(b, now_s)
        spans.append((a, max(a, b)))
        ongoing = ongoing or f.ongoing or f.end_s is None
    if not spans:
        return (0 if history_complete else None), False
    return int(sum(b - a for a, b in merge_spans(spans))), ongoing


def _first_row_start(a: Assessment) -> int | None:
    """When the delivery history begins (the first row's start), None without rows."""
    rows = a.rows
    return None if rows is None or rows.empty else int(rows["start_s"].min())


def window_history_complete(a: Assessment, from_s: int, now_s: int) -> bool:
    """Whether the delivery history covers the whole check window (``from_s`` to ``now_s``)
    and can be trusted there: it reaches back to ``from_s``, and no hour of the window is
    missing, damaged or on an untrusted clock.  Only then may "no stall was found" be said."""
    tl, first = a.reconstruction, _first_row_start(a)
    if tl.empty or first is None or first > from_s + 60:  # the rows' own start, not the hour's
        return False
    starts, ends = to_seconds(tl.index), to_seconds(tl["end"])
    if ends[-1] < now_s:
        return False
    win = (ends > from_s) & (starts < now_s)
    bad = tl["history_missing"].to_numpy(dtype=bool) | tl["time_uncertain"].to_numpy(dtype=bool)
    return not bool(bad[win].any())


_NOT_DELIVERING_TEXT = {
    "stall_ongoing": "the motor is still stalled: no drug is being delivered",
    "pump_stopped": "the pump is stopped: no drug is being delivered",
    "battery_eos": "the battery is at end of service: the pump has stopped",
    "empty_reservoir": "the reservoir is empty: no drug is being delivered",
}


_STATUS_KIND = (("STALLED", "stall_ongoing"), ("STOPPED", "pump_stopped"), ("end of service", "battery_eos"),
                ("EMPTY", "empty_reservoir"))


def _source(f: Finding) -> str:
    """Where a not-delivering finding comes from, when it is not a logged record."""
    notes = " ".join(str(x) for x in f.details.notes or ())
    if f.kind == "stall_ongoing" and "status" in notes and "STALLED" in notes:
        return " (reported by the pump's status)"
    if f.kind == "stall_ongoing" and f.details.logged is False:
        return " (seen in the delivery history; no stall record)"
    if f.kind == "pump_stopped" and f.details.how == "commanded nothing":
        return " (seen in the delivery history; no stop record)"
    if f.kind == "pump_stopped" and f.details.how == "status":
        return " (reported by the pump's status)"
    return ""


def _risk_cause(r: Risk) -> str:
    """The finding behind a risk level, in words: ``: titration violation (...)``."""
    first = next((x for x in r.reasons if not x.startswith("incomplete")), None)
    if not first:
        return ""
    label = first.rsplit(":", 1)[0]
    m = re.fullmatch(r"(.*) \((.*)\)", label)
    return f": {m.group(1)}, {m.group(2)}" if m else f": {label}"


def _finding_reasons(f: Finding, a: Assessment, proc: Procedure, now_s: int, lookback: float,
                     clock: Clock) -> list[str]:
    """Why a finding needs a clinician's look, named by its cause (NOT_DELIVERING findings
    decide URGENT elsewhere; a recovered stall is judged by the risk it left, except as said)."""
    name = proc.kind.upper()
    near = _overlaps(f, proc.start_s - int(lookback), now_s)
    grace = float(a.rules.number("check", "stall_recovery_grace_min")) * 60 if a.rules is not None else 1800
    recent = a.rules is not None and f.end_s is not None and \
        f.end_s >= now_s - float(a.rules.number("risk", "recent_days")) * 86_400
    out: list[str] = []
    if f.kind == "motor_stall" and (f.ongoing or f.end_s is None):
        return out  # stall_ongoing says it
    if f.kind == "motor_stall" and f.end_s is not None:
        if f.details.restarted_by_interrogation:
            out.append(f"delivery restarted only at this interrogation ({clock.time(f.end_s)}): "
                       "confirm with the programmer that the motor runs, and interrogate again")
        if f.details.cause == "spontaneous" and (near or recent):
            out.append(f"a motor stall at {clock.time(f.start_s)} has no procedure to explain it: "
                       "stalls without a cause precede motor failure; check the procedure times "
                       "you entered")
        elif near and proc.kind != "mri":
            out.append(f"a motor stall from {clock.time(f.start_s)} to {clock.time(f.end_s)}: diathermy "
                       "is not expected to stall the motor; confirm with the programmer that it runs")
        elif near and f.end_s - proc.end_s > grace:
            out.append(f"the motor stall recovered only at {clock.time(f.end_s)}, "
                       f"{_duration(f.end_s - proc.end_s)} after the {name} ended: confirm with the "
                       "programmer that the motor runs")
        return out
    if f.kind in ("pump_stopped", "empty_reservoir") and not f.ongoing and f.end_s is not None and near:
        how = " (no stop record: seen in the delivery history)" if f.details.how == \
            "commanded nothing" else ""
        what = "the pump was stopped" if f.kind == "pump_stopped" else "the reservoir was empty"
        out.append(f"{what} from {clock.time(f.start_s)} to {clock.time(f.end_s)}{how}")
        return out
    if f.kind in NOT_DELIVERING or f.severity == "info" or not (near or f.ongoing):
        return out
    if f.kind == "alarm_active":
        out.append(f"the pump reports the {str(f.details.alarm).replace('_', '-')} alarm "
                   "active: confirm with the programmer")
    elif f.kind == "stall_recovery_unlogged":
        out.append("the stall recovery is not logged as the rotor shows: interrogate again")
    elif f.kind == "dose_decrease" and f.details.decrease_fraction is not None:
        out.append(f"the daily dose was cut by {100 * f.details.decrease_fraction:.0f}% "
                   f"({f.details.previous_dose_mcg:g} to {f.details.new_dose_mcg:g} mcg/day)")
    elif f.kind in ("titration_violation", "restart_full_dose") and f.details.above_max:
        out.append(f"{f.details.new_dose_mcg:g} mcg/day is above the "
                   f"{f.details.max_dose_mcg:g} mcg/day upper limit")
    elif f.kind == "over_delivery":
        out.append(f"more drug than programmed was delivered in or after the {name} window")
    elif f.start_s is not None and f.start_s < proc.start_s - lookback:
        out.append(f"{f.kind.replace('_', ' ')} (since {clock.time(f.start_s)})")
    else:
        out.append(f"{f.kind.replace('_', ' ')} in or after the {name} window")
    return out


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _overlaps(f: Finding, a: int, b: int) -> bool:
    s = f.start_s if f.start_s is not None else a
    e = f.end_s if f.end_s is not None else b
    return s <= b and e >= a


def _daily_dose(tl: pd.DataFrame) -> float | None:
    """The prescribed daily dose at the end of the history (basal, mcg/day)."""
    if tl.empty:
        return None
    basal = tl["prescribed_basal_mcg_h"].to_numpy(dtype=float)
    ok = ~np.isnan(basal)
    return float(basal[ok][-24:].mean() * 24) if ok.any() else None


def _window_drug(
    a: Assessment, start_s: int, now_s: int, rules: Rules
) -> tuple[float | None, float | None, int | None]:
    """Drug missed and in excess (mcg) from the start of the procedure to the interrogation,
    and the time up to which delivery records exist; None where the window's history is
    missing or does not reach back to the start.

    Computed from the delivery rows themselves (whatever their length or phase), against the
    prescription: the rotor-confirmed drug, none where the drug never reached the patient
    (an empty reservoir, a pocket fill), and beyond the last row the program's dose wherever
    a finding says nothing was delivered.  Differences inside the pump's labeled accuracy in
    rows no finding explains are stroke rounding and inaccuracy, not missed drug."""
    rows, tl = a.rows, a.reconstruction
    if rows is None or rows.empty or tl.empty:
        return None, None, None
    s = rows["start_s"].to_numpy(dtype=np.int64)
    e = rows["end_s"].to_numpy(dtype=np.int64)
    if s.min() > start_s + 60:
        return None, None, None  # the history does not reach back to the start
    bins_a, bins_b = to_seconds(tl.index), to_seconds(tl["end"])
    win = (bins_b > start_s) & (bins_a < now_s)
    if tl["history_missing"].to_numpy(dtype=bool)[win].any():
        return None, None, None
    length = np.maximum(e - s, 1)
    inside = np.clip((np.minimum(e, now_s) - np.maximum(s, start_s)) / length, 0.0, 1.0)
    presc = rows["prescribed_mcg"].to_numpy(dtype=float)
    got = rows["rotor_mcg"].to_numpy(dtype=float).copy()
    spans = no_drug_spans(a.findings, now_s)
    exact = np.zeros(len(rows), dtype=bool)
    for x, y, lies in spans:
        part = np.clip((np.minimum(e, y) - np.maximum(s, x)) / length, 0.0, 1.0)
        if lies:
            got *= 1.0 - part
        else:  # the row's deficit lies inside the span: count the share of it in the window
            lo, hi = np.maximum(s, x), np.minimum(e, y)
            win = np.clip(np.minimum(hi, now_s) - np.maximum(lo, start_s), 0, None)
            inside = np.where(part > 0, np.clip(win / np.maximum(hi - lo, 1), 0.0, 1.0), inside)
        exact |= part > 0
    for f in a.findings:  # rows a finding explains (and their neighbours) count exactly
        if f.direction in ("withdrawal", "overdose", "both") and f.start_s is not None:
            hit = np.flatnonzero((e > f.start_s) & (s < (f.end_s if f.end_s is not None else now_s)))
            if len(hit):
                exact[max(hit[0] - 1, 0): hit[-1] + 2] = True
    # a row's rotor count is within a stroke or two of what was commanded in normal running
    # (docs/log-format.md 12.2): smaller differences are rounding; the labeled flow accuracy
    # is about true flow, which no row shows, so it is no excuse for a row's deficit
    stroke = rules.number("delivery", "min_excess_ml") * rows["concentration_mcg_ml"].to_numpy(dtype=float)
    d = (got - presc) * inside
    # rows a finding explains count row by row; the rest count by their net sum, which in
    # normal running is within a stroke of the program (rows carry the part-stroke over)
    net = float(d[~exact].sum())
    missed = float(np.clip(-d[exact], 0, None).sum())
    excess = float(np.clip(d[exact], 0, None).sum())
    if abs(net) > float(np.median(stroke)):
        missed += max(-net, 0.0)
        excess += max(net, 0.0)
    in_win = inside > 0
    covered = int(e[in_win].max()) if in_win.any() else None
    last = int(e.max())
    # beyond the rows: the program's dose, wherever a finding says nothing was delivered
    for u, v in merge_spans([(max(x, last, start_s), min(y, now_s)) for x, y, _ in spans]):
        if v > u and a.prescribed_mcg is not None:
            missed += float(a.prescribed_mcg.integral(u, v))
    return missed, excess, covered


def _coverage_reasons(
    log: InterrogationLog, a: Assessment, proc: Procedure, now_s: int, rules: Rules, clock: Clock
) -> list[str]:
    """Why the software cannot reassure, if it cannot."""
    out = []
    wait_h = float(
        rules.get("procedures", "check_after_mri_hours")
        if proc.kind == "mri"
        else rules.get("check", "check_after_diathermy_hours")
    )
    far_h = float(rules.get("check", "max_hours_after_procedure"))
    if now_s < proc.end_s:
        out.append(
            f"the pump was interrogated ({clock.time(now_s)}) before the {proc.kind.upper()} ended "
            f"({clock.time(proc.end_s)}): interrogate again after it"
        )
    elif now_s - proc.end_s > far_h * HOUR:
        out.append(
            f"the pump was interrogated {(now_s - proc.end_s) / HOUR:.0f} h after the "
            f"{proc.kind.upper()} ended (more than {far_h:g} h): is this the right log, or the "
            "right date?"
        )
    elif now_s - proc.end_s < wait_h * HOUR:
        out.append(
            f"the pump was interrogated {(now_s - proc.end_s) / 60:.0f} min after the "
            f"{proc.kind.upper()} ended; the guideline asks for {wait_h:g} h (section 2): "
            "a late stall or recovery may not show yet"
        )
    tl, first = a.reconstruction, _first_row_start(a)
    lookback_h = float(rules.get("check", "lookback_h"))
    lo = proc.start_s - lookback_h * HOUR  # the check window's start
    if tl.empty or first is None or first > proc.start_s + 60:
        out.append(f"the log's history does not reach back to the start of the {proc.kind.upper()}")
    elif first > lo + 60:
        out.append(f"the log's history does not reach back to {lookback_h:g} h before the "
                   f"{proc.kind.upper()} started: a stall then cannot be ruled out")
    win = (to_seconds(tl["end"]) > lo) if not tl.empty else np.array([], dtype=bool)
    if not tl.empty and tl["history_missing"].to_numpy(dtype=bool)[win].any():
        out.append("part of the history in the procedure window is missing or damaged")
    if not tl.empty and tl["time_uncertain"].to_numpy(dtype=bool)[win].any():
        out.append("the pump clock cannot be trusted in the procedure window")
    if not log.header_ok:
        out.append("the file header is damaged: the interrogation time cannot be trusted")
    if not log.status_ok:
        out.append("the status snapshot is damaged: the current program, reservoir and alarms are unknown")
    drift_min = abs(log.header.clock_drift_s) / 60
    if drift_min > float(rules.get("check", "max_clock_drift_min")):
        out.append(
            f"the pump clock is {drift_min:.0f} min off UTC: event times may be misplaced; set the clock"
        )
    return out


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


def _summary(
    a: Assessment,
    proc: Procedure,
    now_s: int,
    daily: float | None,
    missed: float | None,
    excess: float | None,
    clock: Clock,
    covered: int | None,
    stalled_now: bool,
    status_says: list[str],
    lo: int,
    complete: bool,
) -> list[str]:
    """Plain clinical sentences: stall, recovery, stop, drug missed or in excess.  The drug
    figures are the window's (``missed``/``excess``), the same ones the JSON gives; the stalls
    told are those of the window from ``lo``, the one ``CheckResult.stall_s`` sums, and
    "no stall" is said only when that window's history is ``complete``."""
    name = "the MRI" if proc.kind == "mri" else "surgery with diathermy"
    lines = []
    stalls = [f for f in a.findings if f.kind == "motor_stall" and _overlaps(f, lo, now_s)]
    for f in stalls:
        started = clock.time(f.start_s) if f.start_s is not None else "an unknown time"
        if f.ongoing or f.end_s is None:
            lines.append(
                f"The pump's motor stalled at {started} and had NOT recovered when the pump was "
                f"interrogated at {clock.time(now_s)} ({_duration(now_s - (f.start_s or now_s))} "
                "without delivery). No drug is being delivered now."
            )
        else:
            after = f.end_s - proc.end_s
            if after > 0:
                when = f"{_duration(after)} after {name} ended"
            elif f.end_s < proc.start_s:
                when = f"before {name} began"
            else:
                when = f"during {name}"
            line = (f"The pump's motor stalled at {started} and recovered at {clock.time(f.end_s)}, "
                    f"{when} (stalled {_duration(f.end_s - (f.start_s or f.end_s))}).")
            if f.details.restarted_by_interrogation:
                line += (" Delivery restarted only at this interrogation: confirm with the "
                         "programmer that the motor runs, and interrogate again.")
            lines.append(line)
    stops = [f for f in a.findings if f.kind in ("pump_stopped", "empty_reservoir", "battery_eos")
             and _overlaps(f, lo, now_s)]
    for f in stops:
        what = {"pump_stopped": "The pump was stopped", "empty_reservoir": "The reservoir was empty",
                "battery_eos": "The battery reached end of service"}[f.kind]
        since = f" from {clock.time(f.start_s)}" if f.start_s is not None else ""
        state = ("and still is at the interrogation: no drug is being delivered now"
                 if f.ongoing or f.end_s is None else f"until {clock.time(f.end_s)}")
        lines.append(f"{what}{since} {state}.")
    shown = " ".join(lines)
    for x in status_says:
        if "STALLED" in x and "NOT recovered" in shown:
            continue
        lines.append(f"The status snapshot: {x}.")
    if not stalls and not stalled_now:
        if not complete:
            lines.append(
                f"No motor stall was found during or after {name}, but the history of the window "
                "is incomplete: a stall cannot be ruled out."
            )
        else:
            lines.append(f"No motor stall was found during or after {name} (records, delivery "
                         "history and status).")
    if any(f.kind == "stall_recovery_unlogged" for f in a.findings):
        lines.append(
            "The rotor and the pump's stall records disagree about recovery: interrogate the "
            "pump again to confirm it is delivering."
        )
    for f in a.findings:
        if f.kind == "alarm_active":
            lines.append(f.explanation)
    over = [f for f in a.findings if f.kind == "over_delivery" and _overlaps(f, lo, now_s)]
    for f in over:
        lines.append(
            f"The pump delivered more than programmed from {clock.time(f.start_s)}"
            + (f" to {clock.time(f.end_s)}" if f.end_s else "")
            + "."
        )
    pct = lambda mcg: f" ({100 * mcg / daily:.0f}% of the {daily:.0f} mcg daily dose)" if daily else ""  # noqa: E731
    until = (
        "to the interrogation"
        if stalled_now or covered is None
        else f"to {clock.time(covered)} (the last delivery record)"
    )
    if missed is None or excess is None:
        lines.append(
            "How much drug was missed cannot be worked out: the history of the window is "
            "incomplete or does not reach back to its start."
        )
        return lines
    tiny = min(1.0, 0.005 * daily) if daily else 1.0  # what the rows cannot tell from rounding
    for mcg, what in ((missed, "was not delivered"), (excess, "more than programmed was delivered")):
        if mcg >= tiny:
            amount = f"about {mcg:.0f} mcg" if mcg >= 1 else f"about {mcg:.1f} mcg"
            lines.append(f"From the start of {name} {until}, {amount} {what}{pct(mcg)}.")
    explained = any(f.direction in ("withdrawal", "overdose", "both") and _overlaps(f, proc.start_s, now_s)
                    for f in a.findings)
    if missed < tiny and excess < tiny and not explained and not stalled_now:
        lines.append(f"From the start of {name} {until} the pump delivered as programmed (its "
                     "rotor count matches the program).")
    return lines


def _evidence(log: InterrogationLog, start_s: int, now_s: int, rules: Rules) -> list[Evidence]:
    """Log events from shortly before the procedure to the interrogation, in time order."""
    ev = log.events
    if ev.empty:
        return []
    lo = start_s - int(float(rules.get("check", "lookback_h")) * HOUR)
    t = to_seconds(ev["time_utc"])
    out = []
    for i in np.flatnonzero((t >= lo) & (t <= now_s + 60)):
        row = ev.iloc[int(i)]
        template = _EVENT_TEXT.get(str(row["event"]), str(row["event"]).replace("_", " "))
        try:
            text = template.format(**{k: row[k] for k in row.index if "{" + k in template})
        except (KeyError, ValueError, TypeError):
            text = str(row["event"]).replace("_", " ")
        if bool(row["time_uncertain"]):
            text += " (time uncertain)"
        out.append(Evidence(int(t[i]), text, int(row["offset"])))
    return out
