"""Matplotlib drawings of the report plots (imported only when a report is written).

Each :class:`.blocks.Plot` is a stack of panels sharing one time axis, drawn into a rectangle of
a figure: by ``pdf`` on an A4 page, or on its own figure by :func:`standalone` for the HTML
report.  The palette, the time axis in the user's zone, the shading and the delivery and
reservoir drawing are :mod:`analysis.plotting`'s, shared with the research plots; this module lays
the panels out and adds what only the reports show (the legends above the panels, the
interrogation line, the event strip, the projection to empty).  Figures are built with
:class:`matplotlib.figure.Figure` directly (no pyplot, no GUI backend).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from ..plotting import (
    COLORS,
    MIN_WIDTH,
    date_num,
    date_nums,
    delivery_steps,
    no_data,
    reservoir,
    shade,
    time_axis,
    visible,
)
from .blocks import DeliveryPanel, DosePanel, EventPanel, Plot, ReservoirPanel, Span

RC: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "axes.linewidth": 0.6,
    "pdf.fonttype": 3,
    "svg.fonttype": "path",
    "hatch.linewidth": 0.7,
}
LEGEND_PT = 30.0  # space above each panel for its legend (points)
AXIS_PT = 34.0  # space under the last panel for tick labels and the axis label


def _pairs(spans: list[Span]) -> list[tuple[float, float]]:
    return [(s.start_s, s.end_s) for s in spans]


def _shade(
    ax: Axes,
    procs: list[Span],
    stalls: list[Span],
    gaps: list[Span],
    xlim: tuple[int, int],
    label_procs: bool = True,
) -> list:
    handles = []
    label = (procs[0].label or "procedure") if procs else None
    first = shade(ax, _pairs(procs), "procedure", xlim=xlim, label=label)
    if first is not None:
        handles.append(first)
    for s in procs if label_procs else []:
        for a, b in visible([(s.start_s, s.end_s)], xlim, MIN_WIDTH["procedure"]):
            trans = blended_transform_factory(ax.transData, ax.transAxes)
            where = ((a + b) / 2 - xlim[0]) / (xlim[1] - xlim[0])
            x, ha = (
                ((a + b) / 2, "center")
                if 0.08 < where < 0.92
                else (b, "left")
                if where <= 0.08
                else (a, "right")
            )
            ax.text(
                date_num(x),
                0.97,
                s.label,
                transform=trans,
                ha=ha,
                va="top",
                fontsize=7,
                fontweight="bold",
                color=COLORS["procedure_text"],
                parse_math=False,
                clip_on=True,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
    for spans, kind, label in ((stalls, "stall", "motor stalled"), (gaps, "gap", "no history")):
        first = shade(ax, _pairs(spans), kind, xlim=xlim, label=label)
        if first is not None:
            handles.append(first)
    return handles


def _now(ax: Axes, now_s: int, xlim: tuple[int, int]) -> list:
    if not xlim[0] <= now_s <= xlim[1]:
        return []
    return [ax.axvline(date_num(now_s), color="black", linewidth=1.0, linestyle="-", zorder=5,
                       label="interrogation")]


def _legend(ax: Axes, handles: list, ncol: int = 4) -> None:
    if handles:
        ax.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(0.0, 1.01),
            ncol=ncol,
            frameon=False,
            borderaxespad=0.0,
            handlelength=2.2,
            columnspacing=1.2,
            fontsize=7.5,
        )


def _delivery(ax: Axes, p: DeliveryPanel, xlim: tuple[int, int], procs_labelled: bool) -> None:
    sel = (p.end_s > xlim[0]) & (p.start_s < xlim[1])
    handles = _shade(ax, p.procedures, p.stalls, p.gaps, xlim, procs_labelled)
    top = 1.0
    if sel.any():
        edges = np.append(p.start_s[sel], p.end_s[sel][-1])
        prescribed, commanded, rotor = p.prescribed[sel], p.commanded[sel], p.rotor[sel]
        steps = delivery_steps(ax, edges, prescribed, commanded, rotor)
        handles = [steps[0], steps[2], steps[1], *handles]  # prescribed, delivered, commanded
        for v in (prescribed, commanded, rotor):
            if np.isfinite(v).any():
                top = max(top, float(np.nanmax(v)))
    else:
        no_data(ax, "no delivery history in this period")
    ax.set_ylim(-top * 0.03, top * 1.22)
    ax.set_ylabel("baclofen (mcg/h)")
    _legend(ax, handles + _now(ax, p.now_s, xlim))


def _reservoir(ax: Axes, p: ReservoirPanel, xlim: tuple[int, int]) -> None:
    procs = _shade(ax, p.procedures, [], [], xlim, label_procs=False)
    sel = (p.time_s >= xlim[0] - 86_400) & (p.time_s <= xlim[1] + 86_400)
    top = 1.0
    if sel.any() and np.isfinite(p.ml[sel]).any():
        top = max(top, float(np.nanmax(p.ml[sel])))
    handles: list = reservoir(
        ax,
        p.time_s[sel],
        p.ml[sel],
        alarm_ml=p.alarm_ml,
        empty_ml=p.empty_ml,
        refills_s=[t for t in p.refills if xlim[0] <= t <= xlim[1]],
    )
    if p.projection:
        (t0, v0), (t1, v1) = p.projection
        (line,) = ax.plot(
            [date_num(t0), date_num(t1)],
            [v0, v1],
            color=COLORS["reservoir"],
            linestyle=(0, (1, 2)),
            linewidth=1.2,
            zorder=3,
            label="projection at the programmed rate",
        )
        handles.append(line)
    if p.status_ml is not None and xlim[0] <= p.now_s <= xlim[1]:
        ax.plot([date_num(p.now_s)], [p.status_ml], marker="o", color=COLORS["reservoir"], markersize=4,
                zorder=6)
        top = max(top, p.status_ml)
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("reservoir (mL)")
    _legend(ax, handles[:1] + procs + handles[1:] + _now(ax, p.now_s, xlim), ncol=3)


_LANE_STYLE = {
    "Stalls": (COLORS["stall"], "v"),
    "Alarms": (COLORS["alarm"], "D"),
    "Refills": (COLORS["refill"], "^"),
    "Boluses": (COLORS["bolus"], "o"),
    "Programming": (COLORS["program"], "s"),
    "Sessions": (COLORS["session"], "|"),
}


def _events(ax: Axes, p: EventPanel, xlim: tuple[int, int]) -> None:
    _shade(ax, p.procedures, [], [], xlim, label_procs=False)
    n = len(p.lanes)
    min_w = (xlim[1] - xlim[0]) * 0.004
    for k, (name, marks) in enumerate(p.lanes):
        y = n - 1 - k
        colour, marker = _LANE_STYLE.get(name, ("#333333", "o"))
        ax.axhline(y, color="#dddddd", linewidth=0.5, zorder=0)
        pts = []
        labelled: list[float] = []
        inside = [m for m in marks if (m.end_s or m.start_s) >= xlim[0] and m.start_s <= xlim[1]]
        for m in inside:
            if m.end_s is not None:
                a, b = float(m.start_s), float(max(m.end_s, m.start_s + min_w))
                ax.plot([date_num(a), date_num(b)], [y, y], color=colour, linewidth=5, solid_capstyle="butt",
                        zorder=3)
            else:
                pts.append(m.start_s)
            if name == "Alarms" and m.label and len(inside) <= 6:
                x = float(m.start_s)
                if all(abs(x - q) > (xlim[1] - xlim[0]) * 0.12 for q in labelled):
                    labelled.append(x)
                    right = (x - xlim[0]) / (xlim[1] - xlim[0]) > 0.8
                    ax.text(
                        date_num(max(x, xlim[0])),
                        y + 0.2,
                        m.label,
                        fontsize=6.5,
                        color=colour,
                        va="bottom",
                        ha="right" if right else "left",
                        parse_math=False,
                        clip_on=True,
                    )
        if pts:
            ax.plot(
                date_nums(pts),
                np.full(len(pts), y),
                linestyle="none",
                marker=marker,
                color=colour,
                markersize=5 if marker != "|" else 9,
                markeredgewidth=1.2,
                zorder=4,
            )
    ax.set_yticks(range(n))
    ax.set_yticklabels([name for name, _ in reversed(p.lanes)])
    ax.set_ylim(-0.6, n - 0.2)
    ax.tick_params(axis="y", length=0)
    ax.set_ylabel("")
    _now(ax, p.now_s, xlim)


def _dose(ax: Axes, p: DosePanel, xlim: tuple[int, int]) -> None:
    top = 1.0
    handles = []
    if len(p.time_s):
        label = "prescribed daily dose" + (" (from the delivery history)" if p.inferred else "")
        handles += ax.step(date_nums(p.time_s), p.dose, where="post", color=COLORS["dose"], linewidth=1.6,
                           zorder=3, label=label)
        if np.isfinite(p.dose).any():
            top = max(top, float(np.nanmax(p.dose)))
        ch = [t for t in p.changes if xlim[0] <= t <= xlim[1]]
        if ch:
            idx = np.searchsorted(p.time_s, ch, side="right") - 1
            handles += ax.plot(date_nums(ch), p.dose[idx], linestyle="none", marker="s",
                               color=COLORS["program"], markersize=4, zorder=4, label="program change")
    else:
        no_data(ax, "no program in the log")
    ax.set_ylim(0, top * 1.2)
    ax.set_ylabel("dose (mcg/day)")
    _legend(ax, handles + _now(ax, p.now_s, xlim))


def draw(fig: Figure, plot: Plot, rect: tuple[float, float, float, float]) -> None:
    """Draw ``plot`` into ``rect`` (left, bottom, width, height in figure fractions)."""
    x0, y0, w, h = rect
    fig_h_pt = fig.get_figheight() * 72
    legend = LEGEND_PT / fig_h_pt
    axis = AXIS_PT / fig_h_pt
    weights = [p.height for p in plot.panels]
    needs_legend = [not isinstance(p, EventPanel) for p in plot.panels]
    gaps = sum(legend if nl else 8 / fig_h_pt for nl in needs_legend)
    usable = h - axis - gaps
    y = y0 + h
    shared = None
    for i, (panel, weight) in enumerate(zip(plot.panels, weights, strict=True)):
        y -= legend if needs_legend[i] else 8 / fig_h_pt
        ph = usable * weight / sum(weights)
        y -= ph
        ax = fig.add_axes((x0, y, w, ph), sharex=shared)
        shared = shared or ax
        if isinstance(panel, DeliveryPanel):
            _delivery(ax, panel, plot.xlim, procs_labelled=True)
        elif isinstance(panel, ReservoirPanel):
            _reservoir(ax, panel, plot.xlim)
        elif isinstance(panel, EventPanel):
            _events(ax, panel, plot.xlim)
        elif isinstance(panel, DosePanel):
            _dose(ax, panel, plot.xlim)
        last = i == len(plot.panels) - 1
        time_axis(ax, plot.zone, f"Time: {plot.zone_label}" if last else None, plot.xlim)
        ax.yaxis.set_label_coords(-0.075, 0.5)


def panel_height_in(plot: Plot) -> float:
    """A good height (inches) for ``plot`` drawn 7.3 in wide on its own."""
    return 0.6 + sum(
        2.1 * p.height + (LEGEND_PT / 72 if not isinstance(p, EventPanel) else 0.12) for p in plot.panels
    )


def standalone(plot: Plot, width_in: float = 7.6) -> Figure:
    """``plot`` on a figure of its own (for the HTML report)."""
    h = panel_height_in(plot)
    fig = Figure(figsize=(width_in, h))
    left, right = 0.95 / width_in, 0.25 / width_in
    draw(fig, plot, (left, 0.05 / h, 1 - left - right, 1 - 0.15 / h - 0.05 / h))
    return fig
