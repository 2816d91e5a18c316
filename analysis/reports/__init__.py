"""Printable reports: the two-hour check after an MRI or diathermy, and the general
interrogation report, as PDF (A4, drawn with matplotlib) or self-contained HTML.

``write_check_report(result, log, path)`` and
``write_interrogation_report(log, path, clock=None, assessment=None)`` pick the format from the
file suffix (``.pdf``, ``.html``/``.htm``) and write the file atomically.  Both formats carry the
same content (the blocks built by ``check_report`` or ``interrogation_report``), times in the
user's zone with its label, and the disclaimer on every page: the reports support, and do not
replace, the manufacturer's programmer and clinical judgement.  The zone is the analysis'
:class:`analysis.timeutil.Clock` (the check's ``result.clock``, the assessment's ``clock``): the
one that wrote the explanations also writes every other time and label.  Importing this package
loads no plotting library; writing a report does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clinical.rules import RulesLike
from parsers import InterrogationLog
from parsers.writer import atomic_write_bytes

from ..planning import DoseStep, Milestone, RefillPlan, dose_steps, refill_plan
from ..timeutil import Clock

if TYPE_CHECKING:
    from ..assessment import Assessment
    from ..check import CheckResult
    from .blocks import Report

SUFFIXES = {".pdf": "pdf", ".html": "html", ".htm": "html"}

__all__ = [
    "SUFFIXES",
    "DoseStep",
    "Milestone",
    "RefillPlan",
    "dose_steps",
    "refill_plan",
    "report_format",
    "write_check_report",
    "write_interrogation_report",
]


def report_format(path: str | Path) -> str:
    """``pdf`` or ``html`` from the suffix of ``path``; ValueError for anything else."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{Path(path).name}: a report must be a .pdf or .html file")
    return fmt


def _render(report: Report, fmt: str) -> bytes:
    if fmt == "pdf":
        from .pdf import render
    else:
        from .html import render
    return render(report)


def write_check_report(result: CheckResult, log: InterrogationLog, path: str | Path) -> Path:
    """Write the two-hour check ``result`` (``analysis.check.CheckResult``) of ``log`` as a PDF or
    HTML report at ``path`` with times in the check's zone (``result.clock``); returns the path."""
    from .check_report import build_check

    fmt = report_format(path)
    data = _render(build_check(result, log), fmt)
    atomic_write_bytes(path, [data])
    return Path(path)


def write_interrogation_report(
    log: InterrogationLog,
    path: str | Path,
    clock: Clock | None = None,
    assessment: Assessment | None = None,
    rules: RulesLike = None,
) -> Path:
    """Write the general interrogation report of ``log`` (status, refill planning, dose
    history, findings and risks) at ``path``; returns the path.  ``assessment`` is
    ``analysis.analyse(log, rules=rules, clock=clock)`` when not given.  Times are shown with
    the assessment's clock (UTC unless ``clock`` is given); ``clock``, if given with an
    assessment, must be in its zone (ValueError otherwise)."""
    from ..assessment import analyse
    from .interrogation_report import build_interrogation

    fmt = report_format(path)
    if assessment is None:
        a = analyse(log, rules=rules, clock=clock)
    elif clock is not None and not clock.same_zone(assessment.clock):
        raise ValueError(f"the assessment's times are in {assessment.clock.zone}, not {clock.zone}: "
                         "analyse with the report's clock (analyse(log, clock=clock))")
    else:
        a = assessment
    plan = refill_plan(log, rules, now_s=a.now_s)
    data = _render(build_interrogation(log, a, plan, rules), fmt)
    atomic_write_bytes(path, [data])
    return Path(path)
