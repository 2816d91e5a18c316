"""The ward app (``itb serve``, issue 17) in a real browser: Playwright driving the system
Chromium against the server running as its own process on 127.0.0.1 (one server for the module,
restarted once to show the record survives a killed server).

Covers what the issue lists: the right verdict for an OK, a REVIEW and an URGENT sample; reading
the simulated pump over ``socket://`` from the page; a random-bytes file and a wrong date refused
next to their fields with ``itb check``'s messages; ``<script>`` in a log's text shown as text;
the ward list kept across a restart; the print view as A4 pages.  Also the downloads (PDF, JSON
equal to ``itb check --json``, the original log, FHIR), "Check again" keeping the log,
recomputing with another rules file, search, the upload cap, CSRF and the Host check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdf
import pytest
from conftest import ROOT, SAMPLES, write_hostile_log

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CAP_MB = 1  # the test server's upload cap: every sample is far smaller
START_S = 60

# sample, procedure start and end (UTC, from sample_logs/README.md), weight, verdict
OK = ("mri_prompt_recovery", "2026-04-20T10:00Z", "2026-04-20T10:45Z", "22", "OK")
REVIEW = ("spontaneous_stall", "2026-05-12T13:00Z", "2026-05-12T13:40Z", "33", "REVIEW")
URGENT = ("mri_delayed_recovery", "2026-03-10T14:00Z", "2026-03-10T15:00Z", "35", "URGENT")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing: install Debian's chromium package "
                                "(apt-get install chromium; .ci/run does it)")


class Server:
    """``python -m itb_device serve`` as a process: its URL, data folder and log."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data = data
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        err = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 (kept open while the server runs)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "itb_device", "serve", "--data", str(self.data), "--port", "0",
             "--tz", "Australia/Sydney", "--max-upload-mb", str(CAP_MB)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "ITB_WARD_ACCESS_KEY": ""},
        )
        err.close()
        line = _read_line(self.proc, START_S)
        m = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert m, f"the server did not say where it listens: {line!r}\n{self.log.read_text()}"
        self.url = m.group(0)

    def kill(self) -> None:
        """SIGKILL: nothing is flushed or closed cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout_s):
        proc.kill()
        raise AssertionError(f"no line from {proc.args} in {timeout_s} s")
    return proc.stdout.readline()


class Background:
    """Commands the tests compare with, started at once so they run while the server starts."""

    def __init__(self, root: Path) -> None:
        self.junk = root / "junk.itblog"
        self.junk.write_bytes(os.urandom(4096))
        self.procs = {
            "json": _cli([*_check_args(URGENT), "--json"]),
            "end": _cli([str(self.junk), "--after", "mri", "--end", "2026-02-30 10:00"]),
            "weight": _cli([str(SAMPLES / "mri_prompt_recovery.itblog"), "--after", "mri", "--end",
                            "2026-04-20T10:45Z", "--weight-kg", "2"]),
        }
        self.pump = subprocess.Popen(
            [sys.executable, "-m", "itb_device", "pump-sim", "--listen", "socket://127.0.0.1:0", "--replay",
             str(SAMPLES / f"{URGENT[0]}.itblog"), "--idle-timeout", "60"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._done: dict[str, subprocess.CompletedProcess[str]] = {}

    def result(self, name: str) -> subprocess.CompletedProcess[str]:
        if name not in self._done:
            proc = self.procs[name]
            out, err = proc.communicate(timeout=120)
            self._done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self._done[name]

    def cli_json(self) -> dict[str, Any]:
        p = self.result("json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def cli_error(self, name: str) -> str:
        p = self.result(name)
        assert p.returncode == 2 and not p.stdout, p
        return p.stderr.strip().removeprefix("itb check: error: ")

    def pump_url(self) -> str:
        line = _read_line(self.pump, 30)
        m = re.search(r"socket://127\.0\.0\.1:\d+", line)
        assert m, line
        return m.group(0)

    def close(self) -> None:
        for proc in [*self.procs.values(), self.pump]:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _check_args(sample: tuple[str, ...]) -> list[str]:
    name, start, end, weight, _ = sample
    return [str(SAMPLES / f"{name}.itblog"), "--after", "mri", "--start", start, "--end", end, "--tz",
            "Australia/Sydney", "--weight-kg", weight]


def _cli(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "itb_device", "check", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    bg = Background(tmp_path_factory.mktemp("cli"))
    yield bg
    bg.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, background: Background) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ward")
    srv = Server(root / "data", root / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()


def sydney(utc: str) -> str:
    """A sample's UTC time as a nurse types it in Sydney: local wall-clock time."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    t = dt.datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(ZoneInfo("Australia/Sydney"))
    return t.strftime("%Y-%m-%d %H:%M")


