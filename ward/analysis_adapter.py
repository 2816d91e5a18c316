"""The ward app's one door into the analysis: every call to ``analysis`` (the check, its JSON,
the PDF report and the plots) and to the log reader goes through this module, so a change of
their API is fixed here and nowhere else in ``ward/``.

The check is the command line's (``itb check``): the same ``analysis.check.check`` with the
same rules, the same procedure times and the same zone give the same verdict, reasons,
summary, actions, checklist and evidence, and the same JSON (docs/check-json.md).  The
analysis and the drawing run one at a time (matplotlib is not thread-safe); a check takes a
fraction of a second once the server is warm.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOCK = threading.RLock()


class LogUnreadable(ValueError):
    """The bytes are not an interrogation log (the reader's one-line message)."""


class CheckRefused(ValueError):
    """The check refuses the procedure entered (``analysis.check.CheckInputError``'s message)."""


@dataclass
class Computed:
    """One finished check: the result, the log it came from and what the ward stores."""

    result: Any  # analysis.check.CheckResult
    log: Any  # parsers.InterrogationLog
    document: dict[str, Any]  # docs/check-json.md, with "source"
    zone: dt.tzinfo


def warm_up() -> None:
    """Import the analysis (pandas, numpy, scipy) now, so the first check is as quick as the next."""
    import analysis.check  # noqa: F401
    import parsers  # noqa: F401


def software_version() -> str:
    import itb_device

    return str(itb_device.__version__)


# ----- the log ----------------------------------------------------------------------------------


def read_log(data: bytes, name: str) -> Any:
    """``data`` read as an interrogation log; :class:`LogUnreadable` (one line naming ``name``
    and the byte) when it is not one."""
    from parsers import LogFormatError, read_log_bytes

    try:
        return read_log_bytes(data, name)
    except LogFormatError as exc:
        raise LogUnreadable(" ".join(str(exc).split())) from exc


def pump_info(log: Any) -> dict[str, Any]:
    """What the log says about the pump, as plain values (text from the log kept as it is: the
    pages escape it)."""
    h, st = log.header, log.status
    return {
        "serial": (h.serial or None) if log.header_ok else None,
        "model_ml": h.model_ml,
        "firmware": h.firmware or None,
        "implanted": h.implant_date.isoformat() if getattr(h, "implant_date", None) else None,
        "drug": (st.drug_name or None) if log.status_ok else None,
        "concentration_mcg_ml": float(st.concentration_mcg_ml) if log.status_ok else None,
        "header_ok": bool(log.header_ok),
        "status_ok": bool(log.status_ok),
        "problems": len(log.problems),
    }


# ----- the rules --------------------------------------------------------------------------------


def load_rules(path: str | Path | None) -> Any:
    """The clinical rules from ``path`` (merged over the defaults), or ``$ITB_CLINICAL_RULES``, or
    the defaults; ``clinical.rules.RulesError`` (a ValueError, one line) for a bad file."""
    from clinical.rules import get_rules

    return get_rules(path)


def stored_rules(source: str, data: Any) -> Any:
    """Rules exactly as a stored check used them."""
    from clinical.rules import Rules

    return Rules(data, source)


def rules_record(rules: Any) -> tuple[str, Any]:
    """(the rules file's name as the analysis gives it, the merged rules as plain data)."""
    import json

    return str(rules.source), json.loads(json.dumps(rules.data))


def check_weight(rules: Any, weight_kg: float) -> None:
    """``itb check --weight-kg``'s range check (``[patient] weight_kg_range``): ValueError with
    its message."""
    rules.check_weight(weight_kg)


# ----- the check ----------------------------------------------------------------------------------


def run_check(
    log: Any,
    *,
    kind: str,
    end: dt.datetime,
    start: dt.datetime | None,
    weight_kg: float | None,
    rules: Any,
    zone: dt.tzinfo,
    source: dict[str, Any],
) -> Computed:
    """``itb check``'s analysis: the result and its JSON (docs/check-json.md) with ``source``
    (the log's name, SHA-256 and pump serial).  :class:`CheckRefused` for a procedure the check
    refuses (it ends after the interrogation, starts after it ends)."""
    from analysis.check import CheckInputError, check
    from analysis.timeutil import Clock

    with _LOCK:
        try:
            result = check(log, kind, end, start, weight_kg=weight_kg, rules=rules, clock=Clock(zone))
        except CheckInputError as exc:
            raise CheckRefused(str(exc)) from exc
        doc = result.to_dict(zone)
    doc["source"] = dict(source)
    return Computed(result, log, doc, zone)


def verdict_headline(verdict: str) -> str:
    """The report's one line under the verdict."""
    from analysis.reports.check_report import VERDICT_HEADLINES

    return str(VERDICT_HEADLINES[verdict])


def level_word(level: str) -> str:
    """A risk level as the reports print it (``CANNOT RULE OUT``)."""
    from analysis.reports.sections import level_word as word

    return str(word(level))


def pump_record_only() -> str:
    """The note that goes with every OK (the check puts it in the summary)."""
    from analysis.check import PUMP_RECORD_ONLY

    return str(PUMP_RECORD_ONLY)


def disclaimer() -> str:
    from analysis.assessment import DISCLAIMER

    return str(DISCLAIMER)


VERDICTS = ("OK", "REVIEW", "URGENT")


# ----- documents ----------------------------------------------------------------------------------


def write_pdf(c: Computed, path: Path) -> Path:
    """The A4 PDF report of the check (``itb check --report FILE.pdf``), written atomically."""
    from analysis.reports import write_check_report

    with _LOCK:
        return write_check_report(c.result, c.log, path)


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    svg: bytes


def _plots(c: Computed) -> list[Any]:
    from analysis.reports.blocks import Plot
    from analysis.reports.check_report import build_check

    report = build_check(c.result, c.log)
    return [b for b in report.blocks if isinstance(b, Plot)]


def figure_captions(c: Computed) -> list[dict[str, str]]:
    """The report's plots, without drawing them (a few ms): key, title and caption each."""
    with _LOCK:
        return [{"key": p.key, "title": p.title, "caption": f"{p.caption} Times: {p.zone_label}."}
                for p in _plots(c)]


def figures(c: Computed) -> list[Figure]:
    """The report's plots (delivery around the procedure, the last 30 days) drawn as SVG, as the
    HTML report draws them."""
    import matplotlib

    from analysis.reports import figures as draw

    out = []
    with _LOCK:
        for p in _plots(c):
            with matplotlib.rc_context(draw.RC):
                fig = draw.standalone(p)
                buf = io.BytesIO()
                fig.savefig(buf, format="svg", metadata={"Date": None})
            out.append(Figure(p.key, p.title, f"{p.caption} Times: {p.zone_label}.", buf.getvalue()))
    return out
