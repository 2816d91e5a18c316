"""The HTML renderer: one self-contained, printable file.

Inline CSS (with print rules for A4: the disclaimer and page numbers in every printed page's
margin), figures as base64 SVG images (an SVG loaded as an image can run no script), a
Content-Security-Policy that forbids any request or script, and every string passed through
:func:`html.escape`: drug names, serials and alarm names come from the log and are not trusted.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from .blocks import Banner, Bullets, Callout, Heading, PageBreak, Para, Plot, Report, RiskPair, Table
from .sections import level_word
from .text import clean

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def esc(s: object) -> str:
    """``s`` escaped for HTML text and attribute values (quotes included)."""
    return html.escape(clean(s), quote=True)


def _css_string(s: str) -> str:
    """``s`` as a CSS string literal (for the printed footer)."""
    out = "".join(c if c.isalnum() or c in " .,:;()'-/" else f"\\{ord(c):06x}" for c in clean(s))
    return f'"{out}"'


def _style(report: Report) -> str:
    return (
        """
:root { --ink:#111; --navy:#0d2a55; --rule:#c8c8c8; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Segoe UI", Arial, sans-serif; color: var(--ink); margin: 0 auto;
       max-width: 190mm; padding: 10mm 6mm 16mm; font-size: 10.5pt; line-height: 1.38; }
