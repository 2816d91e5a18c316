"""The one-compartment CSF model: steady state, half-life decay, unknown input, rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.pk import PkParameters, csf_estimate, simulate
from clinical.rules import get_rules

P = PkParameters(half_life_h=1.5, clearance_ml_h=30.0)


def test_constant_rate_stays_at_steady_state():
    c = simulate(np.full(48, 12.0), 1.0, P)
    assert c == pytest.approx(12.0 / 30.0)


def test_level_halves_every_half_life_after_delivery_stops():
    rate = np.concatenate([np.full(10, 12.0), np.zeros(12)])
    c = simulate(rate, 0.5, P)
    ss = 12.0 / 30.0
    assert c[9] == pytest.approx(ss)
    assert c[9 + 3] == pytest.approx(ss / 2)  # 3 steps of 0.5 h = one half-life
    assert c[9 + 6] == pytest.approx(ss / 4)


def test_step_up_reaches_the_new_steady_state():
    c = simulate(np.concatenate([np.full(5, 10.0), np.full(20, 20.0)]), 0.5, P)
    assert c[4 + 3] == pytest.approx((10 + 10 * 0.5) / 30)  # half way after one half-life
    assert c[-1] == pytest.approx(20.0 / 30.0, rel=0.01)


def test_unknown_input_gives_unknown_level_then_restarts():
    c = simulate(np.array([10.0, np.nan, np.nan, 20.0]), 1.0, P)
    assert np.isnan(c[1]) and np.isnan(c[2])
    assert c[3] == pytest.approx(20.0 / 30.0)


def test_longer_half_life_from_rules_decays_slower():
    slow = PkParameters.from_rules(get_rules({"pharmacokinetics": {"csf_half_life_h": 3.0}}))
    assert slow.half_life_h == 3.0
    rate = np.concatenate([np.full(4, 12.0), np.zeros(3)])
    assert simulate(rate, 1.0, slow)[-1] == pytest.approx(0.4 * 2 ** (-1.0))
    assert simulate(rate, 1.0, P)[-1] == pytest.approx(0.4 * 2 ** (-2.0))


def test_csf_estimate_relative_to_prescription():
    idx = pd.date_range("2024-01-01", periods=24, freq="1h", tz="UTC")
    tl = pd.DataFrame({"end": idx + pd.Timedelta("1h"), "prescribed_mcg_h": 10.0}, index=idx)
    delivered = np.full(24, 10.0)
    delivered[10:14] = 0.0
    csf = csf_estimate(tl, delivered)
    assert csf["relative"].iloc[:10].to_numpy() == pytest.approx(1.0)
    assert csf["relative"].iloc[13] == pytest.approx(2 ** (-4 / 1.5))
    assert csf["steady_state_mcg_ml"].iloc[0] == pytest.approx(10.0 / 30.0)
    assert csf["settled"].iloc[12]
    delivered[5] = np.nan
    csf = csf_estimate(tl, delivered)
    assert not csf["settled"].iloc[6] and np.isnan(csf["relative"].iloc[5])
