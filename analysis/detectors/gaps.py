"""Missing or untrustworthy history in the analysed window: page gaps (damaged or missing
pages), a truncated file, holes in the delivery history and spans whose clock cannot be
anchored (after a reset or jump with no sync point).  Nothing can be ruled out there.

One ``history_gap`` finding sums them up for the log (from the first span to the last); each
span is listed in its explanation and ``details.spans``.
"""

from __future__ import annotations

from ..context import Context
from ..findings import Finding, FindingDetails, GapSpan
from ..piecewise import merge_spans
from ..timeutil import hours

_WHY = {
    "page_gap": "pages of the log are missing or damaged",
    "truncated": "the file ends early (truncated)",
    "no_delivery_history": "the pump recorded no delivery history",
    "clock_uncertain": "the pump clock could not be anchored to UTC (times estimated)",
}


def detect(ctx: Context) -> list[Finding]:
    """history_gap: missing, damaged or clock-uncertain history, one finding per log."""
    spans = [*ctx.rec.missing, *ctx.rec.uncertain]
    merged = merge_spans([(s.start_s, s.end_s) for s in spans], join_s=ctx.interval_s)
    parts: list[str] = []
    listed: list[GapSpan] = []
    evidence: set[int] = set()
    missed = 0.0
    for a, b in merged:
        inside = [s for s in spans if s.start_s >= a and s.end_s <= b]
        reasons = sorted({_WHY.get(s.reason, s.reason) for s in inside})
        evidence |= {o for s in inside for o in s.evidence}
        missed += float(ctx.rec.prescribed_mcg.integral(a, b))
        parts.append(f"from {ctx.clock.time(a)} to {ctx.clock.time(b)} ({hours(b - a)}) "
                     + " and ".join(reasons))
        listed.append({"start_s": int(a), "end_s": int(b),
                       "reasons": sorted({s.reason for s in inside})})
    bad = [p for p in ctx.log.problems if p.severity == "error" and p.kind in
           ("bad_page_marker", "bad_page_crc", "bad_record_count", "bad_slot")]
    lost_in_gaps = sum(int(g.last_missing_seq - g.first_missing_seq + 1)
                       for g in ctx.log.gaps.itertuples(index=False))
    start_unknown = len(bad) > lost_in_gaps
    if ctx.rec.unplaced:
        parts.append(f"{len(ctx.rec.unplaced)} record(s) carry times from a pump clock that "
                     "cannot be anchored (it fell back or jumped with no record): they cannot "
                     "be placed in time and are left out")
        evidence |= set(ctx.rec.unplaced[:2])
        listed.append({"start_s": None, "end_s": None, "reasons": ["clock_uncertain"],
                       "records": len(ctx.rec.unplaced)})
        start_unknown = True
    if start_unknown:
        parts.append(f"{len(bad) - lost_in_gaps} damaged page(s) could not be placed in time "
                     f"(before {ctx.clock.time(ctx.rec.window[0])}, where the stored history starts)")
        evidence |= {int(p.offset) for p in bad if p.offset is not None}
        listed.append({"start_s": None, "end_s": ctx.rec.window[0], "reasons": ["damaged_pages"]})
    if not parts:
        return []
    first = None if start_unknown else int(merged[0][0])
    last = int(merged[-1][1]) if merged else ctx.rec.window[0]
    ongoing = last >= ctx.now_s
    return [Finding(
        "history_gap", "warning", first, None if ongoing else last,
        "The history is incomplete: " + "; ".join(parts) + f". About {missed:.0f} mcg was "
        "prescribed in those spans; whether it was delivered cannot be told, so neither "
        "withdrawal nor overdose can be ruled out there.",
        ongoing=ongoing, evidence=tuple(sorted(evidence))[:8],
        daily_dose_mcg=ctx.rec.daily_dose_at(first or ctx.rec.window[0]) or None,
        direction="unknown", details=FindingDetails(spans=listed))]
