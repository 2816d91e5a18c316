"""Small helpers the detectors share: runs of flagged history rows and drug sums."""

from __future__ import annotations

import numpy as np
import pandas as pd


def contiguous(rows: pd.DataFrame, slack_s: float = 60.0) -> np.ndarray:
    """For each row, True if it starts where the previous row ended (no hole between)."""
    if rows.empty:
        return np.zeros(0, dtype=bool)
    s = rows["start_s"].to_numpy()
    e = rows["end_s"].to_numpy()
    out = np.ones(len(rows), dtype=bool)
    out[0] = False
    out[1:] = np.abs(s[1:] - e[:-1]) <= slack_s
    return out


def flagged_runs(flags: np.ndarray, joined: np.ndarray, max_gap_rows: int = 0) -> list[tuple[int, int]]:
    """(first, last) row index of runs of flagged rows; a run breaks at a hole in the history
    (``joined`` False) and tolerates up to ``max_gap_rows`` unflagged rows inside."""
    runs: list[list[int]] = []
    last_flag = -10**9
    for i in np.flatnonzero(flags).tolist():
        if runs and joined[runs[-1][1] + 1: i + 1].all() and i - last_flag - 1 <= max_gap_rows:
            runs[-1][1] = i
        else:
            runs.append([i, i])
        last_flag = i
    return [(a, b) for a, b in runs]


def centred_sum(values: np.ndarray, width: int, joined: np.ndarray) -> np.ndarray:
    """Sum over a centred window of ``width`` rows, not reaching across holes in the history."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if width <= 1 or n == 0:
        return v.copy()
    idx = np.arange(n)
    breaks = ~np.asarray(joined, dtype=bool)
    breaks[0] = True
    seg_first = np.maximum.accumulate(np.where(breaks, idx, 0))
    ends = np.append(breaks[1:], True)
    seg_last = np.minimum.accumulate(np.where(ends, idx, n - 1)[::-1])[::-1]
    half = width // 2
    lo = np.maximum(idx - half, seg_first)
    hi = np.minimum(idx + half, seg_last)
    c = np.concatenate([[0.0], np.cumsum(v)])
    return c[hi + 1] - c[lo]


def offsets(rows: pd.DataFrame, idx: list[int] | np.ndarray) -> tuple[int, ...]:
    """Byte offsets of the given rows (first and last only for long runs)."""
    idx = list(idx)
    if not idx:
        return ()
    pick = idx if len(idx) <= 4 else [idx[0], idx[-1]]
    return tuple(int(rows["offset"].iat[i]) for i in pick)


def pct(x: float | None) -> str:
    """A share as a percentage for explanations."""
    return "unknown" if x is None else f"{100 * x:.0f}%"
