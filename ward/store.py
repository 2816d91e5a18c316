"""The ward's record: every check, the logs they were computed from and the rules they used.

One folder (``--data``): ``ward.sqlite3`` (SQLite with write-ahead logging; every check is
written in one transaction, so a server killed at any moment keeps every finished check and
never half of one), ``logs/`` (each source log stored once under its SHA-256, read-only, never
under the name it was uploaded with and never modified) and ``reports/`` (PDFs and plots made
from a stored check, on first request).  The folder is made private to the user (0700).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsers.atomic import atomic_write_bytes

SCHEMA_VERSION = 1
_SHA = re.compile(r"^[0-9a-f]{64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    first_seen  TEXT NOT NULL,          -- UTC, ISO 8601
    name        TEXT,                   -- the name it was uploaded with: shown, never used as a path
    pump_serial TEXT,
    source      TEXT NOT NULL           -- 'upload' or 'pump URL'
);
CREATE TABLE IF NOT EXISTS rules (
    sha256      TEXT PRIMARY KEY,       -- of the canonical JSON of the merged rules
    source      TEXT NOT NULL,          -- the rules file, as clinical.rules names it
    data        TEXT NOT NULL,          -- the merged rules (JSON): enough to recompute exactly
    first_seen  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,      -- UTC, ISO 8601
    log_sha256      TEXT NOT NULL REFERENCES logs(sha256),
    rules_sha256    TEXT NOT NULL REFERENCES rules(sha256),
    procedure       TEXT NOT NULL CHECK (procedure IN ('mri', 'diathermy')),
    start_at        TEXT,               -- ISO 8601 with offset (NULL: assumed by the check)
    end_at          TEXT NOT NULL,
    zone            TEXT NOT NULL,
    weight_kg       REAL,
    mrn             TEXT,
    patient_name    TEXT,
    checked_by      TEXT,
    verdict         TEXT NOT NULL CHECK (verdict IN ('OK', 'REVIEW', 'URGENT')),
    pump_serial     TEXT,
    interrogated_at TEXT,
    pump            TEXT NOT NULL,      -- JSON: what the log's header and status say about the pump
    figures         TEXT NOT NULL,      -- JSON: the plots' keys, titles and captions
    result          TEXT NOT NULL,      -- JSON: docs/check-json.md, with "source"
    software        TEXT NOT NULL,      -- itb-telemetry version that computed it
    source          TEXT NOT NULL,      -- 'upload' or 'pump URL'
    recomputed_from INTEGER REFERENCES checks(id)
);
CREATE INDEX IF NOT EXISTS checks_mrn ON checks(mrn COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS checks_serial ON checks(pump_serial COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS checks_created ON checks(created_at);
"""


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class StoredLogChanged(RuntimeError):
    """A stored log no longer has the SHA-256 it is filed under (changed on disk)."""


@dataclass(frozen=True)
class LogRecord:
    sha256: str
    size: int
    first_seen: str
    name: str | None
    pump_serial: str | None
    source: str


