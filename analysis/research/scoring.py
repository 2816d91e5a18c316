"""Score the analysis against simulator ground truth: every ``*.itblog`` in a directory with
a matching ``*.truth.json`` is analysed and its findings and risks compared.

A finding matches an expected one of the same kind when their time spans overlap, with
``tolerance_s`` (an hour) of slack; an expected finding with no times matches any finding of
its kind.  A missing end is "until interrogation", a missing start "from the beginning".
Per kind each expected finding is ``found`` or ``missed`` and each unmatched finding ``false``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clinical.rules import Rules

from ..assessment import Assessment, analyse
from ..findings import Finding
from ..timeutil import HOUR, ts_seconds

INF = float("inf")


@dataclass
class SampleScore:
    """How one sample scored."""

    name: str
    found: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    false: dict[str, int] = field(default_factory=dict)
    expected_risk: dict[str, str] = field(default_factory=dict)
    risk: dict[str, str] = field(default_factory=dict)
    missed_mcg_truth: float | None = None
    missed_mcg_estimate: float | None = None
    error: str | None = None

    @property
    def risk_match(self) -> bool:
        """True when both risk levels equal the expected ones."""
        return self.error is None and all(self.risk.get(k) == v for k, v in self.expected_risk.items())


@dataclass
class ScoreResult:
    """Per-sample, per-kind table, per-sample risk table and the totals."""

    samples: list[SampleScore]
    table: pd.DataFrame
    risks: pd.DataFrame
    summary: dict[str, int]


def _span(start: Any, end: Any, now: float) -> tuple[float, float]:
    s = -INF if start is None else float(start)
    e = now if end is None else float(end)
    return s, max(e, s)


def match_findings(expected: Sequence[Mapping[str, Any]], actual: Sequence[Finding], now_s: int,
                   tolerance_s: float = HOUR) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(found, missed, false) counts per kind; see the module docstring for the rule."""
    found: dict[str, int] = {}
    missed: dict[str, int] = {}
    false: dict[str, int] = {}
    free = list(range(len(actual)))
    exp = [(e["kind"], None if e.get("start_utc") is None else ts_seconds(e["start_utc"]),
            None if e.get("end_utc") is None else ts_seconds(e["end_utc"])) for e in expected]
    timed = [x for x in exp if x[1] is not None or x[2] is not None]
    untimed = [x for x in exp if x[1] is None and x[2] is None]
    for kind, s, e in timed:
        es, ee = _span(s, e, now_s)
        best, best_d = None, INF
        for i in free:
            f = actual[i]
            if f.kind != kind:
                continue
            fs, fe = _span(f.start_s, f.end_s, now_s)
            if fs - tolerance_s <= ee and es - tolerance_s <= fe:
                d = abs(fs - es) if fs != -INF and es != -INF else 0.0
                if d < best_d:
                    best, best_d = i, d
        if best is None:
            missed[kind] = missed.get(kind, 0) + 1
        else:
            free.remove(best)
            found[kind] = found.get(kind, 0) + 1
    for kind, _, _ in untimed:
        hit = next((i for i in free if actual[i].kind == kind), None)
        if hit is None:
            missed[kind] = missed.get(kind, 0) + 1
        else:
            free.remove(hit)
            found[kind] = found.get(kind, 0) + 1
    for i in free:
        false[actual[i].kind] = false.get(actual[i].kind, 0) + 1
    return found, missed, false


def load_truth(path: str | Path) -> dict[str, Any]:
    """A truth file as a dict."""
    return json.loads(Path(path).read_text())


def truth_path_for(log_path: Path) -> Path:
    """``x.itblog`` -> ``x.truth.json``."""
    return log_path.with_name(log_path.name.removesuffix(".itblog") + ".truth.json")


