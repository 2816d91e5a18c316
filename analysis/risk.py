"""Withdrawal and overdose risk from the findings and the CSF estimate, with the guideline's
actions for each (CHW ITB practice guideline, sections 5.1.3-5.1.4 and 5.2.3-5.2.4).

Levels, lowest first: none, cannot_rule_out, low, moderate, high.  Each finding grades one
or both risks by what it is, whether it is ongoing or recent (``[risk] recent_days``), and
the drug missed or in excess per day as a share of the daily dose.  Missing or damaged
history lifts both risks to at least ``cannot_rule_out``: never ``none``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from clinical.rules import Rules

from .context import Context
from .findings import Finding
from .timeutil import DAY, HOUR, to_seconds

LEVELS: tuple[str, ...] = ("none", "cannot_rule_out", "low", "moderate", "high")
RiskKind = Literal["withdrawal", "overdose"]


def level_max(levels: Iterable[str]) -> str:
    """The highest of ``levels`` (``none`` if empty)."""
    return max(levels, key=LEVELS.index, default="none")


@dataclass(frozen=True)
class Action:
    """One guideline action with its section number, in the guideline's words, and the
    guideline's own condition for it (empty when it applies as soon as the risk is shown)."""

    section: str
    wording: str
    condition: str = ""
    checklist: tuple[str, ...] = ()  # what to collect, one tickable item each (5.1.3.4, 5.2.3.5, 5.2.3.7)

    @property
    def text(self) -> str:
        """The action as printed: its condition first, then the guideline's words."""
        return f"{self.condition}: {self.wording}" if self.condition else self.wording

    def __str__(self) -> str:
        return f"[{self.section}] {self.text}"

    def to_dict(self) -> dict:
        """Plain dict (docs/check-json.md, ``risks.*.actions``)."""
        return {"section": self.section, "text": self.text, "condition": self.condition,
                "checklist": list(self.checklist)}


@dataclass(frozen=True)
class ChecklistItem:
    """One thing to collect or do before calling Kids Rehab, with its guideline section and
    the condition of the action it belongs to (empty: always)."""

    section: str
    item: str
    condition: str = ""

    def to_dict(self) -> dict:
        """Plain dict (docs/check-json.md, ``checklist``)."""
        return {"section": self.section, "item": self.item, "condition": self.condition}


def checklist(risks: dict[str, Risk]) -> list[ChecklistItem]:
    """Every checklist item of the actions shown (risks above none), withdrawal first, each
    item once (the date of the last refill is asked for by both 5.1.3.4 and 5.2.3.7)."""
    out: list[ChecklistItem] = []
    seen: set[str] = set()
    for kind in ("withdrawal", "overdose"):
        r = risks.get(kind)
        if r is None or r.level == "none":
            continue
        for a in r.actions:
            for item in a.checklist:
                if item not in seen:
                    seen.add(item)
                    out.append(ChecklistItem(a.section, item, a.condition))
    return out


@dataclass(frozen=True)
class Risk:
    """A risk level with the reasons behind it and what the guideline says to do."""

    kind: RiskKind
    level: str
    reasons: tuple[str, ...]
    actions: tuple[Action, ...]
    finding_kinds: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """Plain dict."""
        return {"kind": self.kind, "level": self.level, "reasons": list(self.reasons),
                "actions": [a.to_dict() for a in self.actions],
                "finding_kinds": list(self.finding_kinds)}


def _share_level(share: float | None, recent: bool, r: Rules, floor: str = "none") -> str:
    """Level for a share of the daily dose (per day): high/moderate only if recent; below
    ``low_share`` the ``floor`` (an unknown share counts as low)."""
    if share is None:
        return level_max([floor, "low"])
    if recent and share >= r.number("risk", "high_share"):
        lvl = "high"
    elif recent and share >= r.number("risk", "moderate_share"):
        lvl = "moderate"
    elif share >= r.number("risk", "low_share"):
        lvl = "low"
    else:
        lvl = "none"
    return level_max([lvl, floor])


def _per_day(f: Finding, mcg: float | None, now: int) -> float | None:
    """Drug as a share of the daily dose per day of the finding (acute if under a day)."""
    if mcg is None or not f.daily_dose_mcg:
        return None
    days = max(1.0, (f.duration_h(now) or 0.0) / 24.0)
    return mcg / f.daily_dose_mcg / days


