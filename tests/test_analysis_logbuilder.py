"""Tests that the hand-built logs of ``logbuilder.LogBuilder`` read back as intended."""

from __future__ import annotations

import numpy as np
import pandas as pd
from logbuilder import T0, UNIX_ITB, D, H, LogBuilder, analyse_built, iso, kinds, one, unix

from parsers import read_log

__all__ = ["T0", "UNIX_ITB", "D", "H", "LogBuilder", "analyse_built", "iso", "kinds", "one", "unix"]


# ----- tests of the builder itself ------------------------------------------------------------

def test_builder_writes_rows_that_follow_the_program(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    path = b.write(tmp_path / "a.itblog", b.t(days=2))
    log = read_log(path)
    assert not log.problems
    assert len(log.delivery) == 48
    per_hour = log.delivery["commanded_ml"].iloc[1:]
    assert np.allclose(per_hour, 240.0 / 2000 / 24)
    assert log.events["event"].astype(str).tolist()[:3] == ["telemetry_start", "prescription",
                                                            "telemetry_end"]


def test_builder_stall_shows_in_rows_and_records(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0).stall(b.t(hours=10, minutes=30), b.t(hours=13))
    log = read_log(b.write(tmp_path / "s.itblog", b.t(days=1)))
    d = log.delivery
    assert d["stalled_s"].sum() == 150 * 60
    assert (d["rotor_ml"] < d["commanded_ml"] - 1e-9).sum() == 3
    names = log.events["event"].astype(str).tolist()
    assert "motor_stall" in names and "motor_stall_recovery" in names


def test_builder_damaged_page_leaves_a_gap(tmp_path):
    b = LogBuilder(page_size=256)
    b.program(b.t(), 240.0)
    log = read_log(b.write(tmp_path / "g.itblog", b.t(days=2), damage_pages=(3,)))
    assert len(log.gaps) == 1
    assert pd.notna(log.gaps["start_utc"].iloc[0])
