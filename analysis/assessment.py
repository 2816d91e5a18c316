"""``analyse``: one call from an interrogation log to findings, risks, reconstructed delivery,
the CSF estimate and the limitations of what telemetry can show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinical.rules import Rules, get_rules
from parsers import InterrogationLog, read_log

from .context import Context, Procedure, coerce_procedures
from .delivery_state import StatusNow, delivery_spans
from .detectors import ALL, alarms
from .findings import Finding, findings_frame
from .piecewise import Piecewise
from .pk import PkParameters, csf_estimate
from .reconstruct import Reconstruction, build, timeline
from .risk import Risk, assess
from .timeutil import HOUR, Clock, stamp, to_seconds

DISCLAIMER = ("This software supports, and does not replace, the manufacturer's clinician "
              "programmer and clinical judgement.")

TELEMETRY_BLIND_SPOTS: tuple[str, ...] = (
    "Catheter kink or occlusion: the rotor turns and the log looks normal, but the drug does "
    "not arrive; when it frees, the held drug can arrive as a surge (overdose).",
    "Catheter leak, fracture, migration or disconnection: the log looks normal while the child "
    "receives less or none.",
    "Pocket fill at a refill (drug injected around the pump, not into it): the log shows a "
    "normal refill; overdose from the pocket then withdrawal from an unfilled reservoir.",
    "Pump over-infusion since the last refill: the reservoir volume is the pump's estimate; "
    "only the residual measured at the next refill shows it.",
)


@dataclass
class Assessment:
    """Everything ``analyse`` found about one interrogation.  ``now_s``: the interrogation
    (Unix seconds) the analysis measured against; ``window_s``: the analysed history (Unix
    seconds).  ``details`` repeats them as ``now_s``/``window_s`` (with ``problems``) for
    readers not yet moved to the fields."""

    findings: list[Finding]
    risks: dict[str, Risk]
    reconstruction: pd.DataFrame
    csf: pd.DataFrame
    limitations: list[str]
    interrogated_at: pd.Timestamp | None
    window: tuple[pd.Timestamp | None, pd.Timestamp | None]
    now_s: int
    window_s: tuple[int, int]
    procedures: tuple[Procedure, ...] = ()
    weight_kg: float | None = None
    rules_source: str = "default"
    disclaimer: str = DISCLAIMER
    rules: Rules | None = field(default=None, repr=False)  # the Rules the analysis used, for its reports
    rows: pd.DataFrame | None = field(default=None, repr=False)  # delivery rows, enriched
    status_now: StatusNow | None = field(default=None, repr=False)  # the status snapshot, read as now
    prescribed_mcg: Piecewise | None = field(default=None, repr=False)  # drug prescribed over time
    delivery_state: pd.DataFrame | None = None  # delivery_state.delivery_spans: state over time, by source
    details: dict[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock, repr=False)  # the zone its texts give times in

    @property
    def withdrawal(self) -> Risk:
        """The withdrawal risk."""
        return self.risks["withdrawal"]

    @property
    def overdose(self) -> Risk:
        """The overdose risk."""
        return self.risks["overdose"]

    def findings_frame(self) -> pd.DataFrame:
        """The findings as a table (the disclaimer in ``attrs``)."""
        df = findings_frame(self.findings)
        df.attrs["disclaimer"] = self.disclaimer
        return df

    def kinds(self) -> list[str]:
        """Finding kinds in report order."""
        return [f.kind for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no tables)."""
        return {
            "interrogated_at_utc": None if self.interrogated_at is None
            else self.interrogated_at.isoformat(),
            "findings": [f.to_dict() for f in self.findings],
            "risks": {k: v.to_dict() for k, v in self.risks.items()},
            "limitations": list(self.limitations),
            "disclaimer": self.disclaimer,
        }

    def summary(self) -> str:
        """A plain-language report for a clinician."""
        time = self.clock.time
        lines = [f"ITB pump interrogation of {time(self.now_s)}",
                 f"History analysed: {time(self.window_s[0])} to {time(self.window_s[1])}", ""]
        for k in ("withdrawal", "overdose"):
            r = self.risks[k]
            lines.append(f"{k.upper()} RISK: {r.level.replace('_', ' ')}")
            lines += [f"  - {x}" for x in r.reasons]
        lines.append("")
        lines.append(f"FINDINGS ({len(self.findings)}):" if self.findings else "FINDINGS: none")
        for f in self.findings:
            lines.append(f"  * {f.kind} [{f.severity}]: {f.explanation}")
        for k in ("withdrawal", "overdose"):
            r = self.risks[k]
            if r.actions:
                lines.append("")
                lines.append(f"{k.upper()} - WHAT THE GUIDELINE SAYS:")
                lines += [f"  {a}" for a in r.actions]
        lines.append("")
        lines.append("LIMITATIONS:")
        lines += [f"  - {x}" for x in self.limitations]
        lines.append("")
        lines.append(self.disclaimer)
        return "\n".join(lines)


