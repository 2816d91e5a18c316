"""One clock for every time a person reads (issue 16, item 1): the check report, the
interrogation report (PDF and HTML), the check's texts and the analysis' explanations all show
times in the zone the user chose, and every label names that zone.

The sample is ``mri_delayed_recovery``: MRI 2026-03-10 14:00-15:00 UTC, interrogated 17:00 UTC;
in Sydney the MRI starts at 2026-03-11 01:00 AEDT and the pump is interrogated at 04:00 AEDT."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import io
import math
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdf
import pytest
from conftest import SAMPLES

from analysis import analyse
from analysis.check import check
from analysis.reports import blocks, check_report, interrogation_report, sections, write_interrogation_report
from analysis.timeutil import Clock, zone_label
from itb_device.cli import main
from parsers import read_log

SYDNEY = ZoneInfo("Australia/Sydney")
DELAYED = SAMPLES / "mri_delayed_recovery.itblog"
START, END = "2026-03-10T14:00Z", "2026-03-10T15:00Z"
STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d)(?: ([A-Za-z][A-Za-z0-9+\-]*))?")
SYDNEY_LABEL = "Australia/Sydney (AEDT, UTC+11:00)"

# zone -> (the abbreviations its times may carry, its label at the interrogation,
#          (the MRI start, the interrogation) as shown)
ZONES = {
    "Australia/Sydney": ({"AEDT", "AEST"}, SYDNEY_LABEL, ("2026-03-11 01:00 AEDT", "2026-03-11 04:00 AEDT")),
    "UTC": ({"UTC"}, "UTC", ("2026-03-10 14:00 UTC", "2026-03-10 17:00 UTC")),
}


def squash(text: str) -> str:
    """Whitespace collapsed (a PDF's wrapped lines join again); bullets are list markup."""
    return re.sub(r"\s+", " ", text.replace("•", " ")).strip()


def html_text(doc: str) -> str:
    """What a reader sees of an HTML report: no style sheet, no embedded images, no tags."""
    doc = re.sub(r"<style.*?</style>", " ", doc, flags=re.S)
    doc = re.sub(r"<img[^>]*>", " ", doc)
    return squash(html.unescape(re.sub(r"<[^>]+>", " ", doc)))


def pdf_text(path: Path) -> str:
    return squash(" ".join(page.extract_text() for page in pypdf.PdfReader(path).pages))


def _run(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    """(zone, document) -> the text shown: the check report and the interrogation report, PDF and
    HTML, each written by the command line with ``--tz``."""
    out = tmp_path_factory.mktemp("zones")
    texts = {}
    for tz in ZONES:
        stem = tz.replace("/", "_")
        for ext in ("pdf", "html"):
            check_path, report_path = out / f"check-{stem}.{ext}", out / f"report-{stem}.{ext}"
            _run(["check", str(DELAYED), "--after", "mri", "--start", START, "--end", END, "--tz", tz,
                  "--weight-kg", "35", "--report", str(check_path)])
            _run(["report", str(DELAYED), "-o", str(report_path), "--tz", tz, "--weight-kg", "35"])
            for kind, path in (("check", check_path), ("report", report_path)):
                texts[tz, f"{kind}.{ext}"] = (
                    pdf_text(path) if ext == "pdf" else html_text(path.read_text(encoding="utf-8"))
                )
    return texts


DOCUMENTS = ["check.pdf", "check.html", "report.pdf", "report.html"]


@pytest.mark.parametrize("tz", list(ZONES))
@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_time_in_a_report_carries_the_zones_label(reports, tz, document):
    text = reports[tz, document]
    abbreviations, label, (mri_start, interrogated) = ZONES[tz]
    stamps = [(m.group(0), m.group(2)) for m in STAMP.finditer(text)]
    assert len(stamps) > 5
    wrong = [shown for shown, abbr in stamps if abbr not in abbreviations]
    assert not wrong, wrong  # a bare time, or a time in another zone
    assert mri_start in text and interrogated in text
    assert f"All times are in {label}" in text


@pytest.mark.parametrize("document", DOCUMENTS)
def test_no_utc_label_next_to_a_local_time(reports, document):
    text = reports["Australia/Sydney", document]
    # "UTC" may appear in the zone's offset (UTC+11:00) and in "unless marked UTC" (the
    # reader's messages about damaged history give UTC times, marked): nowhere else
    rest = re.sub(r"UTC[+-]\d\d:\d\d", "", text).replace("unless marked UTC", "")
    assert "UTC" not in rest, re.findall(r".{60}UTC.{20}", rest)
    assert "2026-03-10 14:00" not in text  # the MRI start as UTC wall-clock time, unlabelled or not


@pytest.mark.parametrize("tz", list(ZONES))
@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_findings_column_names_the_zone_its_explanations_are_in(reports, tz, document):
    text = reports[tz, document]
    _, label, (mri_start, _) = ZONES[tz]
    assert "times inside it are UTC" not in text
    assert f"Explanation, times in {label}" in text
    assert f"Motor stall from {mri_start}" in text  # the explanation, in that zone


def test_the_check_report_content_is_labelled_with_the_checks_clock():
    log = read_log(DELAYED)
    result = check(log, "mri", dt.datetime(2026, 3, 10, 15, tzinfo=dt.UTC),
                   dt.datetime(2026, 3, 10, 14, tzinfo=dt.UTC), weight_kg=35, clock=Clock(SYDNEY))
    assert result.clock.zone is SYDNEY
    report = check_report.build_check(result, log)
    tables = [b for b in report.blocks if isinstance(b, blocks.Table)]
    (findings,) = [t for t in tables if t.title.startswith("Findings")]
    assert findings.columns[-1].title == f"Explanation, times in {SYDNEY_LABEL}"
    assert all("AEDT" in row[-1] and "UTC" not in row[-1] for row in findings.rows)
    plots = [b for b in report.blocks if isinstance(b, blocks.Plot)]
    assert plots and all(p.zone is SYDNEY and p.zone_label == SYDNEY_LABEL for p in plots)
    assert report.generated.endswith((" AEDT", " AEST"))


def test_analyse_writes_explanations_with_its_clock():
    log = read_log(DELAYED)
    procedure = [{"kind": "mri", "start_utc": START, "end_utc": END}]
    sydney = analyse(log, procedures=procedure, clock=Clock(SYDNEY))
    default = analyse(log, procedures=procedure)
    assert sydney.clock.zone is SYDNEY and default.clock.zone is dt.UTC
    pairs = zip(sydney.findings, default.findings, strict=True)
    stalls = [(s, d) for s, d in pairs if s.kind == "motor_stall"]
    assert stalls
    for s, d in stalls:
        assert "Motor stall from 2026-03-11 01:00 AEDT" in s.explanation and "UTC" not in s.explanation
        assert "Motor stall from 2026-03-10 14:00 UTC" in d.explanation and "AEDT" not in d.explanation
    assert any("(2026-03-11 01:00 AEDT)" in r for r in sydney.withdrawal.reasons)
    assert any("(2026-03-10 14:00 UTC)" in r for r in default.withdrawal.reasons)
    assert "interrogation of 2026-03-11 04:00 AEDT" in sydney.summary()
    assert "interrogation of 2026-03-10 17:00 UTC" in default.summary()


def test_an_assessment_in_another_zone_is_refused_by_the_report(tmp_path):
    log = read_log(DELAYED)
    a = analyse(log)  # UTC
    with pytest.raises(ValueError, match="the assessment's times are in UTC"):
        write_interrogation_report(log, tmp_path / "r.html", Clock(SYDNEY), assessment=a)
    assert not (tmp_path / "r.html").exists()
    write_interrogation_report(log, tmp_path / "r.html", Clock(dt.UTC), assessment=a)  # the same zone
    assert "Explanation, times in UTC" in html_text((tmp_path / "r.html").read_text(encoding="utf-8"))


def test_the_clock_keeps_the_formats_it_replaced():
    utc, sydney = Clock(), Clock(SYDNEY)
    t = 1_773_151_200  # 2026-03-10 14:00 UTC
    assert utc.zone is dt.UTC and utc.time(t) == "2026-03-10 14:00 UTC"
    assert sydney.time(t) == "2026-03-11 01:00 AEDT" and sydney.date(t) == "Wed 2026-03-11"
    assert utc.time(None) == sydney.time(None) == utc.date(None) == "unknown"
    assert utc.time(math.nan) == "unknown"
    assert utc.time(t + 89.6) == "2026-03-10 14:01 UTC"  # rounded to the second, then minutes cut
    assert Clock(dt.timezone(dt.timedelta(hours=5, minutes=30))).time(t) == "2026-03-10 19:30 UTC+05:30"
    assert sydney.label_at(t) == SYDNEY_LABEL == zone_label(SYDNEY, t)
    assert Clock(SYDNEY, 1_780_000_000).label == "Australia/Sydney (AEST, UTC+10:00)"  # in May
    assert utc.label == "UTC" and utc.label_at(t) == "UTC"
    assert sections.Clock is interrogation_report.Clock is Clock  # the reports use the one clock
