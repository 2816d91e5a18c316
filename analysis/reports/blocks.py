"""The document model of the printable reports: plain blocks (headings, paragraphs, the verdict
banner, tables, plots...) that ``pdf`` and ``html`` both draw, so the two formats always carry the
same content in the same order.

Nothing here plots or imports matplotlib: a :class:`Plot` is a stack of panels of plain numbers
(:class:`DeliveryPanel`, :class:`ReservoirPanel`, :class:`EventPanel`, :class:`DosePanel`) that
``figures`` draws.  Times are Unix seconds (UTC); a plot carries the zone to show them in and its
label.  Strings from the log are kept as they are: each renderer escapes them for its format.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Heading:
    """A section heading."""

    text: str


@dataclass
class Para:
    """A paragraph; ``style`` is body, strong, small or note."""

    text: str
    style: str = "body"


@dataclass
class Bullets:
    """A bulleted list."""

    items: list[str]
    style: str = "body"


@dataclass
class Banner:
    """The verdict: a large coloured box with the word, then a one-line headline."""

    verdict: str
    headline: str


@dataclass
class RiskPair:
    """Withdrawal and overdose side by side: (title, level, reasons) each."""

    risks: list[tuple[str, str, list[str]]]


@dataclass
class Callout:
    """A boxed line or two that must not be missed (e.g. the next refill date)."""

    title: str
    lines: list[str]


@dataclass
class Column:
    """A table column: title, relative width, alignment."""

    title: str
    width: float
    align: str = "left"


@dataclass
class Table:
    """A table with a title; rows of strings; ``strong`` rows are emphasised."""

    title: str
    columns: list[Column]
    rows: list[list[str]]
    empty: str = "none"
    strong: set[int] = field(default_factory=set)
    note: str = ""
    header: bool = True
    strong_cols: int | None = None  # in strong rows, only the first columns are bold


@dataclass
class Span:
    """A shaded time span on a plot."""

    start_s: int
    end_s: int
    label: str = ""


@dataclass
class Mark:
    """One event on an event strip: a point (``end_s`` None) or a span."""

    start_s: int
    end_s: int | None = None
    label: str = ""


@dataclass
class DeliveryPanel:
    """Prescribed, commanded and rotor-confirmed delivery per bin (mcg/h)."""

    start_s: np.ndarray
    end_s: np.ndarray
    prescribed: np.ndarray
    commanded: np.ndarray
    rotor: np.ndarray
    stalls: list[Span]
    gaps: list[Span]
    procedures: list[Span]
    now_s: int
    height: float = 1.0


@dataclass
class ReservoirPanel:
    """The pump's reservoir estimate (mL) with the alarm and empty levels."""

    time_s: np.ndarray
    ml: np.ndarray
    alarm_ml: float | None
    empty_ml: float
    refills: list[int]
    now_s: int
    status_ml: float | None
    projection: list[tuple[int, float]] = field(default_factory=list)
    procedures: list[Span] = field(default_factory=list)
    height: float = 0.75
    note: str = ""


@dataclass
class EventPanel:
    """Lanes of events: (lane name, marks)."""

    lanes: list[tuple[str, list[Mark]]]
    now_s: int
    procedures: list[Span] = field(default_factory=list)
    height: float = 0.75


@dataclass
class DosePanel:
    """The prescribed daily dose over time (a step line) and its program changes."""

    time_s: np.ndarray
    dose: np.ndarray
    changes: list[int]
    now_s: int
    inferred: bool = False
    height: float = 0.75


@dataclass
class Plot:
    """A figure of panels sharing one time axis from ``xlim[0]`` to ``xlim[1]``."""

    key: str
    title: str
    caption: str
    xlim: tuple[int, int]
    panels: list[Any]
    zone: dt.tzinfo
    zone_label: str


@dataclass
class PageBreak:
    """Start a new page (PDF) or a printed page (HTML)."""


@dataclass
class Report:
    """A whole report: identity lines, a short running header, blocks, the disclaimer."""

    kind: str
    title: str
    lines: list[str]
    running: str
    blocks: list[Any]
    disclaimer: str
    generated: str
    verdict: str | None = None
