"""Printable reports (``analysis.reports``, ``itb report``): PDF and HTML for URGENT, REVIEW and OK
checks and a damaged log, the text a clinician needs on them, escaping of hostile strings from
the log, no external requests, refill planning arithmetic, the CLI's exit codes, and
matplotlib staying out of ``import analysis`` and ``itb check`` without ``--report``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

# PDF text is read with pypdf (a pinned test dependency), not poppler's pdftotext: pypdf is small,
# pure Python, maintained and installed by pip with the test extras, so these tests read the same
# text on every machine, with no system tool to install or to be silently skipped without.
import pypdf
import pytest
from conftest import ROOT, SAMPLES, write_hostile_log

from analysis import analyse
from analysis.check import check
from analysis.reports import (
    blocks,
    check_report,
    dose_steps,
    pdf,
    refill_plan,
    report_format,
    write_check_report,
    write_interrogation_report,
)
from analysis.timeutil import Clock
from itb_device.cli import main
from parsers import read_log
from parsers.model import ITB_EPOCH

UTC = dt.UTC
SYDNEY = ZoneInfo("Australia/Sydney")
DISCLAIMER = "supports, and does not replace, the manufacturer's clinician programmer and clinical judgement"
BULLET = "•"

# name -> (sample, procedure, start, end, weight, expected verdict)
CASES = {
    "urgent": (
        "mri_delayed_recovery",
        "mri",
        dt.datetime(2026, 3, 10, 14, tzinfo=UTC),
        dt.datetime(2026, 3, 10, 15, tzinfo=UTC),
        25.0,
        "URGENT",
    ),
    "review": (
        "diathermy_over_delivery",
        "diathermy",
        dt.datetime(2026, 7, 2, 10, tzinfo=UTC),
        dt.datetime(2026, 7, 2, 12, tzinfo=UTC),
        40.0,
        "REVIEW",
    ),
    "ok": (
        "mri_prompt_recovery",
        "mri",
        dt.datetime(2026, 4, 20, 10, tzinfo=UTC),
        dt.datetime(2026, 4, 20, 10, 45, tzinfo=UTC),
        None,
        "OK",
    ),
    "corrupted": ("corrupted_log", "mri", None, dt.datetime(2026, 4, 20, 7, tzinfo=UTC), None, "REVIEW"),
}


def squash(text: str) -> str:
    """Whitespace collapsed (wrapped lines join into sentences again)."""
    return re.sub(r"\s+", " ", text).strip()


def pdf_pages(path: Path) -> int:
    return len(pypdf.PdfReader(path).pages)


def pdf_text(page: pypdf.PageObject) -> str:
    """One page's text, whitespace collapsed.  A list item's bullet is a separate text object
    drawn after the item's first line, so pypdf (which follows the content stream) puts it at the
    end of that line, inside the sentence: the bullet glyph is list markup, not text, and becomes
    a space.  Nothing else is changed."""
    return squash(page.extract_text().replace(BULLET, " "))


def pdf_page_texts(path: Path) -> list[str]:
    """The text of each page of the PDF file itself (not of the figures it was drawn from)."""
    return [pdf_text(page) for page in pypdf.PdfReader(path).pages]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Each case checked once and written as PDF and HTML (Sydney time)."""
    out = tmp_path_factory.mktemp("reports")
    done = {}
    for name, (sample, kind, start, end, weight, _) in CASES.items():
        log = read_log(SAMPLES / f"{sample}.itblog")
        result = check(log, kind, end, start, weight_kg=weight, clock=Clock(SYDNEY))
        paths = {ext: write_check_report(result, log, out / f"{name}.{ext}") for ext in ("pdf", "html")}
        done[name] = (log, result, paths, check_report.build_check(result, log))
    return done