def _incomplete(log: InterrogationLog, rec: Reconstruction, findings: list[Finding]) -> list[str]:
    out = []
    if any(f.kind == "history_gap" for f in findings):
        out.append("part of the history is missing, damaged or has an untrusted clock")
    if not log.status_ok:
        out.append("the status snapshot is damaged (reservoir, program, alarms unknown)")
    if not log.header_ok:
        out.append("the file header is damaged (interrogation time may be wrong)")
    if rec.rows.empty:
        out.append("the log holds no delivery history")
    return out


#: Findings during which no drug reaches the patient, whatever the rotor shows.
NO_DRUG_KINDS: tuple[str, ...] = ("empty_reservoir", "stall_ongoing", "pump_stopped", "battery_eos",
                                  "motor_stall")


def no_drug_spans(findings: list[Finding], now_s: int) -> list[tuple[int, int, bool]]:
    """(start, end, rotor_misleads) spans in which no drug reached the patient: stalls and
    stops (the rotor shows them where rows exist), and an empty reservoir or drug that never
    reached the reservoir (a pocket fill), where the rotor turns but moves no drug."""
    out = []
    for f in findings:
        if f.start_s is None:
            continue
        lies = f.kind == "empty_reservoir" or (f.kind == "refill_over_infusion"
                                               and bool(f.details.drug_missing))
        if f.kind in NO_DRUG_KINDS or lies:
            out.append((int(f.start_s), int(f.end_s if f.end_s is not None else now_s), lies))
    return out


def _delivered(tl: pd.DataFrame, findings: list[Finding], now_s: int) -> np.ndarray:
    """Best estimate of drug reaching the CSF per bin (mcg/h): rotor-confirmed, zero while no
    drug reaches the patient (``no_drug_spans``), NaN where unknown."""
    d = tl["rotor_mcg_h"].to_numpy(dtype=float).copy()
    d[tl["history_missing"].to_numpy(dtype=bool)] = np.nan
    a = to_seconds(tl.index)
    b = to_seconds(tl["end"])
    for s, e, lies in no_drug_spans(findings, now_s):
        sel = (a < e) & (b > s)
        if lies:  # a bin only partly inside keeps the rotor's share outside the span
            part = np.clip((np.minimum(b, e) - np.maximum(a, s)) / np.maximum(b - a, 1), 0, 1)
            d[sel] = np.where(np.isnan(d[sel]), 0.0, d[sel] * (1 - part[sel]))
        else:  # the rows already show the stall or stop; beyond them, nothing was delivered
            d[sel & np.isnan(d)] = 0.0
    return d


