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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from parsers import InterrogationLog

from .assessment import Assessment, analyse
from .context import Procedure
from .findings import Finding
from .rules import Rules, get_rules
from .timeutil import HOUR, display_zone, to_seconds

VERDICTS = ("OK", "REVIEW", "URGENT")
NOT_DELIVERING = ("stall_ongoing", "pump_stopped", "battery_eos", "empty_reservoir")
SCHEMA = "itb-check/1"
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
    """The verdict and everything behind it.  Times are Unix seconds (UTC)."""

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
    weight_kg: float | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

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
            "risks": {
                k: {
                    "level": r.level,
                    "reasons": list(r.reasons),
                    "actions": [{"section": x.section, "text": x.text} for x in r.actions],
                }
                for k, r in a.risks.items()
            },
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
            "evidence": [{"time": iso(e.time_s), "text": e.text, "offset": e.offset} for e in self.evidence],
            "cannot_show": list(a.limitations),
            "weight_kg": self.weight_kg,
            "timezone": str(zone),
            "disclaimer": a.disclaimer,
        }


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(float(x), nd)


def check(
    log: InterrogationLog,
    kind: str,
    end: dt.datetime,
    start: dt.datetime | None = None,
    weight_kg: float | None = None,
    rules: Rules | None = None,
    fmt_time: Any = None,
    zone: dt.tzinfo | None = None,
) -> CheckResult:
    """Run the two-hour check for a procedure of ``kind`` (``mri`` or ``diathermy``) that
    ended at ``end`` (aware datetime).  ``fmt_time(seconds) -> str`` formats times in the
    user's zone for the summary (UTC, labelled, by default); ``zone`` is that zone, used for
    the analysis' explanations too."""
    rules = get_rules(rules)
    kind = kind.lower()
    if kind not in ("mri", "diathermy"):
        raise ValueError(f"procedure must be mri or diathermy, not {kind!r}")
    if end.tzinfo is None or (start is not None and start.tzinfo is None):
        raise ValueError("procedure times must carry a time zone")
    end_s = int(end.timestamp())
    if start is None:
        start_s = end_s - int(float(rules.get("check", "default_window_h")[kind]) * HOUR)
        assumed_start = True
    else:
        start_s = int(start.timestamp())
        assumed_start = False
    if start_s > end_s:
        raise ValueError("the procedure starts after it ends")
    proc = Procedure(kind, start_s, end_s)
    fmt_time = fmt_time or (lambda s: pd.Timestamp(s, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M UTC"))
    with display_zone(zone):
        a = analyse(log, procedures=[proc], weight_kg=weight_kg, rules=rules)
    now_s = int(a.details.get("now_s") or log.header.interrogated_at.timestamp())
    tl = a.reconstruction
    daily = log.status.daily_dose_mcg_day if log.status_ok and log.status.mode != "stopped" else None
    daily = daily or _daily_dose(tl)
    stalled_now = log.status.motor_stalled or any(
        f.kind in NOT_DELIVERING and (f.ongoing or f.end_s is None) for f in a.findings
    )
    missed, excess, covered = _window_drug(tl, start_s, now_s, stalled_now)
    reasons_urgent, reasons_review = [], []
    for k, r in a.risks.items():
        if r.level == "high":
            reasons_urgent.append(f"{k} risk is high")
        elif r.level in ("moderate", "low"):
            reasons_review.append(f"{k} risk is {r.level}")
        elif r.level == "cannot_rule_out":
            reasons_review.append(f"{k} risk cannot be ruled out")
    for f in a.findings:
        if f.kind in NOT_DELIVERING and (f.ongoing or f.end_s is None):
            reasons_urgent.append(_NOT_DELIVERING_TEXT[f.kind])
    reasons_review += _coverage_reasons(log, a, proc, now_s, rules, fmt_time)
    notes = (
        [f"the {kind.upper()} start was not given; assumed {fmt_time(start_s)} for the drug sums"]
        if assumed_start
        else []
    )
    in_window = [f for f in a.findings if _overlaps(f, start_s - HOUR, now_s)]
    for f in in_window:  # a stall that recovered is judged by the risk it left, above
        recovered_stall = f.kind == "motor_stall" and not f.ongoing and f.end_s is not None
        if f.severity != "info" and f.kind not in NOT_DELIVERING and not recovered_stall:
            reasons_review.append(f"{f.kind.replace('_', ' ')} in or after the {kind.upper()} window")
    if any(f.kind == "stall_recovery_unlogged" for f in a.findings):
        reasons_review.append("the stall recovery is not logged as the rotor shows: interrogate again")
    verdict = "URGENT" if reasons_urgent else "REVIEW" if reasons_review else "OK"
    summary = _summary(a, proc, now_s, daily, missed, excess, fmt_time, covered, stalled_now)
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
        weight_kg=weight_kg,
        notes=notes,
        details={"assumed_start": assumed_start, "records_until_s": covered},
    )


_NOT_DELIVERING_TEXT = {
    "stall_ongoing": "the motor is still stalled: no drug is being delivered",
    "pump_stopped": "the pump is stopped: no drug is being delivered",
    "battery_eos": "the battery is at end of service: the pump has stopped",
    "empty_reservoir": "the reservoir is empty: no drug is being delivered",
}


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
    tl: pd.DataFrame, start_s: int, now_s: int, stalled_now: bool
) -> tuple[float | None, float | None, int | None]:
    """Drug missed and in excess (rotor-confirmed against prescribed, mcg) from the start of
    the procedure to the interrogation, and the time up to which delivery records exist.
    The interval in progress at interrogation has no record yet: while the pump is stalled
    it counts as missed, otherwise it is left out.  None where the window's history is
    missing."""
    if tl.empty:
        return None, None, None
    a = to_seconds(tl.index)
    b = to_seconds(tl["end"])
    rotor = tl["rotor_mcg_h"].to_numpy(dtype=float)
    prescribed = tl["prescribed_mcg_h"].to_numpy(dtype=float)
    missing = tl["history_missing"].to_numpy(dtype=bool)
    sel = (b > start_s) & (a < now_s)
    if not sel.any() or missing[sel].any():
        return None, None, None
    # hours of each bin inside the window; the bin in progress at interrogation already holds
    # only the drug up to then (its rates are averaged over the whole bin), so it counts whole
    hours = (np.where(b > now_s, b, np.minimum(b, now_s)) - np.maximum(a, start_s)) / HOUR
    recorded = sel & ~np.isnan(rotor)
    covered = int(b[recorded].max()) if recorded.any() else None
    mcg = (rotor - prescribed)[recorded] * hours[recorded]
    missed = float(np.clip(-mcg, 0, None).sum())
    excess = float(np.clip(mcg, 0, None).sum())
    if stalled_now:
        tail = sel & np.isnan(rotor)
        missed += float(np.nansum(prescribed[tail] * hours[tail]))
    return missed, excess, covered