@pytest.mark.parametrize("name", list(CASES))
def test_check_pdf(written, name):
    log, result, paths, _report = written[name]
    assert result.verdict == CASES[name][5]
    path = paths["pdf"]
    assert path.read_bytes().startswith(b"%PDF")
    n = pdf_pages(path)
    assert 4 <= n <= 8  # summary (may continue), two plot pages, evidence and findings
    pages = pdf_page_texts(path)
    assert len(pages) == n
    first = pages[0]
    assert result.verdict in first and "VERDICT" in first
    assert f"pump {log.header.serial}" in first.lower() or log.header.serial in first
    assert "Australia/Sydney" in first  # times labelled with the zone
    text = " ".join(pages)
    assert result.summary  # (an OK check has no reasons)
    for sentence in [*result.summary, *result.reasons]:
        assert BULLET not in sentence  # else the bullet normalisation could hide a real difference
        assert squash(sentence) in text, sentence
    assert "WITHDRAWAL RISK" in text and "OVERDOSE RISK" in text
    assert "Telemetry cannot show" in text
    for i, page in enumerate(pages, start=1):  # the disclaimer and page numbers on every page
        assert DISCLAIMER in page
        assert f"Page {i} of {n}" in page
    assert "Delivery around the" in text and "The last 30 days" in text
    assert "Evidence from the log" in text and "Findings (whole log)" in text


def test_urgent_report_names_the_actions(written):
    _log, _result, paths, _report = written["urgent"]
    text = " ".join(pdf_page_texts(paths["pdf"]))
    assert "5.1.4.1" in text and "Oral baclofen for 25 kg: 10 mg stat" in text
    assert "5.1.3.3" in text and "DO NOT PERFORM A LUMBAR PUNCTURE" in text
    assert "2026-03-11 01:00 AEDT" in text  # the MRI start, 14:00 UTC, in Sydney time