def fill_form(page: Any, *, start: str = "", end: str = "", weight: str = "", mrn: str = "",
              name: str = "", who: str = "", log: Any = None, procedure: str = "mri") -> None:
    if log is not None:
        page.set_input_files("#f-log", log)
    page.check(f"input[name=procedure][value={procedure}]")
    page.fill("#f-start", start)
    page.fill("#f-end", end)
    page.fill("#f-zone", "Australia/Sydney")
    page.fill("#f-weight_kg", weight)
    page.fill("#f-mrn", mrn)
    page.fill("#f-patient_name", name)
    page.fill("#f-checked_by", who)


def submit_and_wait_result(page: Any, button: str = "#check-file", timeout_ms: int = 60_000) -> int:
    page.click(button)
    page.wait_for_url(re.compile(r".*/checks/\d+$"), wait_until="domcontentloaded", timeout=timeout_ms)
    return int(page.url.rsplit("/", 1)[1])


def upload(page: Any, server: Server, sample: tuple[str, ...], mrn: str = "", who: str = "RN Test") -> int:
    name, start, end, weight, _ = sample
    page.goto(server.url)
    fill_form(page, start=sydney(start), end=sydney(end), weight=weight, mrn=mrn, who=who,
              log=SAMPLES / f"{name}.itblog")
    return submit_and_wait_result(page)


def fetch(page: Any, path: str) -> Any:
    resp = page.request.get(path if path.startswith("http") else page.url.split("/checks")[0] + path)
    assert resp.ok, (path, resp.status, resp.text()[:300])
    return resp