def score_sample(log_path: str | Path, truth: Mapping[str, Any],
                 rules: Rules | Mapping[str, Any] | str | Path | None = None) -> SampleScore:
    """Analyse one log with the truth's procedures and weight, and compare."""
    log_path = Path(log_path)
    sc = SampleScore(log_path.name.removesuffix(".itblog"),
                     expected_risk=dict(truth.get("expected_risk", {})),
                     missed_mcg_truth=truth.get("missed_mcg"))
    expected = list(truth.get("expected_findings", []))
    try:
        a: Assessment = analyse(log_path, procedures=truth.get("procedures", []),
                                weight_kg=truth.get("weight_kg"), rules=rules)
    except Exception as exc:
        sc.error = f"{type(exc).__name__}: {exc}"
        for e in expected:
            sc.missed[e["kind"]] = sc.missed.get(e["kind"], 0) + 1
        return sc
    now = a.now_s
    sc.found, sc.missed, sc.false = match_findings(expected, a.findings, now)
    sc.risk = {k: r.level for k, r in a.risks.items()}
    sc.missed_mcg_estimate = sum(f.missed_mcg or 0.0 for f in a.findings
                                 if f.kind not in ("stall_ongoing", "intermittent_stalls"))
    return sc


def score_directory(directory: str | Path,
                    rules: Rules | Mapping[str, Any] | str | Path | None = None) -> ScoreResult:
    """Score every ``*.itblog`` in ``directory`` that has a ``*.truth.json`` beside it."""
    directory = Path(directory)
    samples = []
    for log_path in sorted(directory.glob("*.itblog")):
        tp = truth_path_for(log_path)
        if tp.exists():
            samples.append(score_sample(log_path, load_truth(tp), rules))
    rows = []
    for s in samples:
        for kind in sorted({*s.found, *s.missed, *s.false}):
            rows.append({"sample": s.name, "kind": kind, "found": s.found.get(kind, 0),
                         "missed": s.missed.get(kind, 0), "false": s.false.get(kind, 0)})
    table = pd.DataFrame(rows, columns=["sample", "kind", "found", "missed", "false"])
    risks = pd.DataFrame([{
        "sample": s.name,
        "withdrawal_expected": s.expected_risk.get("withdrawal"),
        "withdrawal": s.risk.get("withdrawal"),
        "overdose_expected": s.expected_risk.get("overdose"),
        "overdose": s.risk.get("overdose"),
        "match": s.risk_match, "error": s.error} for s in samples],
        columns=["sample", "withdrawal_expected", "withdrawal", "overdose_expected", "overdose",
                 "match", "error"])
    summary = {
        "samples": len(samples),
        "found_findings": int(table["found"].sum()) if len(table) else 0,
        "missed_findings": int(table["missed"].sum()) if len(table) else 0,
        "false_findings": int(table["false"].sum()) if len(table) else 0,
        "risk_mismatches": sum(not s.risk_match for s in samples),
        "errors": sum(s.error is not None for s in samples),
    }
    return ScoreResult(samples, table, risks, summary)


def per_kind(result: ScoreResult) -> pd.DataFrame:
    """Found / missed / false totals per finding kind."""
    if result.table.empty:
        return pd.DataFrame(columns=["found", "missed", "false"])
    return result.table.groupby("kind")[["found", "missed", "false"]].sum()


def report(result: ScoreResult) -> str:
    """The text the benchmark prints; the last line is the machine-readable RESULT."""
    lines = ["Per finding kind (found / missed / false):"]
    pk = per_kind(result)
    if pk.empty:
        lines.append("  (no findings expected or made)")
    for kind, r in pk.iterrows():
        lines.append(f"  {kind:28s} {int(r['found']):4d} {int(r['missed']):4d} {int(r['false']):4d}")
    lines.append("")
    lines.append("Per sample risk (withdrawal, overdose: got / expected):")
    for s in result.samples:
        ok = "ok " if s.risk_match else "MISMATCH"
        if s.error:
            lines.append(f"  {s.name:32s} ERROR {s.error}")
            continue
        lines.append(f"  {s.name:32s} {ok} withdrawal {s.risk.get('withdrawal')} / "
                     f"{s.expected_risk.get('withdrawal')}, overdose {s.risk.get('overdose')} / "
                     f"{s.expected_risk.get('overdose')}")
    sm = result.summary
    lines.append("")
    lines.append(f"RESULT samples={sm['samples']} missed_findings={sm['missed_findings']} "
                 f"false_findings={sm['false_findings']} risk_mismatches={sm['risk_mismatches']}")
    return "\n".join(lines)