def grade(f: Finding, ctx: Context) -> tuple[str, str]:
    """(withdrawal level, overdose level) this finding supports."""
    r, now = ctx.rules, ctx.now_s
    recent = f.ongoing or ctx.recent(f.end_s)
    miss = _per_day(f, f.missed_mcg, now)
    exc = _per_day(f, f.excess_mcg, now)
    k = f.kind
    last_refill = max((x.time_s for x in ctx.ep.refills), default=None)
    if k == "history_gap":
        return "cannot_rule_out", "cannot_rule_out"
    if k in ("stall_ongoing", "battery_eos"):
        return "high", "none"
    if k in ("motor_stall", "empty_reservoir", "pump_stopped"):
        return ("high" if f.ongoing else _share_level(miss, recent, r)), "none"
    if k == "stall_recovery_unlogged":
        if f.details.type == "record_but_rotor_stalled":
            return ("high" if f.ongoing else _share_level(miss, recent, r)), "none"
        return "low", "none"
    if k == "intermittent_stalls":
        return ("high" if f.ongoing else "moderate"), "none"
    if k == "long_stall":
        return "none", "low"
    if k == "rotor_shortfall":
        return _share_level(miss, recent, r), "none"
    if k in ("refill_under_delivery", "refill_over_infusion"):
        latest = f.end_s == last_refill  # the pump may still be doing it
        if f.details.drug_missing:  # not a rate fault: the reservoir ran dry
            return _share_level(miss, latest or recent, r, floor="low"), "none"
        w = _share_level(miss, latest or recent, r, floor="low") \
            if k == "refill_under_delivery" else "low"
        o = _share_level(exc, latest or recent, r, floor="low") \
            if k == "refill_over_infusion" else "none"
        if f.details.may_have_run_dry:
            w = level_max([w, "moderate" if recent else "low"])
        return w, o
    if k == "reservoir_low_before_refill":
        return "moderate", "none"
    if k == "refill_overdue":
        return ("moderate" if f.ongoing else "low"), "none"
    if k == "battery_eri":
        eos = f.details.projected_eos_s
        soon = eos is not None and eos - now <= r.number("risk", "eri_warning_days") * DAY
        return ("moderate" if soon else "low"), "none"
    if k in ("unexpected_bolus", "ptm_over_limit"):
        return "none", _share_level(f.excess_share, recent, r, floor="low")
    if k == "over_delivery":  # in or after a procedure: at least low (issue: diathermy heating)
        floor = "low" if f.details.procedure else "none"
        return "none", _share_level(exc, recent, r, floor=floor)
    if k == "titration_violation":
        if f.details.unit_error:
            lvl = "high" if recent else "low"
            return (lvl, "none") if f.direction == "withdrawal" else ("none", lvl)
        above_max = bool(f.details.above_max)
        o = _share_level(exc, recent, r, floor="moderate" if above_max and f.ongoing else "low")
        return "none", o
    if k == "concentration_mismatch":
        factor = f.details.factor
        if f.ongoing and factor:
            lvl = _share_level(abs(factor - 1.0), True, r, floor="low")
        else:
            lvl = _share_level(miss if f.direction == "withdrawal" else exc, recent, r, floor="low")
        return (lvl, "none") if f.direction == "withdrawal" else ("none", lvl)
    if k == "dose_decrease":  # graded by the size of the cut while it is recent
        cut = float(f.details.decrease_fraction or 0.0)
        return _share_level(cut, ctx.recent(f.start_s), r, floor="low"), "none"
    if k == "alarm_active":
        return ("low" if f.direction == "withdrawal" else "none"), "none"
    if k == "restart_full_dose":
        return "none", ("high" if ctx.recent(f.start_s) else "low")
    return "none", "none"


