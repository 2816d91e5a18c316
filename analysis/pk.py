"""A one-compartment model of baclofen in the CSF, to turn reconstructed delivery into an
estimated relative CSF level over time.

dC/dt = R(t)/V - k*C with k = ln 2 / half-life and V = clearance / k, so the steady state
for a constant rate R is C_ss = R / clearance.  Input is piecewise constant per timeline
bin, so each step is solved exactly: C' = C*exp(-k*dt) + (R/CL)*(1 - exp(-k*dt)).

The half-life and clearance come from ``[pharmacokinetics]`` in the rules file (Lioresal
Intrathecal label: about 1.5 h and 30 mL/h; published range 0.9-5 h and 13-80 mL/h).  They
are adjustable assumptions: the *relative* level (actual over prescribed) depends only on
the half-life, which sets how fast the level follows a change in delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinical.rules import Rules, get_rules

from .timeutil import HOUR


@dataclass(frozen=True)
class PkParameters:
    """Half-life (h) and clearance (mL/h) of baclofen in the CSF."""

    half_life_h: float
    clearance_ml_h: float

    @classmethod
    def from_rules(cls, rules: Rules | None = None) -> PkParameters:
        """The parameters in ``[pharmacokinetics]``."""
        r = rules or get_rules()
        return cls(r.number("pharmacokinetics", "csf_half_life_h"),
                   r.number("pharmacokinetics", "csf_clearance_ml_h"))

    @property
    def k_per_h(self) -> float:
        """Elimination rate constant (1/h)."""
        return float(np.log(2.0) / self.half_life_h)


def simulate(rate_mcg_h: np.ndarray, dt_h: float, params: PkParameters,
             c0: float | None = None) -> np.ndarray:
    """CSF concentration (mcg/mL) at the END of each step for a piecewise-constant input.

    NaN input means unknown delivery: the level is unknown (NaN) there and restarts, after
    it, from the steady state of the next known rate (callers mark that part as unsettled).
    ``c0`` is the level before the first step (default: steady state of the first rate).
    """
    rate = np.asarray(rate_mcg_h, dtype=np.float64)
    out = np.full(len(rate), np.nan)
    decay = float(np.exp(-params.k_per_h * dt_h))
    cl = params.clearance_ml_h
    finite = np.isfinite(rate)
    # runs of known input; each restarts from c0 (first run) or from steady state
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    for n, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        start = c0 if (n == 0 and a == 0 and c0 is not None) else rate[a] / cl
        out[a:b] = _first_order(rate[a:b] / cl, decay, start)
    return out


_BLOCK = 64


def _first_order(target: np.ndarray, decay: float, c_start: float) -> np.ndarray:
    """c[i] = c[i-1] * decay + target[i] * (1 - decay), c[-1] = c_start, vectorised in blocks:
    within a block the response is a small lower-triangular matrix product."""
    n = len(target)
    nb = -(-n // _BLOCK)
    u = np.zeros(nb * _BLOCK)
    u[:n] = target * (1.0 - decay)
    i = np.arange(_BLOCK)
    lag = i[:, None] - i[None, :]
    kernel = np.where(lag >= 0, decay ** np.maximum(lag, 0), 0.0)  # (B, B) lower triangular
    # response to each block's own input; einsum rather than ``@``: a BLAS matrix product
    # starts BLAS threads that spin on the other cores, doubling the CPU a cohort worker uses
    inner = np.einsum("bj,ij->bi", u.reshape(nb, _BLOCK), kernel)
    carry = decay ** (i + 1)  # decay of the level at the block start
    out = np.empty((nb, _BLOCK))
    c = c_start
    for blk in range(nb):
        out[blk] = carry * c + inner[blk]
        c = out[blk, -1]
    return out.reshape(-1)[:n]


def csf_estimate(timeline: pd.DataFrame, delivered_mcg_h: pd.Series | np.ndarray,
                 rules: Rules | None = None) -> pd.DataFrame:
    """Estimated CSF level from ``delivered_mcg_h`` next to the level the prescription would
    give, per timeline bin; ``relative`` = actual / prescribed (1.0 = as prescribed).

    ``settled`` is False within a few half-lives after unknown delivery, where the estimate
    depends on the assumed starting level.
    """
    r = rules or get_rules()
    params = PkParameters.from_rules(r)
    if len(timeline) == 0:
        return pd.DataFrame(columns=["csf_actual_mcg_ml", "csf_prescribed_mcg_ml",
                                     "steady_state_mcg_ml", "relative", "settled"])
    dt_h = float((timeline["end"].iloc[0] - timeline.index[0]).total_seconds() / HOUR)
    actual_in = np.asarray(delivered_mcg_h, dtype=np.float64)
    presc_in = timeline["prescribed_mcg_h"].to_numpy(dtype=np.float64)
    actual = simulate(actual_in, dt_h, params)
    # the reference restarts wherever the actual does, so both start from steady state together
    presc = simulate(np.where(np.isfinite(actual_in), presc_in, np.nan), dt_h, params)
    settle_h = r.number("pharmacokinetics_model", "settle_half_lives") * params.half_life_h
    settle_bins = int(np.ceil(settle_h / dt_h))
    unknown = ~np.isfinite(actual_in)
    settled = np.ones(len(actual_in), dtype=bool)
    for i in np.flatnonzero(unknown):
        settled[i: i + settle_bins + 1] = False
    if len(settled) and np.isfinite(actual_in[0]):
        settled[:settle_bins] = False  # the start assumes steady state
        settled[:settle_bins] |= np.isclose(actual_in[:settle_bins], actual_in[0]).all()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(presc > 0, actual / presc, np.where(actual > 0, np.inf, 1.0))
    rel = np.where(np.isfinite(actual), rel, np.nan)
    return pd.DataFrame({
        "csf_actual_mcg_ml": actual,
        "csf_prescribed_mcg_ml": presc,
        "steady_state_mcg_ml": presc_in / params.clearance_ml_h,
        "relative": rel,
        "settled": settled,
    }, index=timeline.index)
