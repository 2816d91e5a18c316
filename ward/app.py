"""The ward app's pages (Flask): new check, result, print view, ward list, reading a pump, and
the downloads (PDF, JSON, FHIR, the original log).  Server-rendered with Jinja2 autoescaping;
one small script (``static/ward.js``) only adds drag-and-drop anywhere on the page and the
print button: every page works without it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from flask import Flask, Response, abort, g, redirect, render_template, request, send_file, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from parsers.text import printable

from . import analysis_adapter as engine
from . import security
from .config import WardConfig
from .forms import PROCEDURES, CheckForm, pump_url, serial_ports, validate
from .jobs import Jobs
from .service import FieldErrors, ResultChanged, Ward

HERE = Path(__file__).parent
FIELD_ORDER = ("log", "url", "procedure", "start", "end", "zone", "weight_kg", "mrn", "patient_name",
               "checked_by", "rules_file")
FIELD_LABEL = {"log": "The pump's log", "url": "Read the pump", "procedure": "Procedure", "start": "Start",
               "end": "End", "zone": "Time zone", "weight_kg": "Weight", "mrn": "MRN",
               "patient_name": "Name", "checked_by": "Checked by", "rules_file": "Rules file"}


def create_app(config: WardConfig) -> Flask:
    """The ward app for ``config`` (its data folder is created if missing)."""
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0
    engine.warm_up()  # the analysis loaded now: the first check answers as quickly as the next
    ward = Ward(config)
    jobs = Jobs(ward)
    secret = security.secret_key(config.data_dir)
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
    zones.append("UTC")
    disclaimer = engine.disclaimer()
    app.extensions["ward"] = ward
    # every value a page shows passes through printable() (control characters escaped), then
    # Jinja2's autoescaping: text from a log or a user is always text, never markup
    app.jinja_env.finalize = _finalize

    def check_host() -> Response | None:
        if config.allowed_hosts and request.host not in config.allowed_hosts:
            return Response("This address is not the ward app's: open it at http://127.0.0.1:"
                            f"{config.port}/\n", 421, mimetype="text/plain")
        return None

    @app.before_request
    def guard() -> Any:
        bad = check_host()
        if bad is not None:
            return bad
        g.csrf_cookie = request.cookies.get(security.CSRF_COOKIE)
        g.new_cookie = None
        if not g.csrf_cookie or len(g.csrf_cookie) < 20:
            g.csrf_cookie = g.new_cookie = security.new_cookie_value()
        open_paths = request.path.startswith("/static/") or request.path in ("/login", "/health")
        if config.access_key and not open_paths:
            given = request.cookies.get(security.AUTH_COOKIE, "")
            if not security.same_text(given, security.auth_value(secret, config.access_key)):
                if request.method == "GET":
                    back = request.full_path if request.query_string else request.path
                    return redirect(url_for("login", next=back))
                abort(401)
        if request.method == "POST":
            if not security.same_origin(request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"),
                                        request.host_url):
                abort(403, "This form was sent from another site, and was refused.")
            cookie = request.cookies.get(security.CSRF_COOKIE)
            if not security.csrf_ok(secret, cookie, request.form.get("csrf")):
                abort(403, "This form has expired or did not come from this page: open the page again "
                           "and send it once more.")
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        for k, v in security.HEADERS.items():
            resp.headers.setdefault(k, v)
        if not request.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"
        if getattr(g, "new_cookie", None):
            resp.set_cookie(security.CSRF_COOKIE, g.new_cookie, httponly=True, samesite="Strict",
                            secure=request.is_secure, path="/")
        return resp

    @app.context_processor
    def common() -> dict[str, Any]:
        return {
            "csrf": security.csrf_token(secret, g.get("csrf_cookie") or ""),
            "disclaimer": disclaimer,
            "static_v": _static_version(),
        }

    @app.template_filter("when")
    def when(value: str | None, zone: str | None = None) -> str:
        """An ISO time as 'YYYY-MM-DD HH:MM ABBR' in ``zone`` (the check's)."""
        if not value:
            return "unknown"
        t = dt.datetime.fromisoformat(value)
        with contextlib.suppress(ValueError, KeyError, OSError):
            t = t.astimezone(ZoneInfo(zone)) if zone else t
        return t.strftime("%Y-%m-%d %H:%M ") + (t.tzname() or t.strftime("%z"))

    @app.template_filter("words")
    def words(value: str) -> str:
        return str(value).replace("_", " ")

    # ----- pages ---------------------------------------------------------------------------------

    def form_page(form: CheckForm, errors: dict[str, str] | None = None, status: int = 200,
                  kept: Any = None, again: dict[str, Any] | None = None) -> tuple[str, int]:
        errors = errors or {}
        if kept is None and form.log:
            kept = ward.store.get_log_record(form.log)
            if kept is None:
                form.log = ""
        keys = [k for k in FIELD_ORDER if k in errors] + [k for k in errors if k not in FIELD_ORDER]
        ordered = []
        for k in keys:  # "End: ..." once, not "End: End '...': ..." (the messages may name the field)
            label = FIELD_LABEL.get(k, k)
            ordered.append((k, "" if errors[k].startswith(label) else label, errors[k]))
        return render_template(
            "new.html", form=form, errors=errors, error_list=ordered, kept=kept, again=again,
            procedures=PROCEDURES, zones=zones, ports=serial_ports(),
            max_mb=config.max_upload_bytes / (1024 * 1024), max_bytes=config.max_upload_bytes,
            zone_now=_zone_label(form.zone),
        ), status

    @app.get("/")
    def new_check() -> Any:
        form = CheckForm(zone=config.zone)
        again = None
        if request.args.get("again", "").isdigit():
            row = ward.store.get_check(int(request.args["again"]))
            if row is None:
                abort(404)
            again = row
            form = CheckForm(
                procedure=row["procedure"], zone=row["zone"],
                start=_typed_time(row["start_at"], row["zone"]), end=_typed_time(row["end_at"], row["zone"]),
                weight_kg=f"{row['weight_kg']:g}" if row["weight_kg"] is not None else "",
                mrn=row["mrn"] or "", patient_name=row["patient_name"] or "",
                checked_by=row["checked_by"] or "", log=row["log_sha256"],
            )
        elif request.args.get("log"):
            form.log = request.args["log"]
        return form_page(form, again=again)

    @app.post("/checks")
    def create_check() -> Any:
        form = CheckForm.from_mapping(request.form, config.zone)
        action = request.form.get("action", "file")
        upload = request.files.get("log")
        has_file = upload is not None and bool(upload.filename)
        valid, errors = validate(form, ward.rules)
        sha = log = name = None
        if action == "pump":
            url, problem = pump_url(form)
            if problem:
                errors["url"] = problem
            if errors or valid is None or url is None:
                return form_page(form, errors, 400)
            job = jobs.start(url, form, valid)
            return redirect(url_for("job_page", job_id=job.id), 303)
        try:
            if has_file:
                assert upload is not None
                name = Path(upload.filename or "log.itblog").name
                sha, log = ward.accept_log(upload.read(), name, "upload")
                form.log = sha
            elif form.log:
                rec, log = ward.kept_log(form.log)
                sha, name = rec.sha256, rec.name
            else:
                errors["log"] = ("Choose the pump's log file (.itblog) or drop it here, or read the pump "
                                 "with the button below")
        except FieldErrors as exc:
            errors.update(exc.errors)
        if errors or valid is None or sha is None:
            return form_page(form, errors, 400)
        try:
            check_id = ward.run(valid, sha, log, source="upload", name=name)
        except FieldErrors as exc:
            return form_page(form, exc.errors, 400)
        return redirect(url_for("result", check_id=check_id), 303)

    @app.get("/jobs/<job_id>")
    def job_page(job_id: str) -> Any:
        job = jobs.get(job_id)
        if job is None:
            abort(404, "This reading is not known (the ward app was restarted?): read the pump again.")
        if job.state == "done" and job.check_id is not None:
            return redirect(url_for("result", check_id=job.check_id), 303)
        if job.state == "failed":
            form = job.form
            if job.log:
                form.log = job.log
            return form_page(form, job.errors, 400)
        return render_template("job.html", job=job, elapsed=time.monotonic() - job.started)

    def load(check_id: int) -> dict[str, Any]:
        row = ward.store.get_check(check_id)
        if row is None:
            abort(404, f"There is no check {check_id} in the ward's record.")
        return row

    def result_context(row: dict[str, Any]) -> dict[str, Any]:
        doc = row["result"]
        only = engine.pump_record_only()
        summary = [x for x in doc["summary"] if x != only]
        ok_note = None
        if doc["verdict"] == "OK":  # beside every OK: the pump's record only
            ok_note = next((x for x in [*doc["summary"], *doc["notes"], *doc["reasons"]]
                            if x.startswith("OK is from the pump's record")), only)
        original = None
        if row["recomputed_from"]:
            original = ward.store.get_check(row["recomputed_from"])
        changes = None
        if original is not None:
            then, now = original["result"], doc
            changes = {
                "added": [x for x in now["reasons"] if x not in then["reasons"]],
                "removed": [x for x in then["reasons"] if x not in now["reasons"]],
            }
        risks = [(k, doc["risks"][k], engine.level_word(doc["risks"][k]["level"]))
                 for k in ("withdrawal", "overdose")]
        return {
            "row": row, "doc": doc, "zone": row["zone"], "summary": summary, "ok_note": ok_note,
            "headline": engine.verdict_headline(doc["verdict"]), "risks": risks, "original": original,
            "changes": changes, "procedure_name": PROCEDURES.get(row["procedure"], row["procedure"]),
            "rules_sha": row["rules_sha256"], "current_rules": ward.rules.source,
        }

    @app.get("/checks/<int:check_id>")
    def result(check_id: int) -> Any:
        return render_template("result.html", **result_context(load(check_id)), printing=False)

    @app.get("/checks/<int:check_id>/print")
    def print_view(check_id: int) -> Any:
        return render_template("print.html", **result_context(load(check_id)), printing=True)

    @app.get("/checks/<int:check_id>/print.css")
    def print_css(check_id: int) -> Any:
        """The A4 page: size, margins, and on every printed page the check it is from, the page
        number and the disclaimer (CSS page-margin boxes; a stylesheet, as the CSP allows)."""
        row = load(check_id)
        doc = row["result"]
        running = (f"ITB pump check #{check_id} | pump {row['pump_serial'] or 'unknown'}"
                   + (f" | MRN {row['mrn']}" if row["mrn"] else "")
                   + f" | interrogated {when(doc['interrogated_at'], row['zone'])}"
                   + f" | verdict {doc['verdict']}")
        css = (
            "@page { size: A4 portrait; margin: 14mm 12mm 20mm 12mm;\n"
            f"  @top-left {{ content: {_css_string(running)}; font: 7.5pt sans-serif; color: #333; }}\n"
            f"  @bottom-left {{ content: {_css_string(disclaimer)}; font: bold 7.5pt sans-serif; "
            "vertical-align: top; padding-top: 2mm; }\n"
            '  @bottom-right { content: "Page " counter(page) " of " counter(pages); '
            "font: bold 9pt sans-serif; vertical-align: top; padding-top: 2mm; }\n}\n"
        )
        return Response(css, mimetype="text/css")

    @app.get("/checks/<int:check_id>/plots/<key>.svg")
    def plot(check_id: int, key: str) -> Any:
        load(check_id)
        try:
            svg = ward.figure(check_id, key)
        except ResultChanged as exc:
            abort(409, str(exc))
        if svg is None:
            abort(404)
        resp = Response(svg, mimetype="image/svg+xml")
        resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return resp

    @app.get("/checks/<int:check_id>/report.pdf")
    def report_pdf(check_id: int) -> Any:
        row = load(check_id)
        try:
            path = ward.pdf(check_id)
        except ResultChanged as exc:
            abort(409, str(exc))
        return send_file(path, mimetype="application/pdf", as_attachment=True,
                         download_name=f"itb-check-{check_id}-{_safe(row['pump_serial'])}.pdf")

    @app.get("/checks/<int:check_id>/check.json")
    def report_json(check_id: int) -> Any:
        row = load(check_id)
        body = json.dumps(row["result"], indent=1, ensure_ascii=False) + "\n"
        return Response(body, mimetype="application/json", headers={
            "Content-Disposition": f'attachment; filename="itb-check-{check_id}.json"'})

    @app.get("/checks/<int:check_id>/fhir.json")
    def report_fhir(check_id: int) -> Any:
        from .fhir import MIME, bundle

        row = load(check_id)
        try:
            pdf = ward.pdf(check_id).read_bytes()
        except ResultChanged as exc:
            abort(409, str(exc))
        body = json.dumps(bundle(row, pdf, mrn_system=config.mrn_system), indent=1, ensure_ascii=False)
        return Response(body + "\n", mimetype=MIME, headers={
            "Content-Disposition": f'attachment; filename="itb-check-{check_id}.fhir.json"'})

    @app.get("/logs/<sha>.itblog")
    def original_log(sha: str) -> Any:
        rec = ward.store.get_log_record(sha)
        if rec is None:
            abort(404)
        data = ward.store.read_log(sha)
        return Response(data, mimetype="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="{_safe(rec.pump_serial)}-{sha[:12]}.itblog"'})

    @app.post("/checks/<int:check_id>/recompute")
    def recompute(check_id: int) -> Any:
        row = load(check_id)
        choice = request.form.get("rules", "same")
        upload = request.files.get("rules_file")
        try:
            if upload is not None and upload.filename:
                rules = ward.uploaded_rules(upload.read(), upload.filename)
            elif choice == "current":
                rules = ward.rules
            else:
                rules = ward.rules_of(row)
            new_id = ward.recompute(check_id, rules)
        except FieldErrors as exc:
            ctx = result_context(row)
            return render_template("result.html", **ctx, printing=False, recompute_errors=exc.errors), 400
        return redirect(url_for("result", check_id=new_id), 303)

    @app.get("/checks")
    def ward_list() -> Any:
        q = request.args.get("q", "")[:80]
        rows = ward.store.list_checks(q)
        return render_template("list.html", rows=rows, q=q, total=ward.store.count_checks())

    @app.get("/health")
    def health() -> Any:
        return {"ok": True, "software": ward.software}

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        nxt = request.values.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:  # only this app's pages
            nxt = "/"
        if not config.access_key:
            return redirect(nxt)
        error = None
        if request.method == "POST":
            if security.key_ok(request.form.get("key", ""), config.access_key):
                resp = redirect(nxt, 303)
                resp.set_cookie(security.AUTH_COOKIE, security.auth_value(secret, config.access_key),
                                httponly=True, samesite="Strict", secure=request.is_secure, path="/")
                return resp
            time.sleep(1.0)  # slows guessing
            error = "That is not the access key"
        return render_template("login.html", error=error, next=nxt), (401 if error else 200)

    # ----- errors ----------------------------------------------------------------------------------

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: Exception) -> Any:
        mb = config.max_upload_bytes / (1024 * 1024)
        message = (f"The file is larger than {mb:g} MB, the most the ward app takes: an interrogation log is "
                   "far smaller (a year of history is about 300 kB). Is it the right file?")
        if request.path == "/checks":
            return form_page(CheckForm(zone=config.zone), {"log": message}, 413)
        return render_template("error.html", code=413, message=message), 413

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        default = {404: "There is no such page.", 401: "Sign in with the access key first.",
                   405: "This page cannot be used that way."}
        message = exc.description if exc.description and not exc.description.startswith(("The ", "You ")) \
            else default.get(code, exc.description or "")
        return render_template("error.html", code=code, message=message), code

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Any:
        app.logger.exception("unexpected error")
        message = " ".join(str(exc).split()) or type(exc).__name__
        return render_template("error.html", code=500, message=f"Something went wrong: {message}"), 500

    return app


def _finalize(value: Any) -> Any:
    """What ``{{ ... }}`` prints: markup the templates made as it is, any other string with its
    control characters escaped (autoescaping then escapes it), None as nothing."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return printable(value)
    return "" if value is None else value


def _static_version() -> str:
    mtimes = [p.stat().st_mtime_ns for p in (HERE / "static").iterdir() if p.is_file()]
    return str(max(mtimes) if mtimes else 0)


def _zone_label(name: str) -> str:
    try:
        now = dt.datetime.now(ZoneInfo(name))
    except (ValueError, KeyError, OSError):
        return ""
    off = now.strftime("%z")
    return f"now {now.tzname()}, UTC{off[:3]}:{off[3:]}"


def _typed_time(value: str | None, zone: str) -> str:
    """A stored ISO time as the form shows it: local wall-clock time in the check's zone."""
    if not value:
        return ""
    try:
        local = dt.datetime.fromisoformat(value).astimezone(ZoneInfo(zone))
    except (ValueError, KeyError, OSError):
        return value
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():  # the clocks change here
        return local.isoformat(timespec="minutes")
    return local.strftime("%Y-%m-%d %H:%M")


def _css_string(s: str) -> str:
    """``s`` as a CSS string literal: anything but letters, digits and plain punctuation escaped."""
    out = "".join(c if (c.isalnum() and c.isascii()) or c in " .,:;()'-/|#" else f"\\{ord(c):06x} "
                  for c in printable(s))
    return f'"{out}"'


def _safe(text: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text or "pump")[:40] or "pump"