@pytest.mark.parametrize("name", list(CASES))
def test_check_html(written, name):
    _log, result, paths, _ = written[name]
    doc = paths["html"].read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>")
    assert f'class="word">{result.verdict}<' in doc
    for sentence in result.summary:
        assert html.escape(sentence) in doc
    assert html.escape(result.assessment.disclaimer) in doc
    assert "@page" in doc and "A4" in doc and "counter(pages)" in doc  # printable, numbered pages
    assert "http://" not in doc and "https://" not in doc
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?!data:)[a-z]+:""", doc, re.I)
    assert "<script" not in doc.lower()
    assert doc.count("data:image/svg+xml;base64,") == 2  # both plots embedded
    assert "Content-Security-Policy" in doc


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory):
    """A log whose serial, firmware and drug name carry markup, mathtext and a control character."""
    return read_log(write_hostile_log(tmp_path_factory.mktemp("hostile") / "hostile.itblog"))


def test_hostile_strings_are_escaped(hostile_log, tmp_path):
    assert hostile_log.header.serial == "<script>x</scr"
    assert hostile_log.status.drug_name == "<img src=x>&\x01" and not hostile_log.problems
    result = check(
        hostile_log,
        "mri",
        dt.datetime(2026, 4, 20, 10, 45, tzinfo=UTC),
        dt.datetime(2026, 4, 20, 10, tzinfo=UTC),
    )
    out = write_check_report(result, hostile_log, tmp_path / "h.html")
    doc = out.read_text(encoding="utf-8")
    assert "<script" not in doc.lower()
    assert "<img src=x" not in doc.lower()
    assert '"><b>' not in doc
    assert "&lt;script&gt;x&lt;/scr" in doc and "&lt;img src=x&gt;&amp;" in doc
    assert "\x01" not in doc
    inter = write_interrogation_report(hostile_log, tmp_path / "i.htm", Clock(UTC))
    inter = inter.read_text(encoding="utf-8")
    assert "<script" not in inter.lower() and "&lt;script&gt;" in inter
    p = write_check_report(result, hostile_log, tmp_path / "h.pdf")
    assert p.read_bytes().startswith(b"%PDF")
    text = " ".join(pdf_page_texts(p))
    assert "<script>x</scr" in text and "$x^2$" in text  # drawn literally, not as mathtext


def _pages_fit(pages) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in pages:
        renderer = FigureCanvasAgg(fig).get_renderer()
        width, height = fig.bbox.width, fig.bbox.height
        for t in fig.texts:
            box = t.get_window_extent(renderer)
            assert box.x0 >= -0.5 and box.x1 <= width + 0.5, t.get_text()
            assert box.y0 >= -0.5 and box.y1 <= height + 0.5, t.get_text()


def test_long_text_wraps_and_tables_continue():
    long_word = "x" * 400
    for line in pdf.wrap(f"a {long_word} b " + "word " * 200, 200, 9):
        assert pdf.text_width(line, 9) <= 200
    rows = [[str(i), f"row {i} " + "long explanation " * (3 + i % 7)] for i in range(150)]
    report = blocks.Report(
        "check",
        "Title",
        ["line " * 60],
        "running",
        [
            blocks.Banner("URGENT", "headline " * 30),
            blocks.Bullets([long_word, "short"]),
            blocks.Table("Big table", [blocks.Column("N", 0.1), blocks.Column("Text", 0.9)], rows),
        ],
        "This software supports, and does not replace, the programmer.",
        "now",
    )
    pages = pdf.build_pages(report)
    assert len(pages) >= 4
    texts = [" ".join(t.get_text() for t in fig.texts) for fig in pages]
    assert "Big table (continued)" in texts[1]
    assert all(f"Page {i} of {len(pages)}" in t for i, t in enumerate(texts, start=1))
    assert "row 149" in texts[-1]
    _pages_fit(pages)


def test_check_pages_stay_on_the_page(written):
    _pages_fit(pdf.build_pages(written["corrupted"][3]))


def test_bad_suffix_and_atomic_write(written, tmp_path):
    log, result, _, _ = written["ok"]
    with pytest.raises(ValueError, match=r"\.pdf or \.html"):
        write_check_report(result, log, tmp_path / "r.docx")
    assert report_format("A.PDF") == "pdf" and report_format("a.htm") == "html"
    target = tmp_path / "r.html"
    target.write_text("old")
    write_check_report(result, log, target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left


# ---------------------------------------------------------------------------------------------
# Refill planning


def _clock(when: dt.datetime) -> int:
    return int((when - ITB_EPOCH).total_seconds())


@pytest.fixture(scope="module")
def base_log():
    return read_log(SAMPLES / "mri_prompt_recovery.itblog")


def planned(base_log, **status):
    now = dt.datetime(2026, 1, 10, 9, tzinfo=UTC)
    header = dataclasses.replace(
        base_log.header,
        pump_clock=_clock(now),
        programmer_clock=_clock(now),
        implant_date=dt.date(2020, 1, 15),
    )
    values = dict(
        reservoir_ml=20.0,
        low_reservoir_alarm_ml=2.0,
        mode="simple_continuous",
        rate_ml_day=0.2,
        daily_dose_mcg_day=400.0,
        concentration_mcg_ml=2000.0,
        flex_steps=(),
        ptm_enabled=False,
        battery_state="ok",
        eri_clock=0,
        motor_state="running",
        last_refill_clock=_clock(now - dt.timedelta(days=100)),
    )
    values.update(status)
    log = dataclasses.replace(base_log, header=header, status=dataclasses.replace(base_log.status, **values))
    return now, refill_plan(log)


def test_refill_planning_numbers(base_log):
    now, plan = planned(base_log)
    day = 86_400
    t = int(now.timestamp())
    low, empty, stab = plan.milestone("low_alarm"), plan.milestone("empty"), plan.milestone("drug_stability")
    assert low.days == pytest.approx(90.0) and low.when_s == t + 90 * day  # (20 - 2) / 0.2
    assert low.worst_days == pytest.approx(18 / (0.2 * 1.145))  # labelled accuracy 14.5%
    assert empty.days == pytest.approx(97.5)  # (20 - 0.5) / 0.2
    assert stab.days == pytest.approx(80.0) and stab.when_s == t + 80 * day  # 180 days after the refill
    assert plan.next_refill.key == "drug_stability" and plan.last_refill_source == "status"
    # batteries "normally last 5-7 years" (guideline 5.1.1.5): implanted 2020-01-15, at 2026-01-10
    # the pump is past the earliest ERI (5 years less 90 days) without one: ERI may come now, EOS
    # 90 days later, before the 7-year shut-off on 2027-01-15
    eos, eri = plan.milestone("eos"), plan.milestone("eri")
    assert eos.estimate and eos.when_s == t + 90 * day and eri.when_s == t
    assert "5-7 years (guideline 5.1.1.5)" in eos.basis and "stops by 2027-01-15" in eos.basis
    assert "past the earliest ERI" in eos.basis


def test_battery_planned_from_the_earliest_of_5_to_7_years(base_log):
    """A pump implanted 2023-06-01: EOS planned at 5 years (2028-06-01), ERI 90 days before;
    not at 7 years (5.1.1.5)."""
    header = dataclasses.replace(base_log.header, implant_date=dt.date(2023, 6, 1))
    log = dataclasses.replace(base_log, header=header)
    plan = refill_plan(log, now_s=int(dt.datetime(2026, 1, 10, tzinfo=UTC).timestamp()))
    eos, eri = plan.milestone("eos"), plan.milestone("eri")
    assert dt.datetime.fromtimestamp(eos.when_s, UTC).date() == dt.date(2028, 6, 1)
    assert eos.when_s - eri.when_s == 90 * 86_400
    assert "planned from the earliest, 5 years" in eos.basis and "stops by 2030-06-01" in eos.basis


def test_refill_planning_cases(base_log):
    day = 86_400
    now, plan = planned(base_log, reservoir_ml=5.0)
    assert plan.next_refill.key == "low_alarm" and plan.next_refill.days == pytest.approx(15.0)
    now, plan = planned(base_log, ptm_enabled=True, ptm_dose_mcg=50.0, ptm_max_per_day=4)
    assert plan.worst_rate_ml_day == pytest.approx(0.2 * 1.145 + 4 * 50 / 2000)
    now, plan = planned(base_log, reservoir_ml=1.5)
    assert plan.milestone("low_alarm").passed and plan.next_refill.days == 0
    now, plan = planned(base_log, mode="stopped")
    assert plan.milestone("low_alarm").days is None and any("stopped" in n for n in plan.notes)
    eri_at = now - dt.timedelta(days=30)
    now, plan = planned(base_log, battery_state="eri", eri_clock=_clock(eri_at))
    assert plan.milestone("eri").passed
    assert plan.milestone("eos").when_s == int(eri_at.timestamp()) + 90 * day
    assert plan.milestone("eos").days == pytest.approx(60.0)
    now, plan = planned(base_log, last_refill_clock=0)
    assert plan.milestone("drug_stability").when_s is None  # no refill record in this log either


def test_dose_steps_titration():
    steps = dose_steps(read_log(SAMPLES / "titration_violation.itblog"))
    assert [s.daily_dose_mcg for s in steps] == [300.0, 340.0, 510.0]
    assert steps[2].change_fraction == pytest.approx(0.5) and steps[2].days_since_previous == pytest.approx(
        2.0
    )
    assert steps[2].override and not steps[1].override
    flex = dose_steps(read_log(SAMPLES / "mri_prompt_recovery.itblog"))
    assert len(flex) == 1 and flex[0].flex_steps == 4
    assert flex[0].daily_dose_mcg == pytest.approx(265.833, abs=0.01)  # time-weighted over the steps


def test_interrogation_report(tmp_path):
    log = read_log(SAMPLES / "titration_violation.itblog")
    a = analyse(log, weight_kg=20, clock=Clock(SYDNEY))
    pdf_path = write_interrogation_report(log, tmp_path / "i.pdf", assessment=a)
    html_path = write_interrogation_report(log, tmp_path / "i.html", assessment=a)
    assert pdf_path.read_bytes().startswith(b"%PDF") and pdf_pages(pdf_path) >= 3
    doc = html_path.read_text(encoding="utf-8")
    plan = refill_plan(log)
    due = Clock(SYDNEY, 0).date(plan.next_refill.when_s)
    assert plan.next_refill.key == "low_alarm"  # 30.895 mL at 0.255 mL/day: 113 days to 2 mL
    assert plan.next_refill.days == pytest.approx((30.895 - 2.0) / 0.255)
    assert f"Next refill due by: {due}" in doc and "in 113 days" in doc
    for text in (
        "Refill and battery planning",
        "Drug stability limit (180 days)",
        "Program changes",
        "+40.0 mcg/day (+13%)",
        "+170.0 mcg/day (+50%), 2.0 days after the previous",
        "OVERRIDE",
        "Pump status at interrogation",
        "WITHDRAWAL RISK",
        "titration violation",
        "Poisons Information Centre",
    ):
        assert html.escape(text) in doc, text
    assert html.escape(a.disclaimer) in doc and "http://" not in doc
    text = " ".join(pdf_page_texts(pdf_path))
    assert f"Next refill due by: {due}" in text and DISCLAIMER in text
    assert "+170.0 mcg/day (+50%)" in text


# ---------------------------------------------------------------------------------------------
# The command line


def test_itb_report_cli(tmp_path, capsys):
    out = tmp_path / "eri.pdf"
    rc = main(
        [
            "report",
            str(SAMPLES / "eri_eos.itblog"),
            "-o",
            str(out),
            "--tz",
            "Australia/Sydney",
            "--weight-kg",
            "32",
        ]
    )
    assert rc == 0 and out.read_bytes().startswith(b"%PDF")
    assert "report written" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "x.txt"], "must be a .pdf or .html"),
        (["-o", "x.pdf", "--tz", "Mars/Base"], "not a known time zone"),
    ],
)
def test_itb_report_cli_bad_arguments(tmp_path, capsys, args, message):
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    assert main(["report", str(SAMPLES / "eri_eos.itblog"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("itb report: error:") and message in err[0]


def test_itb_report_cli_unreadable_log(tmp_path, capsys):
    bad = tmp_path / "not-a-log.itblog"
    bad.write_bytes(b"hello, this is not a pump log")
    for path in (bad, tmp_path / "missing.itblog"):
        assert main(["report", str(path), "-o", str(tmp_path / "r.pdf")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("itb report: error:")
    assert not (tmp_path / "r.pdf").exists()


def test_no_matplotlib_without_a_report(tmp_path):
    code = f"""