def _coverage_reasons(
    log: InterrogationLog, a: Assessment, proc: Procedure, now_s: int, rules: Rules, fmt_time: Any
) -> list[str]:
    """Why the software cannot reassure, if it cannot."""
    out = []
    wait_h = float(
        rules.get("procedures", "check_after_mri_hours")
        if proc.kind == "mri"
        else rules.get("check", "check_after_diathermy_hours")
    )
    if now_s < proc.end_s:
        out.append(
            f"the pump was interrogated ({fmt_time(now_s)}) before the {proc.kind.upper()} ended "
            f"({fmt_time(proc.end_s)}): interrogate again after it"
        )
    elif now_s - proc.end_s < wait_h * HOUR:
        out.append(
            f"the pump was interrogated {(now_s - proc.end_s) / 60:.0f} min after the "
            f"{proc.kind.upper()} ended; the guideline asks for {wait_h:g} h (section 2): "
            "a late stall or recovery may not show yet"
        )
    tl = a.reconstruction
    if tl.empty or to_seconds(tl.index)[0] > proc.start_s:
        out.append(f"the log's history does not reach back to the start of the {proc.kind.upper()}")
    win = (to_seconds(tl["end"]) > proc.start_s - HOUR) if not tl.empty else np.array([], dtype=bool)
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
    fmt_time: Any,
    covered: int | None,
    stalled_now: bool,
) -> list[str]:
    """Plain clinical sentences: stall, recovery, drug missed or in excess."""
    name = "the MRI" if proc.kind == "mri" else "surgery with diathermy"
    lines = []
    stalls = [f for f in a.findings if f.kind == "motor_stall" and _overlaps(f, proc.start_s - HOUR, now_s)]
    for f in stalls:
        started = fmt_time(f.start_s) if f.start_s is not None else "an unknown time"
        if f.ongoing or f.end_s is None:
            lines.append(
                f"The pump's motor stalled at {started} and had NOT recovered when the pump was "
                f"interrogated at {fmt_time(now_s)} ({_duration(now_s - (f.start_s or now_s))} "
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
            lines.append(
                f"The pump's motor stalled at {started} and recovered at {fmt_time(f.end_s)}, "
                f"{when} (stalled {_duration(f.end_s - (f.start_s or f.end_s))})."
            )
    if not stalls and missed is None:
        lines.append(
            f"No motor stall was logged during or after {name}, but the history of the window is "
            "incomplete: a stall cannot be ruled out."
        )
    elif not stalls:
        lines.append(f"No motor stall was logged during or after {name}.")
    if any(f.kind == "stall_recovery_unlogged" for f in a.findings):
        lines.append(
            "The rotor and the pump's stall records disagree about recovery: interrogate the "
            "pump again to confirm it is delivering."
        )
    over = [f for f in a.findings if f.kind == "over_delivery" and _overlaps(f, proc.start_s - HOUR, now_s)]
    for f in over:
        lines.append(
            f"The rotor delivered more than programmed from {fmt_time(f.start_s)}"
            + (f" to {fmt_time(f.end_s)}" if f.end_s else "")
            + "."
        )
    pct = lambda mcg: f" ({100 * mcg / daily:.0f}% of the {daily:.0f} mcg daily dose)" if daily else ""  # noqa: E731
    until = (
        "to the interrogation"
        if stalled_now or covered is None
        else f"to {fmt_time(covered)} (the last delivery record)"
    )
    if missed is None:
        lines.append(
            "How much drug was missed cannot be worked out: the history of the window is incomplete."
        )
    else:
        if missed >= 1:
            lines.append(
                f"From the start of {name} {until}, about {missed:.0f} mcg was not delivered{pct(missed)}."
            )
        if excess >= 1:
            lines.append(
                f"From the start of {name} {until}, about {excess:.0f} mcg more than "
                f"prescribed was delivered{pct(excess)}."
            )
        if missed < 1 and excess < 1:
            lines.append(f"Delivery from the start of {name} {until} matches the prescription.")
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
