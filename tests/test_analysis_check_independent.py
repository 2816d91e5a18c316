"""Property tests of the two-hour check (issue 13) on timelines written from the documentation.

The logs come from ``tests/timelinegen.py``, a generator written from ``docs/log-format.md``
(section 12) without the simulated pump or the analysis's own test builders, each with its
ground truth.  The properties come from ``docs/check-json.md``, ``docs/clinical-rules.md``,
``docs/log-format.md`` 12.12 and issue 13:

P0  documented invariants: a known verdict; ``reasons`` empty exactly when OK; schema
    ``itb-check/1``; ``to_dict()`` is JSON.
P1  never OK while the truth says the pump is not delivering now, or was not delivering for
    30 min or more in the window (window start to the interrogation), except a stall inside an
    MRI scan that recovered within ``[check] stall_recovery_grace_min`` (30 min) of the scan's
    end: the expected effect of the magnet (docs/clinical-rules.md, ``[check]``).
P2  URGENT whenever the (surviving part of the) log shows, by any source of 12.12 (rows,
    records, status), that the pump is not delivering at interrogation.  A motor-stall alarm bit
    or an open stall record beside a status that says the motor runs and rows that show the
    rotor turning is the delayed-recovery case of the 12.12 table: REVIEW, not URGENT.
P3  never OK on a damaged window.
P4  normal logs are OK, whatever the rows' phase; their missed and excess drug under 1 % of the
    daily dose.
P5  the summary never says delivery "matches the prescription" / "as programmed" while the truth
    says drug was missed in the window (P5b: nor while drug was delivered in excess beyond the
    labeled accuracy).
P6  where the history covers the window, ``missed_mcg`` agrees with the truth within 15 % or
    2 mcg, plus what the log cannot place to better than one row (``Truth.missed_ambiguity_mcg``);
    P6b the same for ``excess_mcg``.
P7  no exception (the generator never puts the procedure end after the interrogation, so the one
    documented refusal cannot arise).
P8  a recent (< 3 days) cut of 30 % or more (clinical_rules.toml ``large_decrease_fraction``;
    issue 13 item 4) is not OK and its withdrawal risk is not "none".
P9  the rotor at 1.3-3 x the program for an hour or more in/after diathermy (beyond the labeled
    accuracy of 14.5 %) is not OK and its overdose risk is not "none" (issue 13 item 8; the
    example reason "over delivery in or after the DIATHERMY window" in check-json.md).
P10 ``daily_dose_mcg`` is the prescribed dose at the end of the history.
P11 one figure for one thing (issue 13 item 9): a ``motor_stall``, ``stall_ongoing``,
    ``pump_stopped`` or ``empty_reservoir`` finding's ``missed_mcg`` agrees with the truth for the
    span it covers, for a span that begins inside the history the file holds (15 % or 2 mcg, plus
    one row of dose per boundary no record marks where the log cannot place it: the interval in
    progress, or an empty-reservoir crossing).

Default: 250 cases (seeds 1..250), about 35 s of CPU.  ``ITB_PROPERTY_CASES=N`` runs seeds
1..N.  The last test prints the counts in the columns of issue 13.  Reproduce one case with
``python tests/timelinegen.py SEED /tmp/case.itblog`` (prints the case and the ``itb check`` line).
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import itertools
import json
import os
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import timelinegen as tg

import parsers

N_CASES = int(os.environ.get("ITB_PROPERTY_CASES", "250"))
SEEDS = list(range(1, N_CASES + 1))
NOT_DELIVERING_KINDS = {
    "motor_stall",
    "stall_ongoing",
    "stall_recovery_unlogged",
    "pump_stopped",
    "empty_reservoir",
    "battery_eos",
    "rotor_shortfall",
    "intermittent_stalls",
    "history_gap",
}
SPAN_KINDS = {"motor_stall", "stall_ongoing", "pump_stopped", "empty_reservoir"}
MATCH_PHRASES = ("matches the prescription", "as programmed")


@dataclass
class Outcome:
    case: tg.Case
    error: str | None = None
    verdict: str | None = None
    reasons: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    missed: float | None = None
    excess: float | None = None
    daily_dose: float | None = None
    doc: dict = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)

    @property
    def _findings(self) -> list[dict]:
        return self.doc.get("findings", [])

    def report(self) -> str:
        head = self.case.describe()
        if self.error:
            return f"{head}\n  CRASH: {self.error}"
        got = (
            f"  got: {self.verdict} reasons={self.reasons}\n  summary={self.summary}\n"
            f"  missed_mcg={self.missed} excess_mcg={self.excess} daily_dose={self.daily_dose}\n"
            f"  findings={[(f['kind'], f['start'], f['end'], f['direction']) for f in self._findings]}"
        )
        fails = "\n".join(f"  {k}: {v}" for k, v in sorted(self.failures.items()))
        return f"{head}\n{got}\n  FAILED:\n{fails}"


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _finding_covers(f: dict, a: dt.datetime, b: dt.datetime) -> bool:
    fs = _time(f.get("start")) or dt.datetime.min.replace(tzinfo=dt.UTC)
    fe = _time(f.get("end")) or dt.datetime.max.replace(tzinfo=dt.UTC)
    return fs <= b + dt.timedelta(hours=1) and fe >= a - dt.timedelta(hours=1)


def _minutes_not_explained_by_mri(case: tg.Case) -> float:
    """Minutes without delivery in the window, less a motor stall that lies inside an MRI scan
    and recovered within 30 min of its end ([check] stall_recovery_grace_min): what the magnet
    is expected to do.  Stops (nothing commanded) and stalls after other procedures count."""
    t = case.truth
    total = t.minutes_not_delivering_in_window
    if case.kind != "mri" or case.scenario not in ("stall", "silent_rotor_zero"):
        return total
    grace = dt.timedelta(minutes=30)
    for a, b in t.not_delivering_spans:
        if b is not None and a >= case.proc_start - dt.timedelta(minutes=1) and b <= case.proc_end + grace:
            lo, hi = max(a, case.window_start), min(b, case.interrogated_at)
            total -= max(0.0, (hi - lo).total_seconds() / 60)
    return total


def _shows_not_delivering(case: tg.Case) -> list[str]:
    """The truth's evidence that the pump is not delivering now, without the delayed-recovery
    case of docs/log-format.md 12.12 (an alarm bit or an open stall record, while the status
    says the motor runs and the rows show the rotor turning): that one is REVIEW."""
    ev = list(case.truth.log_not_delivering_now)
    stale = {"status alarm motor_stall", "open motor_stall record"}
    status = case.image.status
    rows_turning = "rows show no delivery up to the last row" not in ev
    if status.motor_state == "running" and rows_turning:
        ev = [e for e in ev if e not in stale]
    return ev


@functools.cache
def evaluate(seed: int) -> Outcome:
    case = tg.generate(seed)
    out = Outcome(case)
    t = case.truth
    try:
        from analysis.check import check

        with tempfile.TemporaryDirectory() as d:
            log = parsers.read_log(case.write(Path(d) / f"case{seed}.itblog"))
            r = check(log, case.kind, case.proc_end, case.start_arg)
        out.doc = r.to_dict()
        json.dumps(out.doc)
        out.verdict, out.reasons, out.summary = r.verdict, list(r.reasons), list(r.summary)
        out.missed, out.excess, out.daily_dose = r.missed_mcg, r.excess_mcg, r.daily_dose_mcg
    except Exception:
        out.error = traceback.format_exc(limit=6)
        out.failures["P7 crash"] = out.error.strip().splitlines()[-1]
        out.columns.add("crashes")
        return out

    fail = out.failures
    v = out.verdict
    D = case.daily_dose
    risks = out.doc.get("risks", {})
    findings = out.doc.get("findings", [])

    # P0 documented invariants
    if v not in ("OK", "REVIEW", "URGENT"):
        fail["P0 verdict"] = f"unknown verdict {v!r}"
    if (v == "OK") != (out.reasons == []):
        fail["P0 reasons"] = f"verdict {v} with reasons {out.reasons}"
    if out.doc.get("schema") != "itb-check/1":
        fail["P0 schema"] = f"schema {out.doc.get('schema')!r}"

    # P1 never OK while not delivering >= 30 min in the window (outside an MRI stall that
    # recovered within the grace), or not delivering now
    unexplained = _minutes_not_explained_by_mri(case)
    if v == "OK" and (unexplained >= 30 or not t.delivering_now):
        fail["P1 OK while not delivering"] = (
            f"{t.minutes_not_delivering_in_window:.0f} min not delivering in the window, "
            f"delivering now: {t.delivering_now}"
        )

    # P2 URGENT whenever the log shows the pump not delivering at interrogation
    shows = _shows_not_delivering(case)
    if shows and v != "URGENT":
        fail["P2 not URGENT"] = f"{v} although the log shows: {t.log_not_delivering_now}"

    # P3 never OK on a damaged window
    if t.damaged and v == "OK":
        fail["P3 OK on damaged window"] = f"damage {case.damage}"

    # P4 normal logs are OK, missed and excess under 1 % of the daily dose
    if t.normal:
        if v != "OK":
            fail["P4 normal not OK"] = f"{v}: {out.reasons}"
        for name, val in (("missed", out.missed), ("excess", out.excess)):
            if val is None or val >= 0.01 * D:
                fail[f"P4 normal {name}"] = f"{name}_mcg={val} (1% of {D} = {0.01 * D:.2f})"

    # P5 no "matches the prescription"/"as programmed" while drug was missed (or in excess)
    text = " ".join(out.summary).lower()
    said = [p for p in MATCH_PHRASES if p in text]
    if said and (t.missed_mcg >= max(1.0, 0.01 * D) or t.minutes_not_delivering_in_window >= 10):
        fail["P5 says matches while missed"] = f"summary says {said}; truth missed {t.missed_mcg:.1f} mcg"
    prescribed = D * (case.interrogated_at - case.window_start).total_seconds() / 86400
    if said and t.excess_mcg >= max(2.0, 0.145 * prescribed):
        fail["P5b says matches while excess"] = f"summary says {said}; truth excess {t.excess_mcg:.1f} mcg"

    # P6 missed (and excess) figures agree with the truth where the history covers the window
    if t.history_covers_window:
        for name, got, want, amb in (
            ("missed", out.missed, t.missed_mcg, t.missed_ambiguity_mcg),
            ("excess", out.excess, t.excess_mcg, t.excess_ambiguity_mcg),
        ):
            tol = max(0.15 * want, 2.0) + amb
            if got is None or abs(got - want) > tol:
                key = "P6 missed_mcg" if name == "missed" else "P6b excess_mcg"
                fail[key] = f"{name}_mcg={got}, truth {want:.2f} ± {tol:.2f}"

    # P8 a recent large dose cut, where the history the file holds reaches back before it
    cut_in_history = (
        t.dose_cut_hours_before is not None
        and t.history_start is not None
        and t.history_start < case.interrogated_at - dt.timedelta(hours=t.dose_cut_hours_before + 1)
    )
    if cut_in_history and t.dose_cut_fraction >= 0.3 and t.dose_cut_hours_before < 72:
        lvl = risks.get("withdrawal", {}).get("level")
        if v == "OK" or lvl == "none":
            fail["P8 dose cut"] = f"cut {t.dose_cut_fraction:.0%}: verdict {v}, withdrawal {lvl}"

    # P9 over-delivery in/after diathermy
    if t.over_delivery_factor is not None and t.over_delivery_minutes >= 60:
        lvl = risks.get("overdose", {}).get("level")
        if v == "OK" or lvl == "none":
            fail["P9 over-delivery"] = (
                f"rotor x{t.over_delivery_factor} for {t.over_delivery_minutes:.0f} min: "
                f"verdict {v}, overdose {lvl}"
            )

    # P10 the daily dose reported
    if out.daily_dose is None or abs(out.daily_dose - D) > 0.005 * D:
        fail["P10 daily_dose_mcg"] = f"daily_dose_mcg={out.daily_dose}, prescribed {D}"

    # P11 one figure for the same thing (issue 13 item 9): a not-delivering finding's own
    # missed_mcg agrees with the truth for the span it covers
    if (
        not t.damaged
        and len(t.not_delivering_spans) == 1
        and t.history_start is not None
        and t.not_delivering_spans[0][0] >= t.history_start + dt.timedelta(hours=1)
    ):
        (a, b), (want, amb) = t.not_delivering_spans[0], t.span_missed_mcg[0]
        tol = max(0.15 * want, 2.0) + amb
        for f in findings:
            if (
                f["kind"] in SPAN_KINDS
                and f.get("missed_mcg") is not None
                and _finding_covers(f, a, b or case.interrogated_at)
                and abs(f["missed_mcg"] - want) > tol
            ):
                fail["P11 finding missed_mcg"] = (
                    f"{f['kind']} says {f['missed_mcg']} mcg; truth for the span {want:.1f} ± {tol:.1f}"
                )

    # Issue 13's columns
    if v == "OK" and (unexplained >= 30 or not t.delivering_now or shows):
        out.columns.add("falsely reassuring")
    if shows and v != "URGENT":
        out.columns.add("not URGENT while not delivering")
    for a, b in t.not_delivering_spans:
        a_w = max(a, case.window_start)
        b_w = min(b or case.interrogated_at, case.interrogated_at)
        if (b_w - a_w).total_seconds() < 30 * 60:
            continue
        if not any(
            (f["kind"] in NOT_DELIVERING_KINDS or f["direction"] in ("withdrawal", "both", "unknown"))
            and _finding_covers(f, a, b or case.interrogated_at)
            for f in findings
        ):
            out.columns.add("stall/stop >= 30 min with no finding")
            fail["stall/stop >= 30 min with no finding"] = f"span {a}..{b} has no finding"
    if t.normal and v != "OK":
        out.columns.add("false alarm on normal log")
    if t.damaged and v == "OK":
        out.columns.add("OK on damaged window")
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_check_on_an_independent_timeline(seed):
    out = evaluate(seed)
    assert not out.failures, out.report()


@pytest.mark.parametrize("seed", SEEDS[:40])
def test_the_generator_writes_what_the_format_says(seed, tmp_path):
    """The generator itself, checked against the reader only (parsers): undamaged logs decode
    without problems, rows tile the time in 3600 s steps in the chosen phase, the last row ends
    less than an interval before the interrogation, the interrogating session's telemetry_start
    is in the file, and damaged logs are reported damaged."""
    case = tg.generate(seed)
    log = parsers.read_log(case.write(tmp_path / "c.itblog"))
    assert log.header.interrogated_at == case.interrogated_at
    if case.truth.damaged:
        assert log.damaged
        return
    assert not log.damaged and not log.problems, log.problems
    ends = [x.to_pydatetime() for x in log.delivery["time_utc"]]
    assert all((b - a).total_seconds() == 3600 for a, b in itertools.pairwise(ends))
    assert dt.timedelta(0) <= case.interrogated_at - ends[-1] < dt.timedelta(hours=1)
    starts = log.events[log.events["event"] == "telemetry_start"]["time_utc"]
    assert case.interrogated_at - starts.iloc[-1].to_pydatetime() <= dt.timedelta(minutes=3)
    assert log.status == case.image.status


def test_zz_issue13_columns(capsys):
    """Counts in the columns of issue 13 over all seeds (printed), then the aim: 0 everywhere."""
    outs = [evaluate(s) for s in SEEDS]
    columns = [
        "falsely reassuring",
        "not URGENT while not delivering",
        "stall/stop >= 30 min with no finding",
        "false alarm on normal log",
        "crashes",
        "OK on damaged window",
    ]
    count = collections.Counter(c for o in outs for c in o.columns)
    props = collections.Counter(k for o in outs for k in o.failures)
    first = {}
    for o in outs:
        for k in o.failures:
            first.setdefault(k, o.case.seed)
    by_scen = collections.Counter((o.case.scenario, o.verdict) for o in outs)
    lines = [f"\n== issue 13 columns over {len(outs)} independent timelines (seeds 1..{N_CASES}) =="]
    lines += [f"  {c:40s} {count[c]:4d}" for c in columns]
    lines.append("== property failures (first seed) ==")
    lines += [f"  {k:40s} {n:4d}  (seed {first[k]})" for k, n in sorted(props.items())]
    lines.append("== verdicts per scenario ==")
    for scen in sorted({o.case.scenario for o in outs}):
        vs = {v: n for (s, v), n in by_scen.items() if s == scen}
        lines.append(f"  {scen:28s} {vs}")
    with capsys.disabled():
        print("\n".join(lines))
    assert all(count[c] == 0 for c in columns), {c: count[c] for c in columns}