def analyse(log: InterrogationLog | str | Path,
            procedures: Iterable[Procedure | Mapping[str, Any]] | None = (),
            weight_kg: float | None = None,
            rules: Rules | Mapping[str, Any] | str | Path | None = None,
            resolution: str = "1h", *, reconstruction: Reconstruction | None = None,
            clock: Clock | None = None) -> Assessment:
    """Analyse one interrogation: run every detector, grade withdrawal and overdose risk.

    ``log`` is an :class:`InterrogationLog` (or a path, read with ``read_log``);
    ``procedures`` are MRI/diathermy windows (``Procedure`` or dicts with ``kind``,
    ``start_utc``, ``end_utc``); ``weight_kg`` picks the oral baclofen regimen (a weight outside
    ``[patient] weight_kg_range`` raises ``clinical.rules.InputError``); ``rules``
    overrides clinical numbers (a TOML path, a dict, or ``Rules``); ``resolution`` is the
    timeline bin width.  ``reconstruction``: one already built from this log with these
    rules (``reconstruct.build``), so a caller that has one (the research tables) does not
    pay for it twice.  ``clock`` writes the times in the explanations, risk reasons and
    limitations (UTC, labelled, by default); the assessment keeps it as ``clock``.  Pure:
    nothing is written, nothing plotted.
    """
    if not isinstance(log, InterrogationLog):
        log = read_log(log)
    r = get_rules(rules)
    if weight_kg is not None:
        weight_kg = r.check_weight(weight_kg)  # [patient] weight_kg_range: a slip never reaches a dose
    procs = coerce_procedures(procedures)
    rec = reconstruction if reconstruction is not None else build(log, r)
    tl = timeline(rec, resolution)
    rec.timeline = tl
    clock = clock if clock is not None else Clock()
    ctx = Context(log, rec, r, procs, clock)
    findings: list[Finding] = []
    for detector in ALL:
        findings.extend(detector(ctx))
    findings.extend(alarms.detect(ctx, findings))  # reads the others: what they do not explain
    findings.sort(key=lambda f: (f.start_s if f.start_s is not None else -1, f.kind))
    csf = csf_estimate(tl, _delivered(tl, findings, ctx.now_s), r)
    incomplete = _incomplete(log, rec, findings)
    risks = assess(findings, ctx, csf, weight_kg, incomplete)
    pk = PkParameters.from_rules(r)
    limits = [f"Telemetry cannot show: {x}" for x in TELEMETRY_BLIND_SPOTS]
    limits += [f"Incomplete: {x}." for x in incomplete]
    if len(log.pages) and int(log.pages["seq"].min()) > 0:
        limits.append(f"The log's ring has wrapped: history before {clock.time(rec.window[0])} was "
                      "overwritten and is not analysed.")
    if any(s.program.source == "inferred" for s in rec.program_spans):
        limits.append("No program record covers the start of the history: the prescription "
                      "there is inferred from the commanded delivery.")
    if not rec.conc_from_status and (rec.first_refill_s is None
                                     or rec.first_refill_s > rec.window[0]):
        limits.append("Before the first refill in the log, the drug in the reservoir is assumed "
                      "to have the concentration the program entered.")
    check_h = r.number("procedures", "check_after_mri_hours")
    for p in procs:
        since = (ctx.now_s - p.end_s) / HOUR
        if p.kind == "mri" and 0 <= since < check_h:
            limits.append(f"This interrogation is {since:.1f} h after the MRI ended; the guideline "
                          f"(section 2) asks for the logs to be read {check_h:g} h after: read "
                          "them again then.")
        elif p.end_s > ctx.now_s:
            limits.append(f"The {p.kind} of {clock.time(p.start_s)} ends after this interrogation: "
                          "interrogate again after it.")
    hl = r.get("pharmacokinetics_model", "csf_half_life_range_h")
    cl = r.get("pharmacokinetics_model", "csf_clearance_range_ml_h")
    limits.append(f"CSF estimate: one-compartment model, half-life {pk.half_life_h:g} h and "
                  f"clearance {pk.clearance_ml_h:g} mL/h (adjustable assumptions; published "
                  f"range {hl[0]:g}-{hl[-1]:g} h and {cl[0]:g}-{cl[-1]:g} mL/h); it uses "
                  "rotor-confirmed delivery, so it shares the blind spots above.")
    for table in (tl, csf):
        table.attrs["disclaimer"] = DISCLAIMER
    return Assessment(
        findings=findings, risks=risks, reconstruction=tl, csf=csf, limitations=limits,
        interrogated_at=stamp(ctx.now_s), window=(stamp(rec.window[0]), stamp(rec.window[1])),
        now_s=ctx.now_s, window_s=rec.window,
        procedures=procs, weight_kg=weight_kg, rules_source=r.source, rules=r,
        rows=rec.rows, status_now=ctx.status, prescribed_mcg=rec.prescribed_mcg,
        delivery_state=delivery_spans(findings, rec.window, ctx.status,
                                      [(s.start_s, s.end_s) for s in (*rec.missing, *rec.uncertain)]),
        details={"now_s": ctx.now_s, "window_s": rec.window, "problems": [str(p) for p in log.problems]},
        clock=clock,
    )
