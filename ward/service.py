"""What the ward app does, without the web: take a log, run the check, keep it, recompute it,
and make its documents.  The web pages (``ward.app``) and the pump reader (``ward.jobs``) call
this; this calls the analysis only through ``ward.analysis_adapter``."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import analysis_adapter as engine
from .config import WardConfig
from .forms import ValidCheck
from .store import Store, sha256_hex, utc_now

RECENT = 8  # finished checks kept in memory for their PDF and plots
MAX_RULES_BYTES = 256 * 1024


class FieldErrors(Exception):
    """Messages by form field; ``log`` is the SHA-256 of a log that was read and kept (so the
    form can keep it), if any."""

    def __init__(self, errors: dict[str, str], log: str | None = None) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.log = log


class ResultChanged(RuntimeError):
    """A stored check recomputed now gives another result (other software): its documents are
    not made from a result that is not the stored one."""


class Ward:
    """The ward's record and its checks."""

    def __init__(self, config: WardConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.rules = engine.load_rules(config.rules_path)  # a bad --rules file stops the start
        self.software = engine.software_version()
        self._recent: OrderedDict[int, engine.Computed] = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[str, threading.Lock] = {}

    # ----- logs ------------------------------------------------------------------------------

    def accept_log(self, data: bytes, name: str, source: str) -> tuple[str, Any]:
        """Read ``data`` as a log and keep it (once, by SHA-256); (sha, log).  FieldErrors for
        the log field when it is not a log (nothing is kept then)."""
        if not data:
            raise FieldErrors({"log": f"{name}: the file is empty"})
        try:
            log = engine.read_log(data, name)
        except engine.LogUnreadable as exc:
            raise FieldErrors({"log": str(exc)}) from exc
        serial = engine.pump_info(log)["serial"]
        return self.store.put_log(data, name, serial, source), log

    def kept_log(self, sha: str) -> tuple[Any, Any]:
        """(record, log) of a kept log; FieldErrors when there is none."""
        rec = self.store.get_log_record(sha)
        if rec is None:
            raise FieldErrors({"log": "The kept log is not in the ward's record: choose the log file again"})
        return rec, engine.read_log(self.store.read_log(sha), rec.name or sha[:12])

    # ----- checks ----------------------------------------------------------------------------

    def run(
        self,
        valid: ValidCheck,
        sha: str,
        log: Any,
        *,
        source: str,
        name: str | None,
        rules: Any = None,
        recomputed_from: int | None = None,
    ) -> int:
        """Run the check on a kept log and store it; its id.  FieldErrors (field ``end``) when the
        check refuses the procedure (it ends after the interrogation)."""
        rules = rules if rules is not None else self.rules
        info = engine.pump_info(log)
        try:
            c = engine.run_check(
                log, kind=valid.procedure, end=valid.end, start=valid.start, weight_kg=valid.weight_kg,
                rules=rules, zone=valid.zone,
                source={"file": name or f"{sha[:12]}.itblog", "sha256": sha, "pump_serial": info["serial"]},
            )
        except engine.CheckRefused as exc:
            raise FieldErrors({"end": str(exc)}, log=sha) from exc
        rules_source, rules_data = engine.rules_record(rules)
        doc = c.document
        check_id = self.store.add_check(
            {
                "created_at": utc_now(),
                "log_sha256": sha,
                "procedure": valid.procedure,
                "start_at": valid.start.isoformat() if valid.start else None,
                "end_at": valid.end.isoformat(),
                "zone": valid.zone_name,
                "weight_kg": valid.weight_kg,
                "mrn": valid.mrn,
                "patient_name": valid.patient_name,
                "checked_by": valid.checked_by,
                "verdict": doc["verdict"],
                "pump_serial": info["serial"],
                "interrogated_at": doc.get("interrogated_at"),
                "pump": info,
                "figures": engine.figure_captions(c),
                "result": doc,
                "software": self.software,
                "source": source,
                "recomputed_from": recomputed_from,
            },
            rules_source,
            rules_data,
        )
        self._remember(check_id, c)
        return check_id

    def _remember(self, check_id: int, c: engine.Computed) -> None:
        with self._lock:
            self._recent[check_id] = c
            self._recent.move_to_end(check_id)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def stored_inputs(self, row: dict[str, Any]) -> ValidCheck:
        """A stored check's inputs, as the form would give them."""
        zone: dt.tzinfo
        try:
            zone = ZoneInfo(row["zone"])
        except (ValueError, KeyError, OSError):
            zone = dt.UTC
        return ValidCheck(
            procedure=row["procedure"],
            start=dt.datetime.fromisoformat(row["start_at"]) if row["start_at"] else None,
            end=dt.datetime.fromisoformat(row["end_at"]),
            zone=zone,
            zone_name=row["zone"],
            weight_kg=row["weight_kg"],
            mrn=row["mrn"],
            patient_name=row["patient_name"],
            checked_by=row["checked_by"],
        )

    def recompute(self, check_id: int, rules: Any) -> int:
        """Compute a stored check again from its kept log and inputs with ``rules``: a new check
        that names the one it recomputes and the rules it used."""
        row = self.store.get_check(check_id)
        if row is None:
            raise KeyError(check_id)
        rec, log = self.kept_log(row["log_sha256"])
        return self.run(self.stored_inputs(row), rec.sha256, log, source=row["source"], name=rec.name,
                        rules=rules, recomputed_from=check_id)

    def rules_of(self, row: dict[str, Any]) -> Any:
        stored = self.store.get_rules(row["rules_sha256"])
        if stored is None:
            raise KeyError(row["rules_sha256"])
        return engine.stored_rules(*stored)

    def uploaded_rules(self, data: bytes, filename: str) -> Any:
        """A hospital's rules file sent with the recompute form, merged over the defaults (its
        errors, one line naming the key, as ``itb check --rules`` gives them)."""
        if len(data) > MAX_RULES_BYTES:
            raise FieldErrors({"rules_file": f"A rules file is a few kB; this one is over "
                                             f"{MAX_RULES_BYTES // 1024} kB"})
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename or "rules.toml").name)[:60] or "rules.toml"
        with tempfile.TemporaryDirectory(prefix="itb-ward-rules-") as tmp:
            path = Path(tmp) / safe
            path.write_bytes(data)
            try:
                rules = engine.load_rules(path)
            except (ValueError, OSError) as exc:
                raise FieldErrors({"rules_file": str(exc).replace(str(path), safe)}) from exc
        label = f"{safe} (uploaded {utc_now()[:10]}, sha256 {sha256_hex(data)[:12]})"
        return engine.stored_rules(label, rules.data)

    # ----- documents made from a check ----------------------------------------------------------

    def computed(self, check_id: int) -> engine.Computed:
        """The finished check in memory, or recomputed from its kept log, inputs and rules; a
        recomputation that does not give the stored result raises ResultChanged."""
        with self._lock:
            c = self._recent.get(check_id)
        if c is not None:
            return c
        row = self.store.get_check(check_id)
        if row is None:
            raise KeyError(check_id)
        _, log = self.kept_log(row["log_sha256"])
        v = self.stored_inputs(row)
        c = engine.run_check(log, kind=v.procedure, end=v.end, start=v.start, weight_kg=v.weight_kg,
                             rules=self.rules_of(row), zone=v.zone, source=row["result"].get("source", {}))
        same = ("verdict", "reasons", "summary", "risks", "checklist", "evidence", "findings")
        if any(c.document.get(k) != row["result"].get(k) for k in same):
            raise ResultChanged(
                f"check {check_id} was computed by itb-telemetry {row['software']}; this version "
                f"({self.software}) gives another result from the same log: use Recompute to see it")
        self._remember(check_id, c)
        return c

    def _file_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._making.setdefault(key, threading.Lock())

    def pdf(self, check_id: int) -> Path:
        """The check's A4 PDF report (made once, then kept)."""
        path = self.store.report_path(check_id, "report.pdf")
        with self._file_lock(str(path)):
            if not path.exists():
                engine.write_pdf(self.computed(check_id), path)
        return path

    def figure(self, check_id: int, key: str) -> bytes | None:
        """A plot of the check as SVG (the report's ``zoom`` or ``month``), made once, then kept."""
        row = self.store.get_check(check_id)
        if row is None or key not in {f["key"] for f in row["figures"]}:
            return None
        path = self.store.report_path(check_id, f"{key}.svg")
        with self._file_lock(str(path.parent)):
            if not path.exists():
                from parsers.atomic import atomic_write_bytes

                for fig in engine.figures(self.computed(check_id)):
                    atomic_write_bytes(self.store.report_path(check_id, f"{fig.key}.svg"), [fig.svg])
        with contextlib.suppress(FileNotFoundError):
            return path.read_bytes()
        return None