# ----- the three verdicts -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(browser: Any, server: Server) -> dict[str, int]:
    """The three samples uploaded through the page once; later tests open their results."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    ids = {}
    for sample in (OK, REVIEW, URGENT):
        ids[sample[4]] = upload(page, server, sample, mrn=f"MRN-{sample[4]}")
        assert page.locator(".verdict-word").inner_text() == sample[4]
    context.close()
    return ids


@pytest.mark.parametrize("sample", [OK, REVIEW, URGENT], ids=lambda s: s[4])
def test_upload_a_sample_gives_the_cli_verdict(page, server, made, background, sample):
    verdict = sample[4]
    check_id = made[verdict]
    page.goto(f"{server.url}checks/{check_id}")
    word = page.locator(".verdict-word")
    assert word.inner_text() == verdict  # in words ...
    assert f"verdict-{verdict}" in page.locator("section.verdict").get_attribute("class")  # ... and colour
    assert page.title().startswith(f"{verdict}: check #{check_id}")
    doc = fetch(page, f"/checks/{check_id}/check.json").json()
    assert doc["verdict"] == verdict and doc["schema"] == "itb-check/1"
    for reason in doc["reasons"]:
        assert page.get_by_text(reason, exact=True).count() >= 1
    for line in doc["summary"]:
        assert page.get_by_text(line, exact=False).count() >= 1
    foot = page.locator(".page-foot .disclaimer").inner_text()
    assert foot.startswith("This software supports, and does not replace")
    if verdict == "OK":
        note = page.locator("#ok-note").inner_text()
        assert "Pump record only" in note and "telemetry cannot show a catheter kink" in note
        assert "OK is from the pump's record only" in " ".join(doc["summary"])
    else:
        assert page.locator("#ok-note").count() == 0
    if verdict == "URGENT":  # the guideline's actions with their sections, the checklist, the evidence
        table = page.locator(".actions-table").first.inner_text()
        assert "5.1.3.1" in table and "5.1.4.1" in table and "DO NOT PERFORM A LUMBAR PUNCTURE" in table
        items = page.locator(".ticks li")
        assert items.count() == len(doc["checklist"]) >= 1
        assert items.first.locator("input[type=checkbox]").count() == 1
        assert page.locator("table.evidence tbody tr").count() == len(doc["evidence"])
        assert page.locator("table.evidence").inner_text().count("motor stall logged") == 1
        # exactly the command line's check: the whole JSON but the file name it was given as
        cli = background.cli_json()
        assert doc["source"]["sha256"] == cli["source"]["sha256"]
        assert doc["source"]["file"] == "mri_delayed_recovery.itblog"
        cli["source"]["file"] = doc["source"]["file"]
        assert doc == cli


# ----- reading the simulated pump ------------------------------------------------------------------


def test_read_the_simulated_pump_from_the_page(page, server, background):
    name, start, end, weight, verdict = URGENT
    url = background.pump_url()
    page.goto(server.url)
    fill_form(page, start=sydney(start), end=sydney(end), weight=weight, mrn="PUMP-READ", who="RN Pump")
    page.fill("#f-url", url)
    page.click("#check-pump")
    page.wait_for_url(re.compile(r".*/(jobs/[^/]+|checks/\d+)$"), wait_until="domcontentloaded")
    if "/jobs/" in page.url:  # the progress page, until the result opens by itself
        assert page.locator("h1").inner_text() == "Reading the pump"
        assert page.locator("progress").count() == 1
    page.wait_for_url(re.compile(r".*/checks/\d+$"), wait_until="domcontentloaded", timeout=60_000)
    assert page.locator(".verdict-word").inner_text() == verdict
    doc = fetch(page, page.url + "/check.json").json()
    sample_sha = hashlib.sha256((SAMPLES / f"{name}.itblog").read_bytes()).hexdigest()
    assert doc["source"]["sha256"] == sample_sha  # the replayed pump gives the sample's bytes
    assert doc["source"]["file"] == f"read from {url}"
    assert f"pump {url}" in page.locator("section.record").inner_text()


def test_a_pump_address_off_this_computer_is_refused_next_to_its_field(page, server):
    page.goto(server.url)
    fill_form(page, start="2026-03-11 01:00", end="2026-03-11 02:00")
    page.fill("#f-url", "socket://192.0.2.7:4000")
    page.click("#check-pump")
    page.wait_for_load_state("domcontentloaded")
    assert "must be on this computer" in page.locator("#url-error").inner_text()
    assert page.locator("#f-url").get_attribute("aria-invalid") == "true"


# ----- refused input: the field's message -----------------------------------------------------------


def test_random_bytes_and_a_wrong_date_give_the_fields_messages(page, server, background):
    junk = background.junk
    page.goto(server.url)
    fill_form(page, start="", end="2026-02-30 10:00", weight="2", log=junk)
    page.click("#check-file")
    page.wait_for_load_state("domcontentloaded")
    log_error = page.locator("#log-error").inner_text()
    assert "junk.itblog: byte 0: not an ITB interrogation log" in log_error
    # the same messages as `itb check`, naming the field where the command line names its option
    end_cli = background.cli_error("end")
    assert end_cli.startswith("--end '2026-02-30 10:00': use a date and time such as")
    assert page.locator("#end-error").inner_text() == "Error: " + end_cli.replace("--end", "End", 1)
    weight_cli = background.cli_error("weight")
    weight_page = page.locator("#weight_kg-error").inner_text()
    assert weight_page == "Error: " + weight_cli.removeprefix("--weight-kg: ")
    for field in ("#f-end", "#f-weight_kg", "#f-log"):
        assert page.locator(field).get_attribute("aria-invalid") == "true"
    # the summary at the top lists them, has the focus, and links to each field
    assert page.evaluate("() => document.activeElement.id") == "error-summary"
    assert page.locator("#error-summary a").count() == 3
    assert page.locator("#kept").count() == 0  # nothing was kept of a file that is not a log


def test_a_procedure_after_the_interrogation_is_refused_and_the_log_kept(page, server):
    name, start, end, weight, verdict = OK
    page.goto(server.url)
    fill_form(page, start="2026-04-21 20:00", end="2026-04-21 20:45", weight=weight,
              log=SAMPLES / f"{name}.itblog")
    page.click("#check-file")
    page.wait_for_load_state("domcontentloaded")
    message = page.locator("#end-error").inner_text()
    assert "after the pump was interrogated" in message
    assert message.endswith("is this the right log, or the right date?")
    assert "Log kept" in page.locator("#kept").inner_text()
    page.fill("#f-start", sydney(start))  # corrected, without choosing the file again
    page.fill("#f-end", sydney(end))
    submit_and_wait_result(page)
    assert page.locator(".verdict-word").inner_text() == verdict


def test_a_file_over_the_cap_gets_a_clear_message(page, server, tmp_path):
    big = tmp_path / "big.itblog"
    big.write_bytes(os.urandom(int(1.5 * CAP_MB * 1024 * 1024)))
    page.goto(server.url)
    page.set_input_files("#f-log", big)
    shown = page.locator("#dz-file").inner_text()  # the script warns before sending
    assert f"larger than {CAP_MB} MB" in shown
    page.evaluate("() => document.getElementById('check-form').submit()")  # and without the script
    page.wait_for_load_state("domcontentloaded")
    assert f"The file is larger than {CAP_MB} MB, the most the ward app takes" in page.locator(
        "#log-error").inner_text()


# ----- hostile text from a log ----------------------------------------------------------------------


def test_script_in_a_logs_text_is_shown_as_text(page, server, tmp_path):
    _, start, end, weight, _ = OK
    page.goto(server.url)
    fill_form(page, start=sydney(start), end=sydney(end), weight=weight, mrn="<b>M1</b>", who="<i>nurse</i>",
              log=write_hostile_log(tmp_path / "hostile.itblog"))
    submit_and_wait_result(page)
    assert page.locator(".ident strong").first.inner_text() == "<script>x</scr"
    about = page.locator("section.about").inner_text()
    assert '"><b>$x^2$' in about and "<img src=x>&\\x01" in about  # the control character escaped
    assert "<b>M1</b>" in page.locator(".ident").inner_text() and "<i>nurse</i>" in about
    # nothing of it became markup
    assert page.locator("script").count() == 1  # ward.js
    assert page.evaluate("() => Array.from(document.scripts).map(s => s.src)")[0].endswith(
        "/static/ward.js?v=" + page.locator("script").get_attribute("src").split("?v=")[1])
    assert page.locator("img[src=x], b:text('M1'), i:text('nurse')").count() == 0
    html = page.content()
    assert "&lt;script&gt;x&lt;/scr" in html and "<script>x" not in html
    assert page.dialogs == []
    # and in the ward list, where the serial is searched for
    page.goto(server.url + "checks?q=" + "%3Cscript")
    assert page.locator("table.ward tbody tr").count() == 1
    assert page.locator("table.ward tbody tr td.serial").inner_text() == "<script>x</scr"
    assert page.locator("script").count() == 1


# ----- the result's documents, check again, recompute -------------------------------------------


def test_downloads_pdf_json_log_and_fhir(page, server, made):
    check_id = made["URGENT"]
    page.goto(f"{server.url}checks/{check_id}")
    pdf = fetch(page, f"/checks/{check_id}/report.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    reader = pypdf.PdfReader(io.BytesIO(pdf.body()))
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "URGENT" in text and "does not replace" in text
    log = fetch(page, f"/checks/{check_id}/check.json").json()["source"]
    original = fetch(page, f"/logs/{log['sha256']}.itblog").body()
    assert original == (SAMPLES / "mri_delayed_recovery.itblog").read_bytes()
    fhir = fetch(page, f"/checks/{check_id}/fhir.json")
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.observation import Observation

    bundle = fhir.json()
    Bundle.model_validate(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "DiagnosticReport" and kinds.count("Observation") == 6
    report = DiagnosticReport.model_validate(bundle["entry"][0]["resource"])
    form = bundle["entry"][0]["resource"]["presentedForm"][0]
    assert form["contentType"] == "application/pdf" and base64.b64decode(form["data"]) == pdf.body()
    assert form["hash"] == base64.b64encode(hashlib.sha1(pdf.body()).digest()).decode()
    assert report.conclusionCode[0].coding[0].code == "URGENT"
    resources = [e["resource"] for e in bundle["entry"]]
    obs = {o.code.coding[0].code: o for o in (Observation.model_validate(r) for r in resources
                                              if r["resourceType"] == "Observation")}
    assert obs["verdict"].valueCodeableConcept.coding[0].code == "URGENT"
    assert obs["motor-stall-duration"].valueQuantity.value == 180.0  # 01:00 to the check at 04:00
    assert float(obs["drug-missed"].valueQuantity.value) == 56.2
    assert obs["withdrawal-risk"].valueCodeableConcept.coding[0].code == "high"
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["identifier"][0]["value"] == "MRN-URGENT"


def test_check_again_with_changed_times_keeps_the_log(page, server, made):
    first = made["OK"]
    page.goto(f"{server.url}checks/{first}")
    logs_before = sorted((server.data / "logs").rglob("*.itblog"))
    page.click("#check-again")
    page.wait_for_load_state("domcontentloaded")
    assert "Log kept" in page.locator("#kept").inner_text()
    assert page.locator("#f-mrn").input_value() == "MRN-OK"
    assert page.locator("#f-end").input_value() == sydney(OK[2])
    page.fill("#f-end", "2026-04-20 21:45")  # an hour later: the check is then too early
    second = submit_and_wait_result(page)
    assert second != first
    doc = fetch(page, f"/checks/{second}/check.json").json()
    assert doc["procedure"]["end"] == "2026-04-20T21:45:00+10:00"
    assert doc["verdict"] == "REVIEW" and any("the guideline asks for 2 h" in r for r in doc["reasons"])
    first_doc = fetch(page, f"/checks/{first}/check.json").json()
    assert doc["source"]["sha256"] == first_doc["source"]["sha256"]
    assert sorted((server.data / "logs").rglob("*.itblog")) == logs_before  # stored once, unchanged
    for p in logs_before:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.stem


def test_recompute_with_a_hospitals_rules_file_says_which_it_used(page, server, made, tmp_path):
    check_id = made["OK"]
    page.goto(f"{server.url}checks/{check_id}")
    bad = tmp_path / "typo.toml"
    bad.write_text("[check]\nstall_recovery_grace_mins = 5\n")
    page.set_input_files("#f-rules_file", bad)
    page.click("section.recompute button[type=submit]")
    page.wait_for_load_state("domcontentloaded")
    assert "unknown key [check] stall_recovery_grace_mins" in page.locator("#rules_file-error").inner_text()
    rules = tmp_path / "strict-grace.toml"
    rules.write_text("[check]\nstall_recovery_grace_min = 5\n")  # the stall recovered 8 min after the MRI
    page.set_input_files("#f-rules_file", rules)
    page.click("section.recompute button[type=submit]")
    page.wait_for_url(re.compile(r".*/checks/\d+$"), wait_until="domcontentloaded")
    new_id = int(page.url.rsplit("/", 1)[1])
    assert new_id != check_id
    box = page.locator("section.recomputed").inner_text()
    assert f"Recomputed from check #{check_id}" in box
    assert "strict-grace.toml (uploaded" in box and "clinical/clinical_rules.toml" in box
    assert page.locator(".verdict-word").inner_text() == "REVIEW"
    assert "the motor stall recovered only at" in box  # the new reason, named
    # with the rules it used, a recomputation gives the stored result again
    page.goto(f"{server.url}checks/{check_id}")
    page.click("section.recompute button[type=submit]")
    page.wait_for_url(re.compile(r".*/checks/\d+$"), wait_until="domcontentloaded")
    assert "The same verdict and reasons." in page.locator("section.recomputed").inner_text()


# ----- the ward list, print, keyboard, and the guards ----------------------------------------------


def test_ward_list_is_searchable_by_mrn_and_serial(page, server, made):
    page.goto(server.url + "checks")
    page.fill("#q", "mrn-rev")
    page.press("#q", "Enter")
    page.wait_for_load_state("domcontentloaded")
    rows = page.locator("table.ward tbody tr")
    assert rows.count() == 1
    row = rows.inner_text()
    assert "MRN-REVIEW" in row and "REVIEW" in row and "RN Test" in row
    page.fill("#q", "NGP410022")  # spontaneous_stall's pump
    page.press("#q", "Enter")
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("table.ward tbody tr").count() >= 1
    assert all("NGP410022" in t for t in page.locator("table.ward td.serial").all_inner_texts())
    page.locator("table.ward a.open").first.click()
    page.wait_for_url(re.compile(r".*/checks/\d+$"), wait_until="domcontentloaded")
    assert page.locator(".verdict-word").inner_text() == "REVIEW"


def test_the_print_view_is_a4(page, server, made, tmp_path):
    check_id = made["URGENT"]
    page.goto(f"{server.url}checks/{check_id}/print")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=60_000)
    out = tmp_path / "print.pdf"
    page.pdf(path=str(out), prefer_css_page_size=True, print_background=True)
    reader = pypdf.PdfReader(str(out))
    assert len(reader.pages) >= 2
    for p in reader.pages:
        w, h = float(p.mediabox.width), float(p.mediabox.height)
        assert abs(w - 595.3) < 1.5 and abs(h - 841.9) < 1.5, (w, h)  # A4 portrait, in points
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "URGENT" in text and "Page 1 of" in text and "does not replace" in text
    assert "New check" not in text and "Recompute" not in text  # the screen's controls are not printed


def test_keyboard_alone_fills_and_sends_the_form(page, server):
    name, start, end, weight, verdict = REVIEW
    page.goto(server.url)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to the content"
    page.set_input_files("#f-log", SAMPLES / f"{name}.itblog")
    page.focus("#f-start")
    page.keyboard.type(sydney(start))
    page.keyboard.press("Tab")
    page.keyboard.type(sydney(end))
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("Australia/Sydney")
    page.keyboard.press("Tab")
    page.keyboard.type(weight)
    page.keyboard.press("Enter")  # the first button: check the log file
    page.wait_for_url(re.compile(r".*/checks/\d+$"), wait_until="domcontentloaded")
    assert page.locator(".verdict-word").inner_text() == verdict


def test_posts_without_the_token_or_from_another_site_are_refused(page, server):
    page.goto(server.url)
    resp = page.request.post(server.url + "checks", multipart={"procedure": "mri", "end": "2026-03-11 02:00"})
    assert resp.status == 403 and "did not come from this page" in resp.text()
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    resp = page.request.post(server.url + "checks", headers={"Origin": "http://evil.example"},
                             multipart={"csrf": token, "procedure": "mri", "end": "2026-03-11 02:00"})
    assert resp.status == 403 and "another site" in resp.text()
    resp = page.request.get(server.url, headers={"Host": "evil.example"})
    assert resp.status == 421  # DNS rebinding: only 127.0.0.1, localhost and [::1] are answered
    head = page.request.get(server.url).headers
    assert "script-src 'self'" in head["content-security-policy"]
    assert "default-src 'none'" in head["content-security-policy"]
    assert head["x-content-type-options"] == "nosniff" and head["cache-control"] == "no-store"


def test_the_ward_list_survives_a_killed_server(page, server, made):
    """Last in this module: it restarts the server."""
    check_id = made["REVIEW"]
    page.goto(server.url + "checks")
    before = page.locator("table.ward tbody").inner_text()
    assert "MRN-REVIEW" in before and before.count("Open") >= 3
    server.kill()  # SIGKILL: no clean shutdown
    server.start()
    page.goto(server.url + "checks")
    assert page.locator("table.ward tbody").inner_text() == before
    page.goto(f"{server.url}checks/{check_id}")
    assert page.locator(".verdict-word").inner_text() == "REVIEW"
    # its plots are drawn from the kept log, the stored inputs and rules, checked against the stored result
    svg = fetch(page, f"{server.url}checks/{check_id}/plots/zoom.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.body()