import sys
import analysis, analysis.check, analysis.reports, analysis.planning, analysis.plotting
import analysis.reports.blocks, analysis.reports.panels, analysis.reports.sections
import analysis.reports.check_report, analysis.reports.interrogation_report
from itb_device.cli import main
rc = main(["check", {str(SAMPLES / "mri_delayed_recovery.itblog")!r}, "--after", "mri",
           "--end", "2026-03-10T15:00Z", "--tz", "UTC", "--json"])
assert rc == 0, rc
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib")
assert not loaded, loaded
print("clean")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("clean")


def _reservoir_panels(report) -> list:
    return [
        p
        for b in report.blocks
        if isinstance(b, blocks.Plot)
        for p in b.panels
        if isinstance(p, blocks.ReservoirPanel)
    ]


def test_check_report_uses_the_rules_the_check_used(written):
    """Hospital rules given as overrides (not a file) reach the check report's reservoir
    plot, through the assessment, as the defaults do."""
    sample, kind, start, end, weight, _ = CASES["urgent"]
    log = read_log(SAMPLES / f"{sample}.itblog")
    result = check(log, kind, end, start, weight_kg=weight, rules={"pump": {"empty_reservoir_ml": 1.25}},
                   clock=Clock(SYDNEY))
    (panel,) = _reservoir_panels(check_report.build_check(result, log))
    assert panel.empty_ml == 1.25
    (default,) = _reservoir_panels(written["urgent"][3])
    assert default.empty_ml != 1.25
