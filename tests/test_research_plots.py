"""``analysis.research.plots``: each figure is a matplotlib Figure on the Agg canvas with the expected
axes, units and lines (no image comparison); matplotlib stays out of ``import analysis``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
from conftest import ROOT, SAMPLES
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.research import plots
from analysis.research import tables as history_tables
from parsers import read_log


def sample(name: str):
    return read_log(SAMPLES / f"{name}.itblog")


def procedures(name: str) -> list[dict]:
    return json.loads((SAMPLES / f"{name}.truth.json").read_text())["procedures"]


def legend_texts(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def check_figure(fig, n_axes: int = 1) -> None:
    assert isinstance(fig, Figure)
    assert isinstance(fig.canvas, FigureCanvasAgg)
    assert len(fig.axes) == n_axes


@pytest.fixture(scope="module")
def sample_tables() -> dict[str, pd.DataFrame]:
    parts: dict[str, list[pd.DataFrame]] = {n: [] for n in history_tables.TABLES}
    for name in ("normal_year", "titration_violation", "mri_delayed_recovery", "mri_prompt_recovery",
                 "intermittent_stalls_failure", "over_infusion_refill", "pocket_fill"):
        for k, df in history_tables.tables(sample(name), procedures(name)).items():
            parts[k].append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def test_importing_the_analysis_tables_and_cohort_runner_does_not_import_matplotlib():
    code = ("import sys, analysis, analysis.research.tables, analysis.research.cohort; "
            "print(any(m.startswith('matplotlib') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_daily_dose_trajectory_prescribed_against_delivered():
    log = sample("normal_year")
    fig = plots.daily_dose_figure(log)
    check_figure(fig)
    ax = fig.axes[0]
    assert "UTC" in ax.get_xlabel() and "mcg/day" in ax.get_ylabel()
    assert legend_texts(ax) == ["prescribed (program)", "commanded", "delivered (rotor-confirmed)"]
    dd = history_tables.daily_dose(log)
    steps = [p for p in ax.patches if p.get_label() == "prescribed (program)"]
    assert len(steps) == 1
    np.testing.assert_allclose(steps[0].get_data().values, dd["prescribed_daily_dose_mcg"])
    # the same figure from the table
    fig2 = plots.daily_dose_figure(dd, title="from the table")
    assert fig2.axes[0].get_title() == "from the table"


def test_daily_dose_shades_missing_history():
    log = sample("corrupted_log")
    ax = plots.daily_dose_figure(log).axes[0]
    missing = int(history_tables.daily_dose(log)["history_missing"].sum())
    shaded = [p for p in ax.patches if p.get_label() not in legend_texts(ax)]
    assert missing > 0 and len(shaded) == missing


def test_reservoir_sawtooth_with_refills_and_the_low_reservoir_threshold():
    log = sample("normal_year")
    fig = plots.reservoir_figure(log)
    check_figure(fig)
    ax = fig.axes[0]
    assert "mL" in ax.get_ylabel() and "UTC" in ax.get_xlabel()
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    threshold = lines[f"low-reservoir alarm ({log.status.low_reservoir_alarm_ml:g} mL)"]
    assert set(threshold.get_ydata()) == {log.status.low_reservoir_alarm_ml}
    assert len(lines["reservoir estimate"].get_ydata()) == len(log.delivery)
    refill_lines = [ln for ln in ax.get_lines() if ln.get_color() == plots.COLORS["refill"]]
    assert len(refill_lines) == 4
    np.testing.assert_allclose(lines["residual measured at refill"].get_ydata(),
                               history_tables.refills(log)["measured_residual_ml"])


def test_stall_timeline_marks_the_ongoing_stall_and_the_mri_window():
    log = sample("mri_delayed_recovery")
    fig = plots.stall_timeline_figure(log, procedures("mri_delayed_recovery"))
    check_figure(fig)
    ax = fig.axes[0]
    assert "UTC" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["MRI"]
    bars = [c for c in ax.collections if c.get_hatch()]
    assert len(bars) == 1  # the one stall, hatched: still stalled at interrogation
    assert "procedure window" in legend_texts(ax)
    quiet = plots.stall_timeline_figure(sample("normal_year")).axes[0]
    assert [t.get_text() for t in quiet.texts] == ["no motor stalls"]


def test_stall_timeline_lanes_by_cause():
    st = history_tables.stalls(sample("intermittent_stalls_failure"))
    ax = plots.stall_timeline_figure(st).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["spontaneous"]
    assert len(ax.collections) == len(st) == 4


def test_cohort_distributions(sample_tables, tmp_path):
    figs = plots.cohort_figures(sample_tables)
    assert set(figs) == {"refill_discrepancy", "stall_durations", "titration_steps"}
    for f in figs.values():
        assert isinstance(f, Figure) and isinstance(f.canvas, FigureCanvasAgg)
    ml_ax, pct_ax = figs["refill_discrepancy"].axes
    assert "(mL)" in ml_ax.get_xlabel() and "%" in pct_ax.get_xlabel()
    refills = sample_tables["refills"]
    assert sum(p.get_height() for p in ml_ax.patches) == refills["discrepancy_ml"].notna().sum()
    assert any("14.5%" in t for t in legend_texts(pct_ax))
    st_ax = figs["stall_durations"].axes[0]
    assert "(h)" in st_ax.get_ylabel()
    labels = [t.get_text().split("\n")[0] for t in st_ax.get_xticklabels()]
    assert labels == ["MRI", "spontaneous"]
    ti_ax = figs["titration_steps"].axes[0]
    assert "%" in ti_ax.get_xlabel()
    assert legend_texts(ti_ax) == ["guideline maximum +15%", "within guideline", "outside guideline"]
    steps = sample_tables["titration"]["kind"].isin(["increase", "decrease"]).sum()
    assert sum(p.get_height() for p in ti_ax.patches) == steps
    out = plots.save_png(figs["titration_steps"], tmp_path / "t.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cohort_figures_with_no_rows_still_draw():
    empty = {n: history_tables.empty_table(n) for n in history_tables.TABLES}
    figs = plots.cohort_figures(empty)
    assert [t.get_text() for t in figs["stall_durations"].axes[0].texts] == ["no motor stalls"]
    assert [t.get_text() for t in figs["titration_steps"].axes[0].texts] == ["no data"]
