"""Research figures (matplotlib): one pump's daily dose trajectory, reservoir sawtooth and
stall timeline, and a cohort's distributions of refill discrepancy, stall durations and
titration step sizes.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the non-interactive Agg
canvas (no pyplot, no global state, safe in worker processes); save it with
:func:`save_png`.  Axes carry units; times are UTC and labelled so.  The palette, the time axis,
the shading and the delivery and reservoir drawing are :mod:`analysis.plotting`'s, shared with
the printable reports.  matplotlib is imported here and inside ``analysis.plotting``'s functions
only, so ``import analysis`` never needs it (install the ``plots`` extra).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clinical.rules import Rules, get_rules
from parsers import InterrogationLog

from ..context import Procedure, coerce_procedures
from ..plotting import COLORS, date_num, date_nums, delivery_steps, no_data, reservoir, shade, time_axis
from ..timeutil import DAY, to_seconds
from . import tables as history_tables

FIGSIZE = (9.0, 4.0)


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = FIGSIZE) -> Figure:
    """An empty Figure on an Agg canvas (no pyplot, no display)."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    fig.subplots(rows, cols)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically (a reader never sees half a file)."""
    import io

    from parsers.writer import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, [buf.getvalue()])
    return Path(path)


def _title(log: InterrogationLog | None, what: str) -> str:
    if log is None:
        return what
    return f"{what}: pump {log.header.serial} ({log.path.name})"


# ----- one pump -----------------------------------------------------------------------------

def daily_dose_figure(data: InterrogationLog | pd.DataFrame, *, title: str | None = None,
                      rules: Rules | Mapping[str, Any] | str | None = None) -> Figure:
    """Prescribed against delivered daily dose (mcg/day) per UTC day.

    ``data`` is a log or its ``history_tables.daily_dose`` table.  Delivered and commanded are
    scaled to a whole day from the hours the delivery history covers; days with missing
    history are shaded.
    """
    if isinstance(data, InterrogationLog):
        log, dd = data, history_tables.daily_dose(data, rules=rules)
    else:
        log, dd = None, data
    fig = new_figure()
    ax = fig.axes[0]
    ax.set_title(title or _title(log, "Daily dose"))
    ax.set_ylabel("daily dose (mcg/day)")
    time_axis(ax, dt.UTC, "date (UTC)")
    if dd.empty:
        no_data(ax)
        return fig
    x = to_seconds(dd["day"])
    edges = np.append(x, x[-1] + DAY)
    cov = dd["hours_covered"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        cmd = np.where(cov > 0, dd["commanded_mcg"].to_numpy(dtype=float) / cov * 24, np.nan)
        rot = np.where(cov > 0, dd["rotor_mcg"].to_numpy(dtype=float) / cov * 24, np.nan)
    presc = dd["prescribed_daily_dose_mcg"].to_numpy(dtype=float)
    delivery_steps(ax, edges, presc, cmd, rot,
                   labels=("prescribed (program)", "commanded", "delivered (rotor-confirmed)"))
    shade(ax, [(day, day + DAY) for day in x[dd["history_missing"].to_numpy(dtype=bool)]], "gap")
    top = np.nanmax(np.concatenate([presc, rot, cmd, [1.0]]))
    ax.set_ylim(0, top * 1.15)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def reservoir_figure(log: InterrogationLog, *, title: str | None = None,
                     rules: Rules | Mapping[str, Any] | str | None = None) -> Figure:
    """The pump's reservoir estimate over time (mL): the refill sawtooth, each refill, the
    residual measured at it, and the low-reservoir alarm threshold."""
    r = get_rules(rules)
    fig = new_figure()
    ax = fig.axes[0]
    ax.set_title(title or _title(log, "Reservoir"))
    ax.set_ylabel("reservoir volume (mL, pump estimate)")
    time_axis(ax, dt.UTC, "time (UTC)")
    d = log.delivery
    threshold = (float(log.status.low_reservoir_alarm_ml)
                 if log.status_ok and log.status.low_reservoir_alarm_ml > 0
                 else r.number("pump", "low_reservoir_alarm_ml_default"))
    if d.empty:
        reservoir(ax, np.zeros(0), np.zeros(0), alarm_ml=threshold)
        no_data(ax)
        ax.legend(loc="upper right", fontsize="small")
        return fig
    rf = history_tables.refills(log, rules=r)
    t = to_seconds(rf["time_utc"]) if len(rf) else np.zeros(0, np.int64)
    reservoir(ax, to_seconds(d["time_utc"]), d["reservoir_ml"].to_numpy(dtype=float), alarm_ml=threshold,
              refills_s=t.tolist(), label="reservoir estimate")
    if len(rf):
        ax.plot(date_nums(t), rf["measured_residual_ml"].to_numpy(dtype=float), "x", color=COLORS["measured"],
                label="residual measured at refill")
    ax.set_ylim(bottom=0, top=max(float(log.header.model_ml), float(d["reservoir_ml"].max())) * 1.05)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def stall_timeline_figure(data: InterrogationLog | pd.DataFrame,
                          procedures: Iterable[Procedure | Mapping[str, Any]] | None = None, *,
                          title: str | None = None,
                          rules: Rules | Mapping[str, Any] | str | None = None) -> Figure:
    """Motor stalls as bars on a UTC time line, one lane per cause; a stall still going at
    interrogation is hatched; given procedure windows are shaded.

    ``data`` is a log (its stalls are found with ``procedures``) or a ``history_tables.stalls`` table.
    """
    procs = coerce_procedures(procedures)
    if isinstance(data, InterrogationLog):
        log, st = data, history_tables.stalls(data, procs, rules=rules)
    else:
        log, st = None, data
    fig = new_figure(size=(9.0, 3.0))
    ax = fig.axes[0]
    ax.set_title(title or _title(log, "Motor stalls"))
    time_axis(ax, dt.UTC, "time (UTC)")
    ax.set_ylabel("cause")
    shade(ax, [(p.start_s, p.end_s) for p in procs], "procedure", label="procedure window")
    if st.empty:
        no_data(ax, "no motor stalls")
        ax.set_yticks([])
        return fig
    lanes = _cause_labels(st)
    names = sorted(set(lanes), key=lambda s: (s == "spontaneous", s))
    start = to_seconds(st["start_utc"])
    dur_s = st["duration_h"].to_numpy(dtype=float) * 3600
    ongoing = st["ongoing"].to_numpy(dtype=bool)
    for k, name in enumerate(names):
        sel = np.flatnonzero(lanes == name)
        for j in sel:
            ax.broken_barh([(date_num(start[j]), max(dur_s[j], 60.0) / DAY)], (k - 0.35, 0.7),
                           facecolors=COLORS["stall"], hatch="//" if ongoing[j] else None,
                           edgecolor="black" if ongoing[j] else COLORS["stall"], zorder=2)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.7, len(names) - 0.3)
    if ongoing.any():
        ax.plot([], [], " ", label="hatched: still stalled at interrogation")
    if procs or ongoing.any():
        ax.legend(loc="upper left", fontsize="small")
    return fig


