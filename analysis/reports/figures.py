"""Matplotlib drawings of the report plots (imported only when a report is written).

Each :class:`content.Plot` is a stack of panels sharing one time axis, drawn into a
rectangle of a figure: by ``pdf`` on an A4 page, or on its own figure by :func:`standalone`
for the HTML report.  Times are shown in the user's zone; shading carries hatching and every
line its own dash pattern, so the plots survive black-and-white printing.  Figures are built
with :class:`matplotlib.figure.Figure` directly (no pyplot, no GUI backend).
"""

from __future__ import annotations

import datetime as dt

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from .content import DeliveryPanel, DosePanel, EventPanel, Plot, ReservoirPanel, Span

_EPOCH = float(mdates.date2num(np.datetime64(0, "s")))
RC = {
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
PROC_FILL = "#cfdcf0"
STALL = "#c62828"
GAP = "#8a8a8a"
PRESCRIBED = "#000000"
ROTOR = "#1f5fbf"
COMMANDED = "#7a7a7a"
LEGEND_PT = 30.0  # space above each panel for its legend (points)
AXIS_PT = 34.0  # space under the last panel for tick labels and the axis label


def _dn(s: np.ndarray | float | int) -> np.ndarray | float:
    """Unix seconds as matplotlib date numbers."""
    return np.asarray(s, dtype=float) / 86_400.0 + _EPOCH if np.ndim(s) else float(s) / 86_400.0 + _EPOCH


def _visible(
    spans: list[Span], xlim: tuple[int, int], min_frac: float = 0.004
) -> list[tuple[float, float, str]]:
    """Spans inside the view, widened to at least ``min_frac`` of it so a short stall shows."""
    lo, hi = xlim
    w = (hi - lo) * min_frac
    out = []
    for s in spans:
        if s.end_s < lo or s.start_s > hi:
            continue
        a, b = float(s.start_s), float(max(s.end_s, s.start_s))
        if b - a < w:
            mid = (a + b) / 2
            a, b = mid - w / 2, mid + w / 2
        out.append((a, b, s.label))
    return out


def _shade(
    ax: Axes,
    procs: list[Span],
    stalls: list[Span],
    gaps: list[Span],
    xlim: tuple[int, int],
    label_procs: bool = True,
) -> list:
    handles = []
    for a, b, label in _visible(procs, xlim, 0.002):
        ax.axvspan(_dn(a), _dn(b), facecolor=PROC_FILL, edgecolor="#5b7bb0", linewidth=0.6, zorder=0)
        if label_procs:
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
                _dn(x),
                0.97,
                label,
                transform=trans,
                ha=ha,
                va="top",
                fontsize=7,
                fontweight="bold",
                color="#203a66",
                parse_math=False,
                clip_on=True,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
    if procs and _visible(procs, xlim):
        handles.append(Patch(facecolor=PROC_FILL, edgecolor="#5b7bb0", label=procs[0].label or "procedure"))
    for a, b, _ in _visible(stalls, xlim):
        ax.axvspan(_dn(a), _dn(b), facecolor="none", edgecolor=STALL, hatch="////", linewidth=0, zorder=1)
    if _visible(stalls, xlim):
        handles.append(Patch(facecolor="none", edgecolor=STALL, hatch="////", label="motor stalled"))
    for a, b, _ in _visible(gaps, xlim, 0.002):
        ax.axvspan(_dn(a), _dn(b), facecolor="none", edgecolor=GAP, hatch="xx", linewidth=0, zorder=1)
    if _visible(gaps, xlim, 0.002):
        handles.append(Patch(facecolor="none", edgecolor=GAP, hatch="xx", label="no history"))
    return handles


def _now(ax: Axes, now_s: int, xlim: tuple[int, int]) -> list:
    if not xlim[0] <= now_s <= xlim[1]:
        return []
    ax.axvline(_dn(now_s), color="black", linewidth=1.0, linestyle="-", zorder=5)
    return [Line2D([], [], color="black", linewidth=1.0, label="interrogation")]


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
        edges = _dn(np.append(p.start_s[sel], p.end_s[sel][-1]))
        for values, style in (
            (
                p.prescribed,
                {
                    "color": PRESCRIBED,
                    "linestyle": (0, (4, 2)),
                    "linewidth": 1.1,
                    "label": "prescribed",
                    "zorder": 4,
                },
            ),
            (
                p.commanded,
                {
                    "color": COMMANDED,
                    "linestyle": ":",
                    "linewidth": 1.0,
                    "label": "commanded by the pump",
                    "zorder": 3,
                },
            ),
            (
                p.rotor,
                {
                    "color": ROTOR,
                    "linestyle": "-",
                    "linewidth": 1.6,
                    "label": "delivered (rotor-confirmed)",
                    "zorder": 3,
                },
            ),
        ):
            v = values[sel]
            ax.stairs(v, edges, baseline=None, **style)
            if np.isfinite(v).any():
                top = max(top, float(np.nanmax(v)))
    else:
        ax.text(
            0.5,
            0.5,
            "no delivery history in this period",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            parse_math=False,
        )
    ax.set_ylim(-top * 0.03, top * 1.22)
    ax.set_ylabel("baclofen (mcg/h)")
    lines = [
        Line2D([], [], color=PRESCRIBED, linestyle=(0, (4, 2)), linewidth=1.1, label="prescribed"),
        Line2D([], [], color=ROTOR, linewidth=1.6, label="delivered (rotor-confirmed)"),
        Line2D([], [], color=COMMANDED, linestyle=":", linewidth=1.0, label="commanded by the pump"),
    ]
    _legend(ax, lines + handles + _now(ax, p.now_s, xlim))


def _reservoir(ax: Axes, p: ReservoirPanel, xlim: tuple[int, int]) -> None:
    handles = _shade(ax, p.procedures, [], [], xlim, label_procs=False)
    sel = (p.time_s >= xlim[0] - 86_400) & (p.time_s <= xlim[1] + 86_400)
    top = 1.0
    if sel.any() and np.isfinite(p.ml[sel]).any():
        ax.plot(_dn(p.time_s[sel]), p.ml[sel], color=ROTOR, linewidth=1.4, zorder=3)
        top = max(top, float(np.nanmax(p.ml[sel])))
    handles.insert(0, Line2D([], [], color=ROTOR, linewidth=1.4, label="reservoir (pump's estimate)"))
    if p.alarm_ml is not None:
        ax.axhline(p.alarm_ml, color="#d35400", linestyle=(0, (5, 2)), linewidth=1.1, zorder=2)
        handles.append(
            Line2D(
                [],
                [],
                color="#d35400",
                linestyle=(0, (5, 2)),
                linewidth=1.1,
                label=f"low-reservoir alarm ({p.alarm_ml:g} mL)",
            )
        )
    ax.axhline(p.empty_ml, color=STALL, linestyle=":", linewidth=1.0, zorder=2)
    handles.append(
        Line2D([], [], color=STALL, linestyle=":", linewidth=1.0, label=f"empty ({p.empty_ml:g} mL)")
    )
    refills = [t for t in p.refills if xlim[0] <= t <= xlim[1]]
    for t in refills:
        ax.axvline(_dn(t), color="#2e7d32", linestyle=(0, (1, 1.5)), linewidth=1.0, zorder=2)
    if refills:
        handles.append(
            Line2D([], [], color="#2e7d32", linestyle=(0, (1, 1.5)), linewidth=1.0, label="refill")
        )
    if p.projection:
        (t0, v0), (t1, v1) = p.projection
        ax.plot([_dn(t0), _dn(t1)], [v0, v1], color=ROTOR, linestyle=(0, (1, 2)), linewidth=1.2, zorder=3)
        handles.append(
            Line2D(
                [],
                [],
                color=ROTOR,
                linestyle=(0, (1, 2)),
                linewidth=1.2,
                label="projection at the programmed rate",
            )
        )
    if p.status_ml is not None and xlim[0] <= p.now_s <= xlim[1]:
        ax.plot([_dn(p.now_s)], [p.status_ml], marker="o", color=ROTOR, markersize=4, zorder=6)
        top = max(top, p.status_ml)
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("reservoir (mL)")
    _legend(ax, handles + _now(ax, p.now_s, xlim), ncol=3)


_LANE_STYLE = {
    "Stalls": (STALL, "v"),
    "Alarms": ("#d35400", "D"),
    "Refills": ("#2e7d32", "^"),
    "Boluses": ("#6a1b9a", "o"),
    "Programming": ("#1f5fbf", "s"),
    "Sessions": ("#555555", "|"),
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
                ax.plot([_dn(a), _dn(b)], [y, y], color=colour, linewidth=5, solid_capstyle="butt", zorder=3)
            else:
                pts.append(m.start_s)
            if name == "Alarms" and m.label and len(inside) <= 6:
                x = float(m.start_s)
                if all(abs(x - q) > (xlim[1] - xlim[0]) * 0.12 for q in labelled):
                    labelled.append(x)
                    right = (x - xlim[0]) / (xlim[1] - xlim[0]) > 0.8
                    ax.text(
                        _dn(max(x, xlim[0])),
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
                _dn(np.array(pts)),
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
        ax.step(_dn(p.time_s), p.dose, where="post", color="#0d2a55", linewidth=1.6, zorder=3)
        if np.isfinite(p.dose).any():
            top = max(top, float(np.nanmax(p.dose)))
        handles.append(
            Line2D(
                [],
                [],
                color="#0d2a55",
                linewidth=1.6,
                label="prescribed daily dose" + (" (from the delivery history)" if p.inferred else ""),
            )
        )
        ch = [t for t in p.changes if xlim[0] <= t <= xlim[1]]
        if ch:
            idx = np.searchsorted(p.time_s, ch, side="right") - 1
            ax.plot(
                _dn(np.array(ch)),
                p.dose[idx],
                linestyle="none",
                marker="s",
                color="#1f5fbf",
                markersize=4,
                zorder=4,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="s",
                    color="#1f5fbf",
                    markersize=4,
                    label="program change",
                )
            )
    else:
        ax.text(
            0.5,
            0.5,
            "no program in the log",
            transform=ax.transAxes,
            ha="center",
            va="center",
            parse_math=False,
        )
    ax.set_ylim(0, top * 1.2)
    ax.set_ylabel("dose (mcg/day)")
    _legend(ax, handles + _now(ax, p.now_s, xlim))


def _time_axis(ax: Axes, xlim: tuple[int, int], zone: dt.tzinfo, labels: bool, zone_label: str) -> None:
    ax.set_xlim(_dn(xlim[0]), _dn(xlim[1]))
    loc = mdates.AutoDateLocator(tz=zone, minticks=4, maxticks=9)
    fmt = mdates.ConciseDateFormatter(loc, tz=zone, show_offset=True)
    fmt.formats = ["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"]
    fmt.zero_formats = ["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M"]
    fmt.offset_formats = ["", "%Y", "%b %Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"]
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(fmt)
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.5, zorder=0)
    ax.tick_params(axis="x", labelbottom=labels)
    if labels:
        ax.set_xlabel(f"Time: {zone_label}")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


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
        _time_axis(ax, plot.xlim, plot.zone, i == len(plot.panels) - 1, plot.zone_label)
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
