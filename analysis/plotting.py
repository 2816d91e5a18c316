"""The drawing the report figures (``analysis.reports.figures``) and the research plots
(``analysis.research.plots``) share: one palette, one time axis, the shading of procedures, motor
stalls and missing history, the prescribed / commanded / rotor-confirmed steps and the reservoir.

Times are Unix seconds (UTC): :func:`date_num` and :func:`date_nums` turn them into matplotlib's
date numbers, and :func:`time_axis` shows them in a zone and names it.  Shading carries hatching
and every line its own dash pattern, so a figure can still be read in black and white.

matplotlib is imported inside the functions only: importing this module (or ``analysis``) does
not load it, so the bedside check never does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle, StepPatch

# One colour per meaning, for every figure.
COLORS = {
    "prescribed": "#000000",
    "commanded": "#7a7a7a",
    "delivered": "#1f5fbf",  # rotor-confirmed
    "reservoir": "#1f5fbf",
    "dose": "#0d2a55",  # the prescribed daily dose as a step line
    "program": "#1f5fbf",  # a program change
    "stall": "#c62828",
    "empty": "#c62828",
    "gap": "#8a8a8a",  # no history in the log
    "procedure": "#cfdcf0",
    "procedure_edge": "#5b7bb0",
    "procedure_text": "#203a66",
    "alarm": "#d35400",
    "refill": "#2e7d32",
    "measured": "#6a1b9a",  # the residual measured at a refill
    "bolus": "#6a1b9a",
    "session": "#555555",
    "bars": "#1f5fbf",  # histograms
    "outside": "#c62828",  # outside the guideline
    "grid": "#e6e6e6",
    "no_data": "#666666",
}

# The shading of a time span, by kind, and the least width (a fraction of the view) it is drawn
# with, so that a short stall still shows.
SPAN_STYLE: dict[str, dict[str, Any]] = {
    "procedure": {"facecolor": COLORS["procedure"], "edgecolor": COLORS["procedure_edge"],
                  "linewidth": 0.6, "zorder": 0},
    "stall": {"facecolor": "none", "edgecolor": COLORS["stall"], "hatch": "////", "linewidth": 0,
              "zorder": 1},
    "gap": {"facecolor": "none", "edgecolor": COLORS["gap"], "hatch": "xx", "linewidth": 0, "zorder": 1},
}
MIN_WIDTH = {"procedure": 0.002, "stall": 0.004, "gap": 0.002}

# prescribed, commanded, delivered (rotor-confirmed): colour, dash pattern, width, z-order
STEP_STYLE: dict[str, dict[str, Any]] = {
    "prescribed": {"color": COLORS["prescribed"], "linestyle": (0, (4, 2)), "linewidth": 1.1, "zorder": 4},
    "commanded": {"color": COLORS["commanded"], "linestyle": ":", "linewidth": 1.0, "zorder": 3},
    "delivered": {"color": COLORS["delivered"], "linestyle": "-", "linewidth": 1.6, "zorder": 3},
}


@cache
def _epoch() -> float:
    import matplotlib.dates as mdates

    return float(mdates.date2num(np.datetime64(0, "s")))


def date_num(seconds: float) -> float:
    """Unix seconds as a matplotlib date number."""
    return float(seconds) / 86_400.0 + _epoch()


def date_nums(seconds: Any) -> np.ndarray:
    """Unix seconds (any array-like) as matplotlib date numbers."""
    return np.asarray(seconds, dtype=float) / 86_400.0 + _epoch()


def time_axis(
    ax: Axes, zone: dt.tzinfo, label: str | None, xlim: tuple[float, float] | None = None
) -> None:
    """Ticks for times (date numbers) shown in ``zone``, with the date as the offset; ``label``
    under them (it should name the zone), or no tick labels at all when it is None (a panel above
    another on the same axis).  ``xlim`` is in Unix seconds."""
    import matplotlib.dates as mdates

    if xlim is not None:
        ax.set_xlim(date_num(xlim[0]), date_num(xlim[1]))
    loc = mdates.AutoDateLocator(tz=zone, minticks=4, maxticks=9)
    fmt = mdates.ConciseDateFormatter(loc, tz=zone, show_offset=True)
    fmt.formats = ["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"]
    fmt.zero_formats = ["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M"]
    fmt.offset_formats = ["", "%Y", "%b %Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"]
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(fmt)
    ax.grid(axis="x", color=COLORS["grid"], linewidth=0.5, zorder=0)
    ax.tick_params(axis="x", labelbottom=label is not None)
    if label is not None:
        ax.set_xlabel(label)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def visible(
    spans: Iterable[tuple[float, float]], xlim: tuple[float, float], min_frac: float
) -> list[tuple[float, float]]:
    """The spans (Unix seconds) inside the view ``xlim``, each widened about its middle to at
    least ``min_frac`` of the view."""
    lo, hi = xlim
    w = (hi - lo) * min_frac
    out = []
    for start, end in spans:
        if end < lo or start > hi:
            continue
        a, b = float(start), float(max(end, start))
        if b - a < w:
            mid = (a + b) / 2
            a, b = mid - w / 2, mid + w / 2
        out.append((a, b))
    return out


def shade(
    ax: Axes,
    spans: Iterable[tuple[float, float]],
    kind: str,
    *,
    label: str | None = None,
    xlim: tuple[float, float] | None = None,
) -> Rectangle | None:
    """Shade each span (Unix seconds) across the axes in the style of ``kind`` (``procedure``,
    ``stall`` or ``gap``): with ``xlim``, only those in view, widened to :data:`MIN_WIDTH`.  The
    first is labelled ``label`` for a legend and returned (None when nothing was drawn)."""
    if xlim is not None:
        pairs = visible(spans, xlim, MIN_WIDTH[kind])
    else:
        pairs = [(float(a), float(b)) for a, b in spans]
    first = None
    for a, b in pairs:
        patch = ax.axvspan(date_num(a), date_num(b), **SPAN_STYLE[kind])
        if first is None:
            first = patch
            if label is not None:
                patch.set_label(label)
    return first


def delivery_steps(
    ax: Axes,
    edges_s: np.ndarray,
    prescribed: np.ndarray,
    commanded: np.ndarray,
    delivered: np.ndarray,
    labels: Sequence[str] = ("prescribed", "commanded by the pump", "delivered (rotor-confirmed)"),
) -> list[StepPatch]:
    """The prescribed, commanded and rotor-confirmed amounts per bin as steps between
    ``edges_s`` (Unix seconds, one more than the values), labelled ``labels``; returns the three
    steps in that order (for a legend)."""
    x = date_nums(edges_s)
    return [
        ax.stairs(values, x, baseline=None, label=label, **STEP_STYLE[key])
        for key, values, label in zip(
            ("prescribed", "commanded", "delivered"), (prescribed, commanded, delivered), labels, strict=True
        )
    ]


def reservoir(
    ax: Axes,
    time_s: np.ndarray,
    ml: np.ndarray,
    *,
    alarm_ml: float | None = None,
    empty_ml: float | None = None,
    refills_s: Iterable[float] = (),
    label: str = "reservoir (pump's estimate)",
) -> list[Line2D]:
    """The pump's reservoir estimate (mL) over time (none without times), with the low-reservoir
    alarm level and the empty level when given, and a vertical line at each refill; returns the
    labelled lines, in that order, for a legend."""
    out = []
    if len(time_s):
        out += ax.plot(date_nums(time_s), ml, color=COLORS["reservoir"], linewidth=1.4, zorder=3, label=label)
    if alarm_ml is not None:
        out.append(
            ax.axhline(alarm_ml, color=COLORS["alarm"], linestyle=(0, (5, 2)), linewidth=1.1, zorder=2,
                       label=f"low-reservoir alarm ({alarm_ml:g} mL)")
        )
    if empty_ml is not None:
        out.append(
            ax.axhline(empty_ml, color=COLORS["empty"], linestyle=":", linewidth=1.0, zorder=2,
                       label=f"empty ({empty_ml:g} mL)")
        )
    for i, t in enumerate(refills_s):
        refill = ax.axvline(date_num(t), color=COLORS["refill"], linestyle=(0, (1, 1.5)), linewidth=1.0,
                            zorder=2, label="refill" if i == 0 else "_nolegend_")
        if i == 0:
            out.append(refill)
    return out


def no_data(ax: Axes, text: str = "no data") -> None:
    """``text`` in the middle of empty axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=COLORS["no_data"],
            parse_math=False)