def _cause_labels(st: pd.DataFrame) -> np.ndarray:
    """``spontaneous`` or the procedure kind in upper case (``MRI``, ``DIATHERMY``)."""
    kinds = st["procedure_kind"].astype(object).where(st["cause"] == "procedure", None)
    return np.array(["spontaneous" if (k is None or k != k) else str(k).upper() for k in kinds],
                    dtype=object)


# ----- cohort -------------------------------------------------------------------------------

def refill_discrepancy_figure(refills: pd.DataFrame, *,
                              rules: Rules | Mapping[str, Any] | str | None = None) -> Figure:
    """Distribution of refill discrepancies (measured minus expected residual) in mL and as a
    percentage of the volume the pump counted, with the labeled flow accuracy marked."""
    r = get_rules(rules)
    acc = 100 * r.number("pump", "flow_accuracy_fraction")
    fig = new_figure(1, 2)
    ax_ml, ax_pct = fig.axes
    fig.suptitle(f"Refill discrepancy ({len(refills)} refills)")
    ax_ml.set_xlabel("measured minus expected residual (mL)")
    ax_pct.set_xlabel("discrepancy (% of volume used since previous refill)")
    for ax in (ax_ml, ax_pct):
        ax.set_ylabel("refills")
    ml = refills["discrepancy_ml"].dropna().to_numpy(dtype=float) if len(refills) else np.zeros(0)
    pct = (refills["discrepancy_pct_of_used"].dropna().to_numpy(dtype=float)
           if len(refills) else np.zeros(0))
    if len(ml):
        ax_ml.hist(ml, bins=min(40, max(5, len(ml) // 5)), color=COLORS["bars"])
    else:
        no_data(ax_ml)
    limits = r.get("pump", "refill_discrepancy_ml")
    for k, lim in enumerate(sorted({float(v) for v in limits.values()})):
        models = "/".join(f"{m} mL" for m, v in limits.items() if float(v) == lim)
        ax_ml.axvline(lim, color=COLORS["alarm"], ls="--" if k == 0 else ":", lw=1,
                      label=f"±{lim:g} mL consequential ({models} pump)")
        ax_ml.axvline(-lim, color=COLORS["alarm"], ls="--" if k == 0 else ":", lw=1)
    ax_ml.legend(loc="upper left", fontsize="small")
    if len(pct):
        ax_pct.hist(pct, bins=min(40, max(5, len(pct) // 5)), color=COLORS["bars"])
    else:
        no_data(ax_pct)
    ax_pct.axvline(acc, color=COLORS["alarm"], ls="--", lw=1, label=f"±{acc:g}% labeled accuracy")
    ax_pct.axvline(-acc, color=COLORS["alarm"], ls="--", lw=1)
    ax_pct.legend(loc="upper right", fontsize="small")
    return fig


def stall_durations_figure(stalls: pd.DataFrame) -> Figure:
    """Stall durations (h) by cause: after MRI, after diathermy, spontaneous (box and points;
    stalls still going at interrogation are counted to the interrogation, hollow markers)."""
    fig = new_figure()
    ax = fig.axes[0]
    ax.set_title(f"Motor stall durations by cause ({len(stalls)} stalls)")
    ax.set_ylabel("stall duration (h)")
    ax.set_xlabel("cause")
    if stalls.empty:
        no_data(ax, "no motor stalls")
        return fig
    lanes = _cause_labels(stalls)
    names = sorted(set(lanes), key=lambda s: (s == "spontaneous", s))
    dur = stalls["duration_h"].to_numpy(dtype=float)
    ongoing = stalls["ongoing"].to_numpy(dtype=bool)
    data = [dur[lanes == n] for n in names]
    ax.boxplot(data, positions=range(len(names)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for k, n in enumerate(names):
        sel = lanes == n
        x = k + rng.uniform(-0.15, 0.15, sel.sum())
        ax.scatter(x[~ongoing[sel]], dur[sel][~ongoing[sel]], s=12, color=COLORS["stall"], zorder=3)
        ax.scatter(x[ongoing[sel]], dur[sel][ongoing[sel]], s=18, facecolors="none",
                   edgecolors=COLORS["stall"], zorder=3)
    if ongoing.any():
        ax.scatter([], [], s=18, facecolors="none", edgecolors=COLORS["stall"],
                   label="still stalled at interrogation (duration to it)")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xticks(range(len(names)), [f"{n}\n(n={len(d)})" for n, d in zip(names, data, strict=True)])
    if (dur > 0).all() and dur.max() / max(dur.min(), 1e-9) > 50:
        ax.set_yscale("log")
    return fig


def titration_steps_figure(titration: pd.DataFrame, *,
                           rules: Rules | Mapping[str, Any] | str | None = None) -> Figure:
    """Distribution of titration step sizes (% of the previous daily dose), with the
    guideline's maximum increase marked; steps outside the guideline are stacked in red."""
    r = get_rules(rules)
    limit = 100 * r.number("titration", "max_step_fraction")
    fig = new_figure()
    ax = fig.axes[0]
    steps = titration[titration["kind"].isin(["increase", "decrease"])] if len(titration) else titration
    ax.set_title(f"Titration step sizes ({len(steps)} steps)")
    ax.set_xlabel("step size (% of previous daily dose)")
    ax.set_ylabel("steps")
    ax.axvline(limit, color=COLORS["alarm"], ls="--", lw=1, label=f"guideline maximum +{limit:g}%")
    if steps.empty:
        no_data(ax)
    else:
        pct = steps["step_pct"].to_numpy(dtype=float)
        ok = steps["within_guideline"].to_numpy(dtype=bool)
        bins = np.histogram_bin_edges(pct[np.isfinite(pct)], bins=min(40, max(5, len(pct) // 5)))
        ax.hist([pct[ok], pct[~ok]], bins=bins.tolist(), stacked=True,
                color=[COLORS["bars"], COLORS["outside"]],
                label=["within guideline", "outside guideline"])
    ax.legend(loc="upper right", fontsize="small")
    return fig


def cohort_figures(tables: Mapping[str, pd.DataFrame], *,
                   rules: Rules | Mapping[str, Any] | str | None = None) -> dict[str, Figure]:
    """The cohort distributions from combined tables (``refills``, ``stalls``, ``titration``):
    figure name -> Figure."""
    empty = history_tables.empty_table
    return {
        "refill_discrepancy": refill_discrepancy_figure(tables.get("refills", empty("refills")), rules=rules),
        "stall_durations": stall_durations_figure(tables.get("stalls", empty("stalls"))),
        "titration_steps": titration_steps_figure(tables.get("titration", empty("titration")), rules=rules),
    }


__all__ = [
    "cohort_figures", "daily_dose_figure", "new_figure", "refill_discrepancy_figure",
    "reservoir_figure", "save_png", "stall_durations_figure", "stall_timeline_figure",
    "titration_steps_figure",
]
