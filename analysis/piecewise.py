"""Piecewise-constant rates and their integrals: how interval amounts (a delivery row's
volume, a flex step's dose, a bolus) are spread over time and re-binned at any resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Piecewise:
    """Amount per second, constant between ``bounds``; ``cum`` is the integral at each bound.

    Outside the bounds the rate is zero.  Overlapping source intervals add up.
    """

    bounds: np.ndarray
    cum: np.ndarray

    @classmethod
    def empty(cls) -> Piecewise:
        """No amount anywhere."""
        return cls(np.zeros(0), np.zeros(0))

    @classmethod
    def from_intervals(cls, starts: np.ndarray, ends: np.ndarray, amounts: np.ndarray) -> Piecewise:
        """Each amount spread evenly over its [start, end) (a zero-length interval over 1 s)."""
        s = np.asarray(starts, dtype=np.float64)
        e = np.asarray(ends, dtype=np.float64)
        a = np.asarray(amounts, dtype=np.float64)
        keep = np.isfinite(s) & np.isfinite(e) & np.isfinite(a)
        s, e, a = s[keep], e[keep], a[keep]
        if len(s) == 0:
            return cls.empty()
        e = np.maximum(e, s + 1.0)
        rate = a / (e - s)
        pts = np.concatenate([s, e])
        deltas = np.concatenate([rate, -rate])
        order = np.argsort(pts, kind="stable")
        pts, deltas = pts[order], deltas[order]
        uniq, first = np.unique(pts, return_index=True)
        summed = np.add.reduceat(deltas, first)
        rates = np.cumsum(summed)[:-1]
        rates[np.abs(rates) < 1e-15] = 0.0
        cum = np.concatenate([[0.0], np.cumsum(rates * np.diff(uniq))])
        return cls(uniq, cum)

    def cum_at(self, t: np.ndarray | float) -> np.ndarray:
        """Integral from the beginning of time to ``t``."""
        t = np.asarray(t, dtype=np.float64)
        if len(self.bounds) == 0:
            return np.zeros_like(t)
        return np.interp(t, self.bounds, self.cum)

    def integral(self, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        """Amount between ``a`` and ``b`` (elementwise)."""
        return self.cum_at(b) - self.cum_at(a)

    def __add__(self, other: Piecewise) -> Piecewise:
        if len(self.bounds) == 0:
            return other
        if len(other.bounds) == 0:
            return self
        b = np.union1d(self.bounds, other.bounds)
        return Piecewise(b, self.cum_at(b) + other.cum_at(b))


def merge_spans(spans: list[tuple[float, float]], join_s: float = 0.0) -> list[tuple[float, float]]:
    """Union of [start, end] spans; spans closer than ``join_s`` are joined."""
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + join_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def overlaps(a0: np.ndarray, a1: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Which intervals [a0, a1) overlap any span (strictly, by more than zero seconds)."""
    hit = np.zeros(len(a0), dtype=bool)
    for s, e in spans:
        hit |= (a0 < e) & (a1 > s)
    return hit
