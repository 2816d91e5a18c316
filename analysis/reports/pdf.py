"""The PDF renderer: A4 portrait pages drawn with matplotlib and saved with ``PdfPages``.

A small flow layout in points: text is measured with matplotlib's own font metrics and
wrapped to the column, paragraphs and table rows continue on the next page when the page is
full (a table repeats its header there), and every page gets the running header, the
disclaimer and "Page i of N" in its footer.  Text is drawn with ``parse_math=False`` so a
``$`` from the log is never read as mathtext.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from matplotlib.textpath import TextToPath

from . import figures
from .blocks import Banner, Bullets, Callout, Heading, PageBreak, Para, Plot, Report, RiskPair, Table
from .sections import level_word
from .text import clean

W, H = 595.28, 841.89  # A4 in points
LEFT, RIGHT, TOP = 42.0, 42.0, 38.0
BOTTOM = 70.0  # the footer lives below this
CW = W - LEFT - RIGHT
FONT = "DejaVu Sans"
VERDICT_STYLE = {  # fill, text colour: dark fills carry white text, so a grey print stays legible
    "URGENT": ("#b00020", "white"),
    "REVIEW": ("#f5b800", "black"),
    "OK": ("#2e7d32", "white"),
}
LEVEL_STYLE = {
    "high": ("#b00020", "white"),
    "moderate": ("#e65100", "white"),
    "low": ("#f5d000", "black"),
    "cannot_rule_out": ("#5c6bc0", "white"),
    "none": ("#e0e0e0", "black"),
}
STYLES = {  # size, bold, italic, colour
    "body": (9.0, False, False, "black"),
    "strong": (9.0, True, False, "black"),
    "small": (7.8, False, False, "#222222"),
    "note": (8.5, False, True, "#333333"),
}
_TTP = TextToPath()


@lru_cache(maxsize=65536)
def _width(s: str, size: float, bold: bool) -> float:
    prop = FontProperties(family=FONT, size=size, weight="bold" if bold else "normal")
    return float(_TTP.get_text_width_height_descent(s, prop, ismath=False)[0])


def text_width(s: str, size: float, bold: bool = False) -> float:
    """Width of ``s`` in points."""
    return sum(_width(w, size, bold) for w in s.split(" ")) + _width(" ", size, bold) * s.count(" ")


def wrap(text: str, width: float, size: float, bold: bool = False) -> list[str]:
    """``text`` wrapped to ``width`` points (words longer than a line are cut)."""
    width *= 0.98
    lines: list[str] = []
    space = _width(" ", size, bold)
    for para in clean(text).split("\n"):
        cur, cur_w = "", 0.0
        for word in para.split(" "):
            ww = _width(word, size, bold)
            if ww > width:  # a word longer than the line: cut it by characters
                if cur:
                    lines.append(cur)
                    cur, cur_w = "", 0.0
                piece = ""
                for ch in word:
                    if _width(piece + ch, size, bold) > width and piece:
                        lines.append(piece)
                        piece = ""
                    piece += ch
                cur, cur_w = piece, _width(piece, size, bold)
                continue
            if not cur:
                cur, cur_w = word, ww
            elif cur_w + space + ww <= width:
                cur, cur_w = cur + " " + word, cur_w + space + ww
            else:
                lines.append(cur)
                cur, cur_w = word, ww
        lines.append(cur)
    return lines


class _Doc:
    """Pages under construction and a cursor ``y`` (points from the bottom)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.pages: list[Figure] = []
        self.y = 0.0
        self.fresh = False

    # -- primitives ---------------------------------------------------------------------------
    @property
    def fig(self) -> Figure:
        return self.pages[-1]

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float,
        bold: bool = False,
        colour: str = "black",
        ha: str = "left",
        va: str = "baseline",
        italic: bool = False,
        fig: Figure | None = None,
    ) -> None:
        (fig or self.fig).text(
            x / W,
            y / H,
            clean(s),
            fontsize=size,
            fontweight="bold" if bold else "normal",
            fontstyle="italic" if italic else "normal",
            color=colour,
            ha=ha,
            va=va,
            family=FONT,
            parse_math=False,
        )

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        face: str = "none",
        edge: str = "none",
        lw: float = 0.0,
        fig: Figure | None = None,
    ) -> None:
        fig = fig or self.fig
        fig.add_artist(
            Rectangle(
                (x / W, y / H),
                w / W,
                h / H,
                transform=fig.transFigure,
                facecolor=face,
                edgecolor=edge,
                linewidth=lw,
            )
        )

    def hline(
        self,
        y: float,
        x0: float = LEFT,
        x1: float = W - RIGHT,
        colour: str = "#999999",
        lw: float = 0.5,
        fig: Figure | None = None,
    ) -> None:
        self.rect(x0, y, x1 - x0, 0, edge=colour, lw=lw, fig=fig)

    def new_page(self) -> None:
        self.pages.append(Figure(figsize=(W / 72, H / 72)))
        self.y = H - TOP
        if len(self.pages) > 1:
            self.text(LEFT, self.y, self.report.running, 7.5, colour="#444444", va="top")
            self.y -= 12
            self.hline(self.y, colour="#bbbbbb")
            self.y -= 10
        self.fresh = True

    def room(self) -> float:
        return self.y - BOTTOM

    def need(self, h: float) -> None:
        """Start a new page unless ``h`` points are left."""
        if h > self.room() and not self.fresh:
            self.new_page()

    def lines(
        self,
        lines: list[str],
        x: float,
        size: float,
        bold: bool = False,
        colour: str = "black",
        italic: bool = False,
        bullet: str | None = None,
        lead: float = 1.3,
    ) -> None:
        """Draw wrapped lines, continuing on new pages as needed."""
        lh = size * lead
        for i, line in enumerate(lines):
            if lh > self.room():
                self.new_page()
            self.text(x, self.y - size, line, size, bold, colour, italic=italic)
            if bullet and i == 0:
                self.text(x - 9, self.y - size, bullet, size, bold, colour)
            self.y -= lh
            self.fresh = False

    # -- blocks -------------------------------------------------------------------------------
    def title(self) -> None:
        r = self.report
        self.text(LEFT, self.y - 16, r.title, 16, bold=True)
        self.y -= 24
        for line in r.lines:
            self.lines(wrap(line, CW, 8.5), LEFT, 8.5, colour="#111111")
        self.y -= 4

    def heading(self, text: str, size: float = 11.0, keep: float = 30.0) -> None:
        self.y -= 5
        self.need(len(wrap(text, CW, size, True)) * size * 1.3 + keep)
        self.lines(wrap(text, CW, size, True), LEFT, size, bold=True, colour="#0d2a55")
        self.y -= 1

    def para(self, p: Para) -> None:
        size, bold, italic, colour = STYLES.get(p.style, STYLES["body"])
        self.y -= 2
        self.lines(wrap(p.text, CW, size, bold), LEFT, size, bold, colour, italic)
        self.y -= 3

    def bullets(self, b: Bullets) -> None:
        size, bold, italic, colour = STYLES.get(b.style, STYLES["body"])
        for item in b.items:
            self.lines(wrap(item, CW - 12, size, bold), LEFT + 12, size, bold, colour, italic, bullet="•")
            self.y -= 1.5
        self.y -= 2

    def banner(self, b: Banner) -> None:
        fill, fg = VERDICT_STYLE.get(b.verdict, ("#444444", "white"))
        h = 60.0
        self.need(h + 6)
        y0 = self.y - h
        self.rect(LEFT, y0, CW, h, face=fill, edge="black", lw=2.0)
        self.text(LEFT + 12, self.y - 12, "VERDICT", 7.5, True, fg)
        word_w = text_width(b.verdict, 30, True)
        self.text(LEFT + 12, y0 + 13, b.verdict, 30, True, fg)
        x = LEFT + 12 + word_w + 18
        hl = wrap(b.headline, W - RIGHT - 10 - x, 11, True)[:3]
        yy = y0 + h / 2 + (len(hl) - 1) * 7 - 4
        for line in hl:
            self.text(x, yy, line, 11, True, fg)
            yy -= 14
        self.y = y0 - 8
        self.fresh = False

    def callout(self, c: Callout) -> None:
        wrapped = [wrap(x, CW - 20, 10, True) for x in c.lines]
        h = 22 + sum(len(w) for w in wrapped) * 13 + 6
        self.need(h + 6)
        y0 = self.y - h
        self.rect(LEFT, y0, CW, h, face="#f3f6fb", edge="#0d2a55", lw=1.5)
        self.text(LEFT + 10, self.y - 14, c.title, 9, True, "#0d2a55")
        yy = self.y - 30
        for w in wrapped:
            for line in w:
                self.text(LEFT + 10, yy, line, 10, True)
                yy -= 13
        self.y = y0 - 8
        self.fresh = False

    @staticmethod
    def _pair_height(rp: RiskPair) -> float:
        colw = (CW - 14.0) / 2
        return max(
            30 + sum(len(wrap(x, colw - 22, 8, False)) * 10.4 + 2 for x in reasons) + 6
            for _, _, reasons in rp.risks
        )

    def _keep(self, b: Any) -> float:
        """The height of the start of block ``b``, kept on the page with the heading before it."""
        if isinstance(b, RiskPair):
            return min(self._pair_height(b), 300) + 4
        if isinstance(b, Bullets) and b.items:
            size = STYLES.get(b.style, STYLES["body"])[0]
            return min(len(wrap(b.items[0], CW - 12, size)), 4) * size * 1.3 + 4
        if isinstance(b, Para):
            size = STYLES.get(b.style, STYLES["body"])[0]
            return min(len(wrap(b.text, CW, size)), 3) * size * 1.3 + 4
        return 30.0

    def risk_pair(self, rp: RiskPair) -> None:
        gap = 14.0
        colw = (CW - gap) / 2
        cols = [(t, lvl, [wrap(x, colw - 22, 8, False) for x in reasons]) for t, lvl, reasons in rp.risks]
        h = self._pair_height(rp)
        if h > H - TOP - BOTTOM - 40:  # too long to sit side by side: one after the other
            for t, lvl, reasons in rp.risks:
                self.heading(f"{t}: {level_word(lvl)}", 10)
                self.bullets(Bullets(reasons, "small"))
            return
        self.need(h + 4)
        top = self.y
        for i, (t, lvl, rs) in enumerate(cols):
            x = LEFT + i * (colw + gap)
            self.rect(x, top - h, colw, h, face="white", edge="#888888", lw=0.8)
            fill, fg = LEVEL_STYLE.get(lvl, ("#e0e0e0", "black"))
            word = level_word(lvl)
            ww = text_width(word, 10.5, True) + 12
            self.text(x + 8, top - 17, t.upper(), 9.5, True)
            tx = x + colw - ww - 6
            self.rect(tx, top - 22, ww, 17, face=fill, edge="black", lw=0.8)
            self.text(tx + 6, top - 17.5, word, 10.5, True, fg)
            yy = top - 36
            for w in rs:
                self.text(x + 8, yy, "•", 8)
                for line in w:
                    self.text(x + 16, yy, line, 8)
                    yy -= 10.4
                yy -= 2
        self.y = top - h - 8
        self.fresh = False

    def table(self, t: Table) -> None:
        if not t.rows:
            if t.title:
                self.heading(t.title, 10.5)
            self.para(Para(t.empty, "note"))
            return
        size, pad = 8.0, 3.0
        lh = size * 1.28
        total = sum(c.width for c in t.columns)
        widths = [CW * c.width / total for c in t.columns]
        xs = [LEFT + sum(widths[:i]) for i in range(len(widths))]

        def header() -> None:
            if not t.header:
                return
            cells = [wrap(c.title, w - 2 * pad, size, True) for c, w in zip(t.columns, widths, strict=True)]
            hh = max(len(c) for c in cells) * lh + 2 * pad
            self.rect(LEFT, self.y - hh, CW, hh, face="#e4e8ef")
            for c, col, x, w in zip(cells, t.columns, xs, widths, strict=True):
                self._cell(c, x, w, col.align, pad, size, True)
            self.y -= hh
            self.fresh = False

        first_h = (
            max(
                len(wrap(c, w - 2 * pad, size, 0 in t.strong)) for c, w in zip(t.rows[0], widths, strict=True)
            )
            * lh
            + 2 * pad
        )
        title_h = (len(wrap(t.title, CW, 10.5, True)) * 10.5 * 1.3 + 6) if t.title else 0.0
        self.need(title_h + min(first_h, 80) + (lh + 2 * pad) * t.header + 4)
        if t.title:
            self.y -= 5
            self.lines(wrap(t.title, CW, 10.5, True), LEFT, 10.5, bold=True, colour="#0d2a55")
            self.y -= 1
        header()
        for i, row in enumerate(t.rows):
            bold = i in t.strong
            cells = [
                wrap(c, w - 2 * pad, size, bold and (t.strong_cols is None or j < t.strong_cols))
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            n = max(len(c) for c in cells)
            start = 0
            while start < n:
                fit = int((self.room() - 2 * pad) // lh)
                if fit < min(n - start, 2) or fit < 1:
                    self.new_page()
                    self.text(LEFT, self.y - 9, f"{t.title or 'Table'} (continued)", 9, True, "#0d2a55")
                    self.y -= 16
                    header()
                    continue
                take = min(fit, n - start)
                part = [c[start : start + take] for c in cells]
                hh = take * lh + 2 * pad
                if bold:
                    self.rect(LEFT, self.y - hh, CW, hh, face="#f6eeee")
                for j, (c, col, x, w) in enumerate(zip(part, t.columns, xs, widths, strict=True)):
                    self._cell(
                        c, x, w, col.align, pad, size, bold and (t.strong_cols is None or j < t.strong_cols)
                    )
                self.y -= hh
                self.hline(self.y, colour="#cccccc", lw=0.4)
                self.fresh = False
                start += take
        if t.note:
            self.y -= 2
            self.lines(wrap(t.note, CW, 7.5), LEFT, 7.5, italic=True, colour="#333333")
        self.y -= 4

    def _cell(
        self, lines: list[str], x: float, w: float, align: str, pad: float, size: float, bold: bool
    ) -> None:
        yy = self.y - pad - size
        for line in lines:
            if align == "right":
                self.text(x + w - pad, yy, line, size, bold, ha="right")
            else:
                self.text(x + pad, yy, line, size, bold)
            yy -= size * 1.28

    @staticmethod
    def _natural(p: Plot) -> float:
        cap = wrap(p.caption, CW, 7.8)
        return (
            18
            + sum(
                150 * q.height + (figures.LEGEND_PT if type(q).__name__ != "EventPanel" else 8)
                for q in p.panels
            )
            + figures.AXIS_PT
            + len(cap) * 10
            + 6
        )

    def plot(self, p: Plot, following: Any = None) -> None:
        cap = wrap(p.caption, CW, 7.8)
        natural = self._natural(p)
        if natural > self.room():
            self.new_page()
        h = min(natural, self.room())
        alone = not isinstance(following, Plot) or natural + self._natural(following) > self.room()
        if self.fresh and alone:  # the page is the plot's own: use it
            h = min(self.room() - 4, natural * 1.45)
        self.heading(p.title, 11)
        top = self.y
        plot_h = h - 18 - len(cap) * 10 - 6
        bottom = top - plot_h
        left = LEFT + 48
        figures.draw(self.fig, p, (left / W, bottom / H, (W - RIGHT - left) / W, plot_h / H))
        self.y = bottom - 4
        self.lines(cap, LEFT, 7.8, colour="#333333", italic=True, lead=1.28)
        self.y -= 6
        self.fresh = False

    # -- whole document -----------------------------------------------------------------------
    def build(self) -> list[Figure]:
        self.new_page()
        self.title()
        blocks = self.report.blocks
        for i, b in enumerate(blocks):
            if isinstance(b, Banner):
                self.banner(b)
            elif isinstance(b, Heading):
                self.heading(b.text, keep=self._keep(blocks[i + 1]) if i + 1 < len(blocks) else 30.0)
            elif isinstance(b, Para):
                self.para(b)
            elif isinstance(b, Bullets):
                self.bullets(b)
            elif isinstance(b, RiskPair):
                self.risk_pair(b)
            elif isinstance(b, Callout):
                self.callout(b)
            elif isinstance(b, Table):
                self.table(b)
            elif isinstance(b, Plot):
                self.plot(b, blocks[i + 1] if i + 1 < len(blocks) else None)
            elif isinstance(b, PageBreak) and not self.fresh:
                self.new_page()
        if self.fresh and len(self.pages) > 1 and self.y >= H - TOP - 22.5:
            self.pages.pop()  # a trailing empty page
        self.footers()
        return self.pages

    def footers(self) -> None:
        n = len(self.pages)
        disc = wrap(self.report.disclaimer, CW - 80, 7.5, True)
        for i, fig in enumerate(self.pages, start=1):
            y = BOTTOM - 14
            self.hline(y + 6, colour="#888888", lw=0.6, fig=fig)
            for line in disc:
                self.text(LEFT, y - 4, line, 7.5, True, "#111111", fig=fig)
                y -= 9.5
            self.text(
                LEFT,
                y - 5,
                f"Generated {self.report.generated} by itb-telemetry.",
                6.5,
                colour="#555555",
                fig=fig,
            )
            self.text(W - RIGHT, BOTTOM - 18, f"Page {i} of {n}", 9, True, ha="right", fig=fig)


def build_pages(report: Report) -> list[Figure]:
    """The report as A4 matplotlib figures (one per page), footers included."""
    import matplotlib

    with matplotlib.rc_context(figures.RC):
        return _Doc(report).build()


def render(report: Report) -> bytes:
    """The report as PDF bytes."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(figures.RC):
        pages = _Doc(report).build()
        meta: dict[str, Any] = {
            "Title": clean(report.title),
            "Creator": "itb-telemetry",
            "Subject": clean(report.running),
            "Keywords": "intrathecal baclofen; ITB pump",
        }
        with PdfPages(buf, metadata=meta) as pdf:
            for fig in pages:
                pdf.savefig(fig)
    return buf.getvalue()
