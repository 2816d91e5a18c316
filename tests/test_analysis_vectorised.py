"""The check's whole-array shortcuts (issue 18, item 2) give what the one-at-a-time rules
they replaced give: the program in effect at each timeline bin, and the longest run of
hours the estimated CSF level stays out of range."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.episodes import Episodes, Program, Step
from analysis.piecewise import Piecewise
from analysis.reconstruct import ProgramSpan, Reconstruction
from analysis.risk import _longest_run_h


def _loop_longest_run(mask: list[bool]) -> tuple[int, bool]:
    """The rule as first written: walk the hours, count the current run, keep the longest."""
    best = cur = 0
    for v in mask:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best, bool(mask and mask[-1])


@given(st.lists(st.booleans(), max_size=300), st.sampled_from([0.25, 1.0, 2.0]))
@settings(max_examples=300, deadline=None)
def test_longest_run_is_the_loop_rule(mask, dt_h):
    runs, at_end = _loop_longest_run(mask)
    assert _longest_run_h(np.array(mask, dtype=bool), dt_h) == (runs * dt_h, at_end)


def test_longest_run_examples():
    assert _longest_run_h(np.array([], dtype=bool), 1.0) == (0.0, False)
    assert _longest_run_h(np.array([True, True, False, True]), 1.0) == (2.0, True)
    assert _longest_run_h(np.array([False, True, True, True, False]), 0.5) == (1.5, False)


def _program(start: int, mode: str, conc: float) -> Program:
    return Program(start, mode, (Step(0, 100.0, 0.2),), conc)


def _rec(spans: list[ProgramSpan]) -> Reconstruction:
    empty = Piecewise.from_intervals(np.zeros(0), np.zeros(0), np.zeros(0))
    return Reconstruction(
        window=(0, 10), now_s=10, episodes=Episodes(), program_spans=spans,
        conc_times=np.zeros(1, np.int64), conc_values=np.ones(1), first_refill_s=None,
        conc_from_status=False, prescribed_mcg=empty, prescribed_ml=empty, bolus_mcg=empty,
        rows=pd.DataFrame(),
    )


@st.composite
def _spans(draw):
    """Program spans in start order, as build() makes them: touching, with gaps (a span that
    ends before the next starts) and spans of no length."""
    n = draw(st.integers(0, 6))
    t = draw(st.integers(-50, 50))
    spans = []
    for i in range(n):
        t += draw(st.integers(0, 40))
        length = draw(st.integers(0, 60))
        spans.append(ProgramSpan(_program(t, ("simple", "flex", "stopped")[i % 3], 500.0 + i), t, t + length))
        t += draw(st.integers(0, length))
    return spans


@given(_spans(), st.lists(st.integers(-100, 400), max_size=40))
@settings(max_examples=300, deadline=None)
def test_program_index_is_program_at(spans, times):
    rec = _rec(spans)
    idx = rec.program_index_at(np.array(times, dtype=np.int64))
    for t, i in zip(times, idx.tolist(), strict=True):
        expected = rec.program_at(t)
        assert (spans[i].program if i >= 0 else None) is expected, (t, i)