class Store:
    """The data folder: SQLite for the records, content-addressed files for the logs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / "ward.sqlite3"
        self.logs_dir = self.root / "logs"
        self.reports_dir = self.root / "reports"
        for d in (self.root, self.logs_dir, self.reports_dir):
            d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # patient data: only this user
            os.chmod(self.root, 0o700)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.db_path} was written by a newer itb-telemetry (schema "
                                   f"{version}); upgrade, or give another --data folder")
            if version < SCHEMA_VERSION:  # one transaction: the schema and its version, or nothing
                db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; "
                                 "COMMIT;")

    # ----- connections and transactions ------------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one request (SQLite connections are cheap; one per thread is safe)."""
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=FULL")  # a finished check survives a power cut too
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    @contextlib.contextmanager
    def transaction(db: sqlite3.Connection) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: all of it or none of it."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ----- logs --------------------------------------------------------------------------------

    def log_path(self, sha: str) -> Path:
        if not _SHA.match(sha):
            raise ValueError("not a SHA-256")
        return self.logs_dir / sha[:2] / f"{sha}.itblog"

    def put_log(self, data: bytes, name: str | None, pump_serial: str | None, source: str) -> str:
        """Keep ``data`` once under its SHA-256 (the file is written atomically and made
        read-only; a log already kept is not written again).  Returns the SHA-256."""
        sha = sha256_hex(data)
        path = self.log_path(sha)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            atomic_write_bytes(path, [data])
            with contextlib.suppress(OSError):
                os.chmod(path, 0o400)
        with self.connect() as db, self.transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO logs (sha256, size, first_seen, name, pump_serial, source) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sha, len(data), utc_now(), name, pump_serial, source),
            )
        return sha

    def get_log_record(self, sha: str) -> LogRecord | None:
        if not _SHA.match(sha or ""):
            return None
        with self.connect() as db:
            row = db.execute("SELECT * FROM logs WHERE sha256 = ?", (sha,)).fetchone()
        return LogRecord(**dict(row)) if row else None

    def read_log(self, sha: str) -> bytes:
        """The stored bytes of log ``sha``, verified against their SHA-256."""
        data = self.log_path(sha).read_bytes()
        if sha256_hex(data) != sha:
            raise StoredLogChanged(f"the stored log {sha[:12]}... no longer matches its SHA-256: it was "
                                   "changed on disk; it cannot be used")
        return data

    def count_logs(self) -> int:
        with self.connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM logs").fetchone()[0])

    # ----- rules -------------------------------------------------------------------------------

    def put_rules(self, db: sqlite3.Connection, source: str, data: Any) -> str:
        text = canonical_json(data)
        sha = sha256_hex(text.encode("utf-8"))
        db.execute("INSERT OR IGNORE INTO rules (sha256, source, data, first_seen) VALUES (?, ?, ?, ?)",
                   (sha, source, text, utc_now()))
        return sha

    def get_rules(self, sha: str) -> tuple[str, Any] | None:
        with self.connect() as db:
            row = db.execute("SELECT source, data FROM rules WHERE sha256 = ?", (sha,)).fetchone()
        return (row["source"], json.loads(row["data"])) if row else None

    # ----- checks ------------------------------------------------------------------------------

    def add_check(self, rec: dict[str, Any], rules_source: str, rules_data: Any) -> int:
        """Store one finished check (and its rules) in one transaction; returns its id."""
        with self.connect() as db, self.transaction(db):
            rec = dict(rec, rules_sha256=self.put_rules(db, rules_source, rules_data))
            rec["pump"] = canonical_json(rec["pump"])
            rec["figures"] = canonical_json(rec["figures"])
            rec["result"] = json.dumps(rec["result"], ensure_ascii=False)
            cols = ", ".join(rec)
            marks = ", ".join("?" for _ in rec)
            cur = db.execute(f"INSERT INTO checks ({cols}) VALUES ({marks})", tuple(rec.values()))
            return int(cur.lastrowid or 0)

    def get_check(self, check_id: int) -> dict[str, Any] | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT checks.*, rules.source AS rules_source, logs.name AS log_name, logs.size AS log_size "
                "FROM checks JOIN rules ON rules.sha256 = checks.rules_sha256 "
                "JOIN logs ON logs.sha256 = checks.log_sha256 WHERE checks.id = ?",
                (check_id,),
            ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["pump"] = json.loads(out["pump"])
        out["result"] = json.loads(out["result"])
        out["figures"] = json.loads(out["figures"])
        return out

    def list_checks(self, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
        """The newest checks first; ``query`` matches an MRN or a pump serial (any part, any case)."""
        sql = ("SELECT id, created_at, procedure, start_at, end_at, zone, mrn, patient_name, checked_by, "
               "verdict, pump_serial, interrogated_at, recomputed_from, source FROM checks")
        args: list[Any] = []
        q = query.strip()
        if q:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += (" WHERE mrn LIKE ? ESCAPE '\\' COLLATE NOCASE"
                    " OR pump_serial LIKE ? ESCAPE '\\' COLLATE NOCASE")
            args += [like, like]
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self.connect() as db:
            return [dict(r) for r in db.execute(sql, args).fetchall()]

    def count_checks(self) -> int:
        with self.connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM checks").fetchone()[0])

    # ----- files made from a check --------------------------------------------------------------

    def report_path(self, check_id: int, name: str) -> Path:
        d = self.reports_dir / str(int(check_id))
        d.mkdir(exist_ok=True)
        return d / name
