"""Delivery reconstruction: flex steps, boluses, stalls, refills (concentration), gaps and
inferred spans marked, resolution, flex steps following the pump clock after a reset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_analysis_logbuilder import LogBuilder

from analysis import reconstruct
from analysis.episodes import collect
from analysis.piecewise import Piecewise
from parsers import read_log


def _tl(b: LogBuilder, tmp_path, until: int, resolution: str = "1h", **kw) -> pd.DataFrame:
    return reconstruct(read_log(b.write(tmp_path / "r.itblog", until, **kw)), resolution)


def _at(tl: pd.DataFrame, day: int, hour: int) -> pd.Series:
    return tl.loc[pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=day, hours=hour)]


def test_flex_steps_give_the_prescribed_rate_by_time_of_day(tmp_path):
    b = LogBuilder()
    b.program(b.t(), flex=[(0, 240), (420, 480), (1200, 120)])
    tl = _tl(b, tmp_path, b.t(days=3))
    for hour, dose in ((3, 240), (10, 480), (19, 480), (21, 120)):
        row = _at(tl, 1, hour)
        assert row["prescribed_mcg_h"] == pytest.approx(dose / 24)
        assert row["commanded_mcg_h"] == pytest.approx(dose / 24, rel=1e-3)
    assert not tl.loc[tl.index >= "2024-03-01 01:00+00:00", "inferred"].any()


def test_flex_program_daily_dose():
    from analysis.episodes import Program, Step

    p = Program(0, "flex", (Step(0, 240, 0.12), Step(420, 480, 0.24), Step(1200, 120, 0.06)), 2000)
    assert p.daily_dose_mcg == pytest.approx((240 * 420 + 480 * 780 + 120 * 240) / 1440)


def test_bolus_is_prescribed_and_commanded(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    b.bolus(b.t(days=1, hours=10, minutes=15), 50.0, duration_s=600)
    tl = _tl(b, tmp_path, b.t(days=2))
    row = _at(tl, 1, 10)
    assert row["prescribed_bolus_mcg_h"] == pytest.approx(50.0)
    assert row["prescribed_mcg_h"] == pytest.approx(60.0)
    assert row["commanded_mcg_h"] == pytest.approx(60.0, rel=1e-3)
    assert _at(tl, 1, 11)["prescribed_bolus_mcg_h"] == 0


def test_stall_shows_as_rotor_below_commanded(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    b.stall(b.t(days=1, hours=10, minutes=30), b.t(days=1, hours=13))
    tl = _tl(b, tmp_path, b.t(days=2))
    assert _at(tl, 1, 10)["rotor_mcg_h"] == pytest.approx(5.0)
    assert _at(tl, 1, 11)["rotor_mcg_h"] == 0 and _at(tl, 1, 11)["stalled_s"] == 3600
    assert _at(tl, 1, 13)["rotor_mcg_h"] == pytest.approx(10.0)
    assert _at(tl, 1, 11)["commanded_mcg_h"] == pytest.approx(10.0)


def test_refill_changes_the_drug_concentration(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    b.refill(b.t(days=1, hours=6), 20.0, conc=1000.0)
    tl = _tl(b, tmp_path, b.t(days=2))
    assert _at(tl, 0, 12)["concentration_mcg_ml"] == 2000
    assert _at(tl, 1, 12)["concentration_mcg_ml"] == 1000
    assert _at(tl, 0, 12)["concentration_inferred"]
    assert not _at(tl, 1, 12)["concentration_inferred"]
    # same program volume, half the drug: commanded mcg halves
    assert _at(tl, 1, 12)["commanded_mcg_h"] == pytest.approx(5.0, rel=1e-3)
    assert _at(tl, 1, 12)["programmed_concentration_mcg_ml"] == 2000


def test_damaged_pages_are_marked_never_filled(tmp_path):
    b = LogBuilder(page_size=256)
    b.program(b.t(), 240.0)
    tl = _tl(b, tmp_path, b.t(days=3), damage_pages=(4, 5))
    miss = tl[tl["history_missing"]]
    assert 10 <= len(miss) <= 16
    assert miss["commanded_mcg_h"].isna().all() and miss["rotor_mcg_h"].isna().all()
    assert (miss["coverage"] == 0).all()
    assert miss["inferred"].all()
    # the program is still known there
    assert miss["prescribed_mcg_h"].to_numpy() == pytest.approx(10.0)


def test_resolution_keeps_the_totals(tmp_path):
    b = LogBuilder()
    b.program(b.t(), flex=[(0, 240), (420, 480)])
    b.bolus(b.t(days=1, hours=3), 30.0)
    path = b.write(tmp_path / "r.itblog", b.t(days=3))
    log = read_log(path)
    h1, h6 = reconstruct(log, "1h"), reconstruct(log, "6h")
    assert h1["prescribed_mcg_h"].sum() == pytest.approx(h6["prescribed_mcg_h"].sum() * 6)
    assert h1["commanded_ml"].sum() == pytest.approx(h6["commanded_ml"].sum())
    assert len(h6) * 6 >= len(h1) - 6


def test_program_before_the_first_record_is_inferred(tmp_path):
    b = LogBuilder(page_size=256, ring_slots=6)  # the first program record is overwritten
    b.program(b.t(), 240.0)
    b.program(b.t(days=1, hours=20), 264.0)
    path = b.write(tmp_path / "w.itblog", b.t(days=2))
    log = read_log(path)
    assert "prescription" in log.events["event"].astype(str).tolist()
    tl = reconstruct(log)
    early = tl[tl.index < "2024-03-02 19:00+00:00"]
    assert early["prescription_inferred"].all()
    assert early["prescribed_mcg_h"].iloc[1:].to_numpy() == pytest.approx(10.0, rel=1e-3)
    assert not tl[tl.index >= "2024-03-02 21:00+00:00"]["prescription_inferred"].any()


def test_flex_follows_the_pump_clock_after_a_reset(tmp_path):
    b = LogBuilder()
    b.program(b.t(), flex=[(0, 240), (720, 480)])
    b.clock_jump(b.t(days=1, hours=5), 5 * 3600, kind="reset")  # pump now 2000-01-01 05:00
    tl = _tl(b, tmp_path, b.t(days=3))
    ok = tl["coverage"] == 1
    assert np.allclose(tl.loc[ok, "prescribed_mcg_h"], tl.loc[ok, "commanded_mcg_h"], rtol=1e-3)
    assert not tl["time_uncertain"].any()


def test_episodes_pair_boluses_and_sessions(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    b.bolus(b.t(hours=5), 20.0, duration_s=600)
    ep = collect(read_log(b.write(tmp_path / "e.itblog", b.t(days=1))))
    assert len(ep.boluses) == 1 and ep.boluses[0].end_s is not None
    assert ep.boluses[0].completed is True
    assert len(ep.sessions) == 2 and all(s.end_s is not None for s in ep.sessions)
    assert ep.programs[0].daily_dose_mcg == 240.0


def test_piecewise_integral_spreads_evenly_and_adds_overlaps():
    p = Piecewise.from_intervals(np.array([0, 50]), np.array([100, 150]), np.array([10.0, 20.0]))
    assert p.integral(0, 50) == pytest.approx(5.0)
    assert p.integral(50, 100) == pytest.approx(15.0)
    assert p.integral(-10, 1000) == pytest.approx(30.0)
    assert (p + Piecewise.empty()).integral(0, 150) == pytest.approx(30.0)