h1 { font-size: 19pt; margin: 0 0 4pt; }
h2 { font-size: 13pt; color: var(--navy); margin: 14pt 0 4pt; break-after: avoid; page-break-after: avoid; }
.idlines p { margin: 1pt 0; font-size: 9.5pt; }
.verdict { display: flex; align-items: center; gap: 16pt; border: 3px solid #000; padding: 8pt 14pt;
           margin: 10pt 0 6pt; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.verdict .label { font-size: 8pt; font-weight: bold; letter-spacing: .08em; display: block; }
.verdict .word { font-size: 34pt; font-weight: 800; line-height: 1; }
.verdict .headline { font-size: 12.5pt; font-weight: bold; }
.verdict-URGENT { background: #b00020; color: #fff; }
.verdict-REVIEW { background: #f5b800; color: #000; }
.verdict-OK { background: #2e7d32; color: #fff; }
ul { margin: 3pt 0 6pt; padding-left: 18pt; }
li { margin: 1.5pt 0; }
.strong { font-weight: bold; }
.small { font-size: 8.8pt; }
.note { font-style: italic; color: #333; }
.risks { display: flex; gap: 10pt; break-inside: avoid; page-break-inside: avoid; }
.risk { flex: 1; border: 1px solid #888; padding: 6pt 8pt; }
.risk h3 { margin: 0 0 4pt; font-size: 10.5pt; display: flex; justify-content: space-between;
           align-items: center; gap: 6pt; }
.risk ul { font-size: 9pt; }
.level { border: 1px solid #000; padding: 1pt 6pt; font-size: 10.5pt; font-weight: bold; white-space: nowrap;
         -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.level-high { background: #b00020; color: #fff; } .level-moderate { background: #e65100; color: #fff; }
.level-low { background: #f5d000; color: #000; } .level-cannot_rule_out { background: #5c6bc0; color: #fff; }
.level-none { background: #e0e0e0; color: #000; }
.callout { border: 2px solid var(--navy); background: #f3f6fb; padding: 6pt 10pt; margin: 8pt 0;
           -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.callout p { margin: 2pt 0; font-weight: bold; font-size: 11pt; }
.callout .title { color: var(--navy); font-size: 9pt; }
table { border-collapse: collapse; width: 100%; margin: 3pt 0 8pt; font-size: 8.8pt; }
caption { text-align: left; font-weight: bold; color: var(--navy); font-size: 11pt; padding: 8pt 0 3pt;
          caption-side: top; }
th { background: #e4e8ef; text-align: left; padding: 3pt 4pt; -webkit-print-color-adjust: exact;
     print-color-adjust: exact; }
td { border-bottom: 1px solid var(--rule); padding: 3pt 4pt; vertical-align: top; overflow-wrap: anywhere;
     white-space: pre-line; }
td.right, th.right { text-align: right; }
tr.strong td { font-weight: bold; background: #f8f0f0; -webkit-print-color-adjust: exact;
               print-color-adjust: exact; }
tr.strong td.plain { font-weight: normal; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
.tnote { font-size: 8.5pt; font-style: italic; margin-top: -4pt; }
figure { margin: 8pt 0 10pt; break-inside: avoid; page-break-inside: avoid; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 8.8pt; font-style: italic; color: #333; }
.disclaimer { font-weight: bold; border-top: 1.5px solid #555; padding-top: 5pt; margin-top: 12pt; }
.pagebreak { break-before: page; page-break-before: always; }
.running { display: none; }
footer.screen { font-size: 9pt; font-weight: bold; border-top: 1.5px solid #555; margin-top: 14pt;
                padding-top: 4pt; }
@page { size: A4 portrait; margin: 14mm 13mm 20mm;
  @bottom-left { content: """
        + _css_string(report.disclaimer)
        + """; font: bold 7.5pt sans-serif;
                 vertical-align: top; padding-top: 2mm; }
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font: bold 9pt sans-serif;
                  vertical-align: top; padding-top: 2mm; }
  @top-left { content: """
        + _css_string(report.running)
        + """; font: 7.5pt sans-serif; color: #444; }
}
@page :first { @top-left { content: none; } }
@media print {
  body { max-width: none; padding: 0; font-size: 9pt; }
  footer.screen { display: none; }
  a { color: inherit; text-decoration: none; }
}
"""
    )


def _figure(p: Plot) -> str:
    import matplotlib

    from . import figures

    with matplotlib.rc_context(figures.RC):
        fig = figures.standalone(p)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><h2>{esc(p.title)}</h2><img alt="{esc(p.title)}" '
        f'src="data:image/svg+xml;base64,{data}"><figcaption>{esc(p.caption)} Times: '
        f"{esc(p.zone_label)}.</figcaption></figure>"
    )


def _cell_classes(t: Table, c: Any, j: int) -> tuple[str, str]:
    plain = "plain" if t.strong_cols is not None and j >= t.strong_cols else ""
    return ("right" if c.align == "right" else "", plain)


def _table(t: Table) -> str:
    if not t.rows:
        return (f"<h2>{esc(t.title)}</h2>" if t.title else "") + f'<p class="note">{esc(t.empty)}</p>'
    total = sum(c.width for c in t.columns)
    cols = "".join(f'<col style="width:{100 * c.width / total:.1f}%">' for c in t.columns)
    head = ""
    if t.header:
        head = (
            "<thead><tr>"
            + "".join(
                f'<th class="{"right" if c.align == "right" else ""}">{esc(c.title)}</th>' for c in t.columns
            )
            + "</tr></thead>"
        )
    body = []
    for i, row in enumerate(t.rows):
        cells = "".join(
            f'<td class="{" ".join(k for k in _cell_classes(t, c, j) if k)}">{esc(v)}</td>'
            for j, (v, c) in enumerate(zip(row, t.columns, strict=True))
        )
        body.append(f'<tr class="{"strong" if i in t.strong else ""}">{cells}</tr>')
    cap = f"<caption>{esc(t.title)}</caption>" if t.title else ""
    note = f'<p class="tnote">{esc(t.note)}</p>' if t.note else ""
    return f"<table>{cap}<colgroup>{cols}</colgroup>{head}<tbody>{''.join(body)}</tbody></table>{note}"


def _block(b: Any) -> str:
    if isinstance(b, Banner):
        return (
            f'<section class="verdict verdict-{esc(b.verdict)}" role="alert"><div><span class="label">'
            f'VERDICT</span><span class="word">{esc(b.verdict)}</span></div>'
            f'<div class="headline">{esc(b.headline)}</div></section>'
        )
    if isinstance(b, Heading):
        return f"<h2>{esc(b.text)}</h2>"
    if isinstance(b, Para):
        return f'<p class="{esc(b.style)}">{esc(b.text)}</p>'
    if isinstance(b, Bullets):
        return f'<ul class="{esc(b.style)}">' + "".join(f"<li>{esc(x)}</li>" for x in b.items) + "</ul>"
    if isinstance(b, RiskPair):
        cards = []
        for title, lvl, reasons in b.risks:
            cards.append(
                f'<div class="risk"><h3><span>{esc(title.upper())}</span><span class="level '
                f'level-{esc(lvl)}">{esc(level_word(lvl))}</span></h3><ul>'
                + "".join(f"<li>{esc(x)}</li>" for x in reasons)
                + "</ul></div>"
            )
        return f'<div class="risks">{"".join(cards)}</div>'
    if isinstance(b, Callout):
        return (
            f'<div class="callout"><p class="title">{esc(b.title)}</p>'
            + "".join(f"<p>{esc(x)}</p>" for x in b.lines)
            + "</div>"
        )
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Plot):
        try:
            return _figure(b)
        except ImportError:
            note = "The plots need matplotlib (pip install matplotlib)."
            return f'<h2>{esc(b.title)}</h2><p class="note">{note}</p>'
    if isinstance(b, PageBreak):
        return '<div class="pagebreak"></div>'
    raise TypeError(f"unknown block {type(b).__name__}")


def render(report: Report) -> bytes:
    """The report as a self-contained HTML page (UTF-8 bytes)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="itb-telemetry">',
        f"<title>{esc(report.running)}</title>",
        f"<style>{_style(report)}</style></head><body>",
        f'<header class="idlines"><h1>{esc(report.title)}</h1>'
        + "".join(f"<p>{esc(x)}</p>" for x in report.lines)
        + "</header><main>",
    ]
    parts += [_block(b) for b in report.blocks]
    parts.append(
        f'</main><footer class="screen"><p>{esc(report.disclaimer)}</p>'
        f'<p class="small">Generated {esc(report.generated)} by itb-telemetry.</p></footer>'
    )
    parts.append("</body></html>\n")
    return "\n".join(parts).encode("utf-8")