def _longest_run_h(mask: np.ndarray, dt_h: float) -> tuple[float, bool]:
    """Longest run of True (hours) and whether a run reaches the end."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return 0.0, False
    edges = np.diff(np.concatenate(([0], m.view(np.int8), [0])))  # +1 where a run starts, -1 after it
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) * dt_h, bool(m[-1])


def csf_levels(csf: pd.DataFrame, ctx: Context) -> tuple[str, str, list[str], list[str]]:
    """Withdrawal and overdose levels from the estimated CSF level (and the reasons)."""
    r = ctx.rules
    if csf.empty:
        return "none", "none", [], []
    start = to_seconds(csf.index)
    dt_h = float(np.median(np.diff(start)) / HOUR) if len(csf) > 1 else 1.0
    rel = csf["relative"].to_numpy(dtype=float)
    ok = csf["settled"].to_numpy(dtype=bool) & np.isfinite(rel)
    recent = start >= ctx.now_s - r.number("risk", "recent_days") * DAY
    out_w, out_o, rw, ro = "none", "none", [], []
    for name, mask in (("drop", ok & (rel < r.number("risk", "csf_drop_fraction"))),
                       ("rise", ok & (rel > r.number("risk", "csf_rise_fraction")))):
        min_h = r.number("risk", f"csf_{name}_min_hours")
        h_all, _ = _longest_run_h(mask, dt_h)
        h_recent, at_end = _longest_run_h(mask & recent, dt_h)
        if h_all < min_h:
            continue
        lvl = "high" if at_end and h_recent >= min_h else "moderate" if h_recent >= min_h else "low"
        frac = r.number("risk", "csf_drop_fraction" if name == "drop" else "csf_rise_fraction")
        text = (f"estimated CSF baclofen {'below' if name == 'drop' else 'above'} "
                f"{100 * frac:.0f}% of the prescribed level for up to {h_all:.0f} h"
                + (" (still at interrogation)" if at_end and h_recent >= min_h else
                   " in the last days" if h_recent >= min_h else " (earlier in the log)"))
        if name == "drop":
            out_w, rw = lvl, [text]
        else:
            out_o, ro = lvl, [text]
    return out_w, out_o, rw, ro


def _oral_baclofen(r: Rules, weight_kg: float | None) -> str:
    from .calculators import oral_baclofen

    return oral_baclofen(weight_kg, r).text


WITHDRAWAL_SIGNS = ("increase in spasms and muscle tone, pain, pruritus, sweating and flushing, "
                    "fever, restlessness/agitation or change in cognitive status, "
                    "hallucinations/delirium/delusions/paranoia, poor sleep (unable to settle at "
                    "night), tachycardia, BP increased or decreased")
OVERDOSE_SIGNS = ("dizziness, drowsiness/delirium and confusion (can lead to coma), hypotonia, "
                  "reduced respiratory rate (can lead to apnoea), bradycardia/tachycardia, "
                  "seizures, BP instability")
# What to collect before calling Kids Rehab, one tickable item each, in the guideline's words.
WITHDRAWAL_COLLECT = (
    "Whether the child is sweating, and whether tone is high or low",
    "What medicine the child has been given already (e.g. oral baclofen, diazepam)",
    "Date of the last refill, implantation or change of dose (most recent letter in the "
    "patient's Action Plan: Powerchart or Health-e-care)",
    "Whether the child has had a recent MRI (can cause motor stall)",
)
OVERDOSE_INVESTIGATIONS = (
    "FBC, CRP, ESR, CK, EUC, LFTs, blood cultures, glucose",
    "Consider drug levels (e.g. anticonvulsants, benzodiazepines)",
    "MSU, CXR, throat swab, NPA",
)
OVERDOSE_COLLECT = (
    "Pulse, BP, saturations, temperature, level of alertness (GCS +/- AVPU)",
    "A general assessment of tone",
    "Any other medications that have been given",
    "Date of the last refill, implantation or change of dose (most recent letter in the "
    "patient's Action Plan: Powerchart or Health-e-care)",
)
_IF_WITHDRAWAL = "If there is no obvious differential and the child has continuing symptoms, on medical order"
_IF_OVERDOSE = "If the child shows signs of overdose (5.2.2), on medical decision"


def escalation_actions(r: Rules) -> tuple[Action, ...]:
    """Escalation on the ward, in the guideline's words: the standard escalation of care
    (CERS, Key points) with the Yellow and Red Zone steps the guideline spells out (3.4.3-3.4.4)."""
    reg = r.get("contacts", "rehab_registrar")
    return (
        Action("Key points", "Standard escalation of care processes, including the Clinical "
                             "Emergency Response System (CERS), should be followed."),
        Action("3.4.3", "A Clinical Review by the Rehabilitation Registrar "
                        f"({reg}) should be initiated promptly.",
               "If the child enters the Yellow Zone Criteria on the NSW Health Standard "
               "Paediatric Observation Chart (or staff or a family member is concerned)"),
        Action("3.4.4", "Escalation to a Rapid Response Call or an arrest call should be made "
                        "immediately.",
               "If the child deteriorates into the Red Zone (or there is a serious concern by "
               "any staff or family member)"),
    )


def withdrawal_actions(r: Rules, weight_kg: float | None) -> tuple[Action, ...]:
    """Guideline 5.1.2-5.1.4 in its own words and with its own conditions; numbers from the
    rules file.  Medical treatment (5.1.4) is only for a child with continuing symptoms and
    no obvious differential, on medical order: never for a well child."""
    c = lambda k: r.get("contacts", k)  # noqa: E731
    adj = lambda k: r.get("withdrawal_adjuncts", k)  # noqa: E731
    dz, dzi = adj("diazepam_mg"), adj("diazepam_interval_h")
    return (
        Action("5.1", "Baclofen withdrawal is a medical emergency; symptoms usually evolve over "
                      "a 1-3 day period."),
        Action("5.1.2", f"Signs of withdrawal can include: {WITHDRAWAL_SIGNS}."),
        Action("5.1.3.1", f"Call the Kids Rehab CNC ({c('kids_rehab_cnc')}) or the Kids Rehab "
                          f"Fellow on call ({c('kids_rehab_fellow')}); outside work hours the Kids "
                          "Rehab physician on call via switchboard."),
        *escalation_actions(r),
        Action("5.1.3.2", "Initial management is instigated by the emergency physicians in ED; "
                          "call Kids Rehab once the child has been initially assessed.",
               "If the child has signs of withdrawal"),
        Action("5.1.3.3", "DO NOT PERFORM A LUMBAR PUNCTURE: there is a risk that the catheter "
                          "will be damaged."),
        Action("5.1.3.4", "Kids Rehab may ask for the information in the checklist (to collect "
                          "before calling).", checklist=WITHDRAWAL_COLLECT),
        Action("5.1.3.5", "Look for a differential diagnosis: swelling, redness or tenderness "
                          "over the pump site or the laminectomy scar; pain triggers; infection; "
                          "allergic reaction.", "If the child has signs of withdrawal"),
        Action("5.1.3.6", "X-ray the pump and the whole catheter to its tip (AP view of the pump "
                          "and spine, lateral/oblique view of the pump, upper thoracic/cervical "
                          "spine).", "If the child has signs of withdrawal"),
        Action("5.1.4.1", _oral_baclofen(r, weight_kg), _IF_WITHDRAWAL),
        Action("5.1.4.2", f"Cyproheptadine {adj('cyproheptadine_mg')} mg orally "
                          f"{adj('cyproheptadine_interval_h')}-hourly initially for pruritus; up to "
                          f"{adj('cyproheptadine_max_mg')} mg {adj('cyproheptadine_interval_h')}-hourly "
                          "depending on effects (e.g. drowsiness).", _IF_WITHDRAWAL),
        Action("5.1.4.3", f"Diazepam {dz[0]}-{dz[-1]} mg every {dzi[0]}-{dzi[-1]} hours as "
                          "required for spasms, agitation and anxiety.", _IF_WITHDRAWAL),
        Action("5.1.4.4", "IV medication may need to be considered, generally in PICU.",
               "If symptoms continue that resemble dystonic status"),
        # 5 and 6 are the plan for any child in withdrawal, not part of the drug treatment
        # above (issue 15, item 13): printed without the oral-treatment condition.
        Action("5.1.4.5", "Escalation plan: call the PICU registrar/fellow on call."),
        Action("5.1.4.6", "Ensure adequate hydration; may require IV fluids."),
    )


def overdose_actions(r: Rules) -> tuple[Action, ...]:
    """Guideline 5.2-5.2.4 in its own words.  The medical management of 5.2.4 (stopping the
    drug, removing it from the reservoir, ventilation) is for a child who shows signs of
    overdose, on medical decision: stopping the pump causes withdrawal (5.1)."""
    c = lambda k: r.get("contacts", k)  # noqa: E731
    return (
        Action("5.2", "Overdose may occur insidiously or suddenly. There is no specific antidote."),
        Action("5.2.2", f"Signs of overdose can include: {OVERDOSE_SIGNS}."),
        Action("5.2.3.1", f"Call the Kids Rehab CNC ({c('kids_rehab_cnc')}) or the Kids Rehab "
                          f"Fellow on call ({c('kids_rehab_fellow')}); outside work hours the Kids "
                          "Rehab physician on call via switchboard."),
        *escalation_actions(r),
        Action("Key points, 3.4.5", "Consideration should be given for the child to be specialled "
                                    "(1:1 Nurse: Patient) and for the Bed Manager/After Hours "
                                    "Nurse Manager (AHNM) to be contacted to arrange admission; "
                                    "increase observation of the child as per ePolicy 2008-8040, "
                                    "Increasing Nurse: Patient Ratios.",
               "If overdose is thought to occur"),
        Action("5.2.3.2", "Initial management is instigated by the emergency physicians in ED; "
                          "call the Kids Rehab physician on call as soon as the child has been "
                          "initially assessed.", "If the child has signs of overdose"),
        Action("5.2.3.3", f"Poisons Information Centre: {c('poisons_information')}, for advice.",
               "If the child has signs of overdose"),
        Action("5.2.3.4", "Exclude differential diagnoses: sepsis; electrolyte imbalance or "
                          "hypoglycaemia; intracranial event; seizures or non-convulsive status; "
                          "overdose of enteral medication.", "If the child has signs of overdose"),
        Action("5.2.3.5", "Initial investigations, in the checklist.",
               "If the child has signs of overdose", checklist=OVERDOSE_INVESTIGATIONS),
        Action("5.2.3.6", "Consider neuroimaging. DO NOT PERFORM A LUMBAR PUNCTURE: there is a "
                          "risk that the catheter will be damaged.",
               "If the child has signs of overdose"),
        Action("5.2.3.7", "Kids Rehab may ask for the information in the checklist (to collect "
                          "before calling).", checklist=OVERDOSE_COLLECT),
        Action("5.2.4.1", "Supportive care of the patient.", _IF_OVERDOSE),
        Action("5.2.4.2", "Stop further drug administration.", _IF_OVERDOSE),
        Action("5.2.4.3", "Reduce concentration and total amount of drug in the CSF.", _IF_OVERDOSE),
        Action("5.2.4.4", "Can be considered: residual baclofen solution removed from the pump "
                          "reservoir and catheter.", _IF_OVERDOSE),
        Action("5.2.4.5", "Can be considered: patients with respiratory depression intubated "
                          "and ventilated, if necessary, until the drug is eliminated.", _IF_OVERDOSE),
        Action("5.2.4.6", "Can be considered: cardiovascular function supported.", _IF_OVERDOSE),
        Action("5.2.4.7", "Can be considered: in the event of convulsions, intravenous diazepam "
                          "administered cautiously.", _IF_OVERDOSE),
    )


def assess(findings: list[Finding], ctx: Context, csf: pd.DataFrame,
           weight_kg: float | None, incomplete_reasons: list[str]) -> dict[str, Risk]:
    """Both risks, each with reasons and actions."""
    levels: dict[str, list[tuple[str, str, str]]] = {"withdrawal": [], "overdose": []}
    for f in findings:
        w, o = grade(f, ctx)
        when = ctx.clock.time(f.start_s) if f.start_s is not None else "time unknown"
        label = f"{f.kind.replace('_', ' ')} ({when})"
        levels["withdrawal"].append((w, label, f.kind))
        levels["overdose"].append((o, label, f.kind))
    cw, co, rw, ro = csf_levels(csf, ctx)
    levels["withdrawal"] += [(cw, t, "csf_estimate") for t in rw]
    levels["overdose"] += [(co, t, "csf_estimate") for t in ro]
    out: dict[str, Risk] = {}
    for kind, items in levels.items():
        lvl = level_max(x[0] for x in items)
        reasons = [f"{x[1]}: {x[0]}" for x in sorted(items, key=lambda x: -LEVELS.index(x[0]))
                   if x[0] != "none"]
        if incomplete_reasons and LEVELS.index(lvl) < LEVELS.index("cannot_rule_out"):
            lvl = "cannot_rule_out"
        if incomplete_reasons:
            reasons += [f"incomplete information: {x}" for x in incomplete_reasons]
        if lvl == "none":
            reasons.append("nothing in the log points to it (see the limitations: telemetry "
                           "cannot show catheter problems or over-infusion since the last refill)")
        acts: tuple[Action, ...] = ()
        if lvl != "none":
            acts = withdrawal_actions(ctx.rules, weight_kg) if kind == "withdrawal" \
                else overdose_actions(ctx.rules)
            if lvl in ("cannot_rule_out", "low"):
                acts = (Action("note", f"If the child shows signs of {kind}, act as below."), *acts)
        kinds = tuple(sorted({x[2] for x in items if x[0] not in ("none",)}))
        out[kind] = Risk(kind, lvl, tuple(reasons), acts, kinds)  # type: ignore[arg-type]
    return out
