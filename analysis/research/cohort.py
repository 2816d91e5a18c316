"""The cohort runner: the research tables of many logs, in parallel, resumable.

Each log is one task (:func:`process_log`): read it, build its tables (``analysis.research.tables``,
which runs ``analysis.analyse`` for the risks) and write them to one part file
``DIR/parts/<name>-<key>.zip`` (an Arrow IPC stream per table), atomically.  The key hashes the
log's path, size and modification time, the procedures and rules it was analysed with and
the package version, so ``resume`` skips exactly the logs whose part is still valid.  Tasks
run on a local process pool (chunked, so process start-up does not dominate) or on a Dask
distributed cluster (the same function; the paths and DIR must be on storage the workers
share).  A final combine step writes

* ``DIR/parquet/<table>/part-NNNNN.parquet``: one Parquet dataset per table,
* ``DIR/csv/<table>.csv``: the same tables as CSV (UTC times as ``...Z``),
* ``DIR/plots/<figure>.png``: the cohort distributions (``analysis.research.plots``),
* ``DIR/failures.csv``: every file that could not be read or analysed, with the reason,
* ``DIR/manifest.json``: what ran, how, and how long.

Every table gets ``log_id`` (the log's path relative to the directory it was found in) and,
except the summary (which has it already), ``serial``.  A run replaces the figures of an earlier
one in ``DIR`` (none are left from it); ``itb cohort`` refuses a ``DIR`` that holds an earlier
run's results unless ``--resume`` or ``--force`` (:func:`existing_outputs`,
:func:`remove_outputs`).  Ctrl-C stops the workers quietly and raises
:class:`CohortInterrupted` (how many logs are done; ``resume`` goes on from there).
Documentation: ``docs/research.md``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import pandas as pd

from clinical.rules import DEFAULT_LABEL, ENV_VAR, get_rules
from parsers import LogFormatError, read_log
from parsers.atomic import atomic_write_bytes, pid_alive, remove_stale_temp_files
from parsers.text import printable

from . import tables as history_tables

Engine = Literal["local", "dask"]
PART_FORMAT = 1
COMBINE_BATCH = 256  # logs per Parquet file of the combined datasets
SMALL_TABLES = ("titration", "refills", "stalls", "alarms", "summary")  # kept in memory for plots
PROCEDURE_COLUMNS = ("kind", "start_utc", "end_utc")


class CohortError(Exception):
    """The cohort cannot run as asked (bad arguments, missing optional package, no logs)."""


class CohortInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; the workers were shut down.  ``done`` of ``total`` logs have their
    result in ``out_dir/parts`` (a run with ``resume`` keeps them)."""

    def __init__(self, done: int, total: int, out_dir: Path) -> None:
        super().__init__(f"interrupted; {done} of {total} logs done")
        self.done, self.total, self.out_dir = done, total, out_dir


# what a run writes in its output directory (see the module docstring)
OUTPUTS = ("manifest.json", "failures.csv", "parquet", "csv", "plots", "parts")
DASK_HINT = "from the repository root: .venv/bin/pip install -e '.[dask]' (or pip install -e '.[dask]')"


def existing_outputs(out_dir: str | Path) -> list[str]:
    """The results of an earlier run in ``out_dir`` (names from :data:`OUTPUTS`), if any."""
    out = Path(out_dir)
    return [name for name in OUTPUTS if (out / name).exists()] if out.is_dir() else []


def remove_outputs(out_dir: str | Path) -> list[str]:
    """Remove an earlier run's results from ``out_dir`` (only the names a run writes, so other
    files there stay); returns what was removed."""
    out = Path(out_dir)
    gone = existing_outputs(out)
    for name in gone:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return gone


@contextlib.contextmanager
def sigint_deferred(spawning: bool = False) -> Iterator[None]:
    """Hold Ctrl-C back for a moment: threads and worker processes started meanwhile inherit a
    blocked SIGINT and never see a Ctrl-C (this process stops them quietly instead), and a Ctrl-C
    that came meanwhile raises KeyboardInterrupt here when the moment ends, not halfway through
    starting a cluster.  ``spawning``: processes will be started with multiprocessing's spawn
    method (Dask's nannies do).  Only in the main thread; elsewhere it does nothing."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    old_handler = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if spawning:
            # multiprocessing's resource tracker unblocks SIGINT in the thread that first starts
            # it (and then spawns worker processes from there): start it now, and block again
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a pending Ctrl-C lands in `pressed`
        signal.signal(signal.SIGINT, old_handler)
    if pressed:
        raise KeyboardInterrupt


def ignore_sigint() -> None:
    """In a worker process: leave Ctrl-C to the parent, which stops the pool and says how far
    it got."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def package_version() -> str:
    """The installed itb-telemetry version (``unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("itb-telemetry")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Failure:
    """A file that could not be read or analysed, and why."""

    path: str
    reason: str
    stage: str = "read"


@dataclass(frozen=True)
class LogTask:
    """One log's work: where it is, how it is named in the tables, where its part goes.

    ``procedures`` are (kind, start_utc, end_utc, serial) rows; a row with a serial applies
    only to the pump with that serial.  ``truth_sidecar`` reads procedures and weight from
    ``NAME.truth.json`` beside the log (synthetic cohorts).  ``rules`` is a TOML path or None.
    """

    path: str
    log_id: str
    part: str
    procedures: tuple[tuple[str, str, str, str], ...] = ()
    truth_sidecar: bool = False
    rules: str | None = None


@dataclass(frozen=True)
class TaskResult:
    """What a task reports back (small: the tables stay in the part file)."""

    path: str
    log_id: str
    part: str
    ok: bool
    reason: str = ""
    stage: str = ""
    seconds: float = 0.0
    rows: int = 0


@dataclass
class CohortRun:
    """The outcome of :func:`run_cohort`."""

    out_dir: Path
    logs: int
    processed: int
    resumed: int
    failures: list[Failure] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    work_seconds: float = 0.0
    plots: list[str] = field(default_factory=list)

    @property
    def combined(self) -> int:
        """Logs whose tables are in the combined outputs."""
        return self.rows.get("summary", 0)


# ----- discovering logs ---------------------------------------------------------------------

def discover(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, str]], list[Failure]]:
    """The logs to process: (path, log_id) for each file given and each ``*.itblog`` under
    each directory given (recursively, sorted), without duplicates; a path that does not
    exist is a failure.  ``log_id`` is the path relative to the directory it was found in
    (the file name for a file given directly), or the path as given if that clashes."""
    found: list[tuple[Path, str]] = []
    failures: list[Failure] = []
    seen: set[Path] = set()
    ids: set[str] = set()
    for p in map(Path, paths):
        if p.is_dir():
            items = [(f, f.relative_to(p).as_posix()) for f in sorted(p.rglob("*.itblog")) if f.is_file()]
        elif p.exists():
            items = [(p, p.name)]
        else:
            failures.append(Failure(str(p), "no such file or directory", "discover"))
            continue
        for f, log_id in items:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            if log_id in ids:
                log_id = f.as_posix()
            ids.add(log_id)
            found.append((f, log_id))
    return found, failures


def read_procedures(path: str | Path) -> dict[str, list[tuple[str, str, str, str]]]:
    """Procedures from a CSV with ``kind,start_utc,end_utc`` and ``log`` (the log's file name,
    with or without ``.itblog``, or its log_id) and/or ``serial`` columns.

    Returns ``{log name or "": rows}``; rows under ``""`` match by serial.  Raises
    CohortError for a file that cannot be read or lacks the columns.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise CohortError(f"cannot read procedures {path}: {exc}") from exc
    missing = [c for c in PROCEDURE_COLUMNS if c not in df.columns]
    if missing or not ({"log", "serial"} & set(df.columns)):
        raise CohortError(f"procedures {path} needs columns kind, start_utc, end_utc and log or serial "
                          f"(has {', '.join(df.columns)})")
    out: dict[str, list[tuple[str, str, str, str]]] = {}
    for r in df.to_dict("records"):
        try:
            pd.Timestamp(r["start_utc"])
            pd.Timestamp(r["end_utc"] or r["start_utc"])
        except ValueError as exc:
            raise CohortError(f"procedures {path}: bad time in {r}: {exc}") from exc
        name = str(r.get("log", "")).strip().removesuffix(".itblog")
        serial = str(r.get("serial", "")).strip()
        if not name and not serial:
            raise CohortError(f"procedures {path}: a row has neither log nor serial: {r}")
        row = (r["kind"].strip().lower() or "mri", r["start_utc"], r["end_utc"] or r["start_utc"], serial)
        out.setdefault(name, []).append(row)
    return out


def _rules_digest(rules: str | None) -> str:
    data = get_rules(rules).data
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def plan(found: Sequence[tuple[Path, str]], out_dir: str | Path, *,
         procedures: Mapping[str, list[tuple[str, str, str, str]]] | None = None,
         truth_sidecar: bool = False, rules: str | None = None) -> tuple[list[LogTask], list[Failure]]:
    """A task per log, its part file named by a key of everything its result depends on."""
    parts = Path(out_dir).resolve() / "parts"
    procedures = procedures or {}
    by_serial = tuple(procedures.get("", ()))
    rules = rules or os.environ.get(ENV_VAR) or None
    common = {"version": package_version(), "format": PART_FORMAT, "rules": _rules_digest(rules)}
    tasks, failures = [], []
    for path, log_id in found:
        try:
            st = path.stat()
            truth = path.with_name(path.name.removesuffix(".itblog") + ".truth.json")
            tst = truth.stat() if truth_sidecar and truth.exists() else None
        except OSError as exc:
            failures.append(Failure(str(path), f"cannot stat: {exc.strerror or exc}", "discover"))
            continue
        stem = path.name.removesuffix(".itblog")
        procs = tuple(procedures.get(stem, ())) + tuple(procedures.get(log_id.removesuffix(".itblog"), ())
                                                         if log_id.removesuffix(".itblog") != stem else ())
        procs += by_serial
        ident = {**common, "path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                 "procedures": procs, "truth": [tst.st_size, tst.st_mtime_ns] if tst else None}
        key = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:80]
        tasks.append(LogTask(str(path.resolve()), log_id, str(parts / f"{safe}-{key}.zip"), procs,
                             truth_sidecar, rules))
    return tasks, failures


# ----- the per-log work ---------------------------------------------------------------------

def _task_procedures(task: LogTask, serial: str) -> tuple[list[dict[str, str]], float | None]:
    procs = [{"kind": k, "start_utc": s, "end_utc": e} for k, s, e, ser in task.procedures
             if not ser or ser == serial]
    weight = None
    if task.truth_sidecar:
        p = Path(task.path)
        truth = p.with_name(p.name.removesuffix(".itblog") + ".truth.json")
        if truth.exists():
            doc = json.loads(truth.read_text())
            procs += [dict(x) for x in doc.get("procedures", [])]
            weight = doc.get("weight_kg")
    return procs, weight


def log_tables(task: LogTask) -> dict[str, pd.DataFrame]:
    """Read one log and build its tables with the cohort's id columns (raises on failure)."""
    log = read_log(task.path, workers=1)  # the cohort runs in parallel across logs already
    procs, weight = _task_procedures(task, log.header.serial)
    tabs = history_tables.tables(log, procs, weight_kg=weight, rules=task.rules)
    out = {}
    for name, df in tabs.items():
        df = df.copy()
        if name != "summary":
            df.insert(0, "serial", pd.array([log.header.serial] * len(df), dtype="str"))
        df.insert(0, "log_id", pd.array([task.log_id] * len(df), dtype="str"))
        out[name] = df
    return out


def process_log(task: LogTask) -> TaskResult:
    """Read, tabulate and analyse one log; write its part file.  Never raises: a log that
    cannot be read or analysed comes back as a failed result with the reason."""
    t0 = time.perf_counter()

    def fail(reason: str, stage: str) -> TaskResult:
        return TaskResult(task.path, task.log_id, task.part, False, reason, stage,
                          time.perf_counter() - t0)

    parts = Path(task.part).parent
    if not parts.is_dir():
        return fail(f"the output directory {parts} is not visible here: on a cluster it must be "
                    "on storage shared by the client and every worker", "write")
    try:
        tabs = log_tables(task)
    except LogFormatError as exc:
        return fail((f"byte {exc.offset}: " if exc.offset is not None else "") + exc.message, "read")
    except OSError as exc:
        return fail(f"cannot read: {exc.strerror or exc}", "read")
    except Exception as exc:  # one bad log must not stop a cohort
        return fail(f"{type(exc).__name__}: {exc}", "analyse")
    meta = {"format": PART_FORMAT, "log_id": task.log_id, "path": task.path,
            "version": package_version(), "seconds": round(time.perf_counter() - t0, 4)}
    try:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            z.writestr("meta.json", json.dumps(meta))
            for name, df in tabs.items():
                z.writestr(f"{name}.arrow", _ipc_bytes(df))
        atomic_write_bytes(task.part, [buf.getvalue()])
    except OSError as exc:
        return fail(f"cannot write {task.part}: {exc.strerror or exc}", "write")
    return TaskResult(task.path, task.log_id, task.part, True, seconds=time.perf_counter() - t0,
                      rows=sum(len(df) for df in tabs.values()))


def process_chunk(tasks: Sequence[LogTask]) -> list[TaskResult]:
    """:func:`process_log` over a chunk of tasks (one pool round trip per chunk)."""
    return [process_log(t) for t in tasks]


def _ipc_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def read_part_arrow(path: str | Path) -> dict[str, Any]:
    """The tables in one part file as pyarrow Tables (what the combine step concatenates)."""
    import pyarrow as pa

    with zipfile.ZipFile(path) as z:
        return {name: pa.ipc.open_stream(z.read(f"{name}.arrow")).read_all()
                for name in history_tables.TABLES}


def read_part(path: str | Path) -> dict[str, pd.DataFrame]:
    """The tables in one part file (an uncompressed zip of Arrow IPC streams, one per table)."""
    return {name: t.to_pandas() for name, t in read_part_arrow(path).items()}


# ----- progress -----------------------------------------------------------------------------

class Progress:
    """A one-line progress report on ``stream`` (only when it is a terminal) and a line per
    failure (always)."""

    def __init__(self, total: int, stream: TextIO | None = None, prefix: str = "itb cohort") -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._shown = False

    def update(self, result: TaskResult | None = None, n: int = 1) -> None:
        """Count ``n`` finished logs (and report ``result`` if it failed)."""
        self.done += n
        if result is not None and not result.ok:
            self.failed += 1
            self.failure(Failure(result.path, result.reason, result.stage))
        now = time.perf_counter()
        if self.tty and (now - self._last > 0.2 or self.done == self.total):
            self._last = now
            rate = self.done / max(now - self.t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else 0
            self.stream.write(f"\r{self.prefix}: {self.done}/{self.total} logs, {self.failed} failed, "
                              f"{rate:.1f} logs/s, ~{_dur(left)} left ")
            self.stream.flush()
            self._shown = True

    def failure(self, f: Failure) -> None:
        """Report one unreadable file on its own line."""
        self._clear()
        self.stream.write(f"{self.prefix}: cannot {'analyse' if f.stage == 'analyse' else 'read'} "
                          f"{printable(f.path)}: {printable(f.reason)}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A message on its own line."""
        self._clear()
        self.stream.write(f"{self.prefix}: {printable(text)}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the progress line."""
        self._clear()

    def _clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
            self._shown = False


def _dur(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ----- engines ------------------------------------------------------------------------------

def chunk_size(n: int, workers: int) -> int:
    """Tasks per chunk: about 16 chunks per worker, 1 to 16 logs each."""
    return max(1, min(16, n // max(1, workers * 16)))


def chunks(tasks: Sequence[LogTask], workers: int) -> list[list[LogTask]]:
    """The tasks in chunks of :func:`chunk_size`, the last two rounds in quarter-size ones:
    the workers then run out of work together, none left alone with a last big chunk."""
    size = chunk_size(len(tasks), workers)
    small = max(1, size // 4)
    head = max(0, len(tasks) - 2 * workers * size)
    return ([list(tasks[i:min(i + size, head)]) for i in range(0, head, size)]
            + [list(tasks[i:i + small]) for i in range(head, len(tasks), small)])


def run_local(tasks: Sequence[LogTask], workers: int,
              on_result: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
    """Run tasks on a pool of ``workers`` processes, in chunks; results in completion order."""
    from concurrent.futures.process import BrokenProcessPool

    results: list[TaskResult] = []
    if not tasks:
        return results
    parts = chunks(tasks, workers)
    ex = ProcessPoolExecutor(max_workers=min(workers, len(parts)), initializer=ignore_sigint)
    try:
        with sigint_deferred():  # the workers start now and leave Ctrl-C to this process
            futures = {ex.submit(process_chunk, c): c for c in parts}
        for fut in as_completed(futures):
            try:
                got = fut.result()
            except (BrokenProcessPool, OSError, RuntimeError) as exc:
                got = [TaskResult(t.path, t.log_id, t.part, False, f"worker process failed: {exc}", "analyse")
                       for t in futures[fut]]
            for r in got:
                results.append(r)
                if on_result:
                    on_result(r)
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown()
    return results


def _worker_version() -> str:
    return package_version()


def run_dask(tasks: Sequence[LogTask], workers: int, scheduler: str | None = None,
             on_result: Callable[[TaskResult], None] | None = None,
             on_note: Callable[[str], None] | None = None) -> list[TaskResult]:
    """Run tasks on a Dask distributed cluster: the scheduler at ``scheduler``, or a
    LocalCluster of ``workers`` single-threaded processes.  Workers must have this package
    (same version) and see the logs and the output directory at the same paths."""
    try:
        # the first import starts Dask's event-loop thread: it must inherit the block of Ctrl-C
        with sigint_deferred(spawning=True):
            from distributed import Client, LocalCluster
            from distributed import as_completed as dask_completed
    except ImportError as exc:
        raise CohortError(f"--engine dask needs dask.distributed; install it {DASK_HINT}") from exc
    cluster = client = None
    dlog = logging.getLogger("distributed")
    level = dlog.level
    dlog.setLevel(max(level, logging.WARNING))  # the scheduler's INFO chatter is not for users
    results: list[TaskResult] = []
    futures: list[Any] = []
    interrupted = False
    try:
        # the worker processes start with Ctrl-C blocked and keep it so: it is this process's to
        # handle (a Ctrl-C while the cluster starts arrives when it is up)
        with sigint_deferred(spawning=True):
            try:
                if scheduler:
                    try:
                        client = Client(scheduler, timeout="20s")
                    except (OSError, TimeoutError) as exc:
                        raise CohortError(
                            f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from exc
                else:
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
                    client = Client(cluster)
            except CohortError:
                raise
            except Exception as exc:
                raise CohortError(f"cannot start a Dask cluster: {exc}") from exc
        mine = package_version()
        versions = client.run(_worker_version)
        wrong = {w: v for w, v in versions.items() if v != mine}
        if wrong:
            raise CohortError(f"Dask workers run other itb-telemetry versions than this client ({mine}): "
                              + ", ".join(f"{w}: {v}" for w, v in sorted(wrong.items())))
        if on_note:
            on_note(f"Dask cluster {client.scheduler.address} with {len(versions)} workers")
        if not tasks:
            return results
        futures = client.map(process_log, list(tasks), pure=False)
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for fut in dask_completed(futures):
            try:
                r = fut.result()
            except Exception as exc:  # a lost worker fails its task, not the run
                t = by_key[fut.key]
                r = TaskResult(t.path, t.log_id, t.part, False,
                               f"Dask task failed: {type(exc).__name__}: {exc}", "analyse")
            fut.release()
            results.append(r)
            if on_result:
                on_result(r)
    except KeyboardInterrupt:
        # Ctrl-C: stop quietly; what is done is in its part file, the rest is cancelled
        interrupted = True
        dlog.setLevel(logging.CRITICAL)
        if futures and client is not None:
            with contextlib.suppress(Exception):
                client.cancel(futures)
        raise
    finally:
        quiet = contextlib.suppress(Exception) if interrupted else contextlib.nullcontext()
        if interrupted:  # the cluster's goodbyes are not for the user
            logging.disable(logging.WARNING)
        try:
            with sigint_deferred():  # another Ctrl-C waits until the cluster is down
                if client is not None:
                    with quiet:
                        client.close()
                if cluster is not None:
                    with quiet:
                        cluster.close()
        finally:
            logging.disable(logging.NOTSET)
            dlog.setLevel(level)
    return results


# ----- combining ----------------------------------------------------------------------------

def _write_csv(table: Any, path: Path, header: bool) -> None:
    """Append an Arrow table to a CSV file, UTC times as ``2026-03-10T14:00:00Z``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(pa.timestamp("s", tz="UTC"), safe=False), format="%Y-%m-%dT%H:%M:%SZ")
        cols.append(col)
    out = pa.table(cols, names=table.column_names)
    with open(path, "ab" if not header else "wb") as f:
        pcsv.write_csv(out, f, pcsv.WriteOptions(include_header=header))


def _template(name: str) -> pd.DataFrame:
    df = history_tables.empty_table(name)
    if name != "summary":
        df.insert(0, "serial", pd.array([], dtype="str"))
    df.insert(0, "log_id", pd.array([], dtype="str"))
    return df


def combine(out_dir: str | Path, parts: Sequence[tuple[str, str]], progress: Progress | None = None
            ) -> tuple[dict[str, int], dict[str, pd.DataFrame], list[Failure]]:
    """Gather part files ((log_id, part path) pairs) into the Parquet datasets and CSV files
    under ``out_dir``; returns rows per table, the small tables (for plots) and parts that
    could not be read.  Written beside the old outputs first, then swapped in."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    stage = out / f".combine-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "csv").mkdir(parents=True)
    for name in history_tables.TABLES:
        (stage / "parquet" / name).mkdir(parents=True)
    rows = dict.fromkeys(history_tables.TABLES, 0)
    files = dict.fromkeys(history_tables.TABLES, 0)
    small: dict[str, list[pd.DataFrame]] = {n: [] for n in SMALL_TABLES}
    bad: list[Failure] = []
    ordered = sorted(parts)
    for start in range(0, len(ordered), COMBINE_BATCH):
        batch: dict[str, list[pd.DataFrame]] = {n: [] for n in history_tables.TABLES}
        for log_id, part in ordered[start:start + COMBINE_BATCH]:
            try:
                tabs = read_part_arrow(part)
            except (OSError, KeyError, ValueError, zipfile.BadZipFile, pa.ArrowException) as exc:
                if isinstance(exc, FileNotFoundError):
                    reason = ("its result file is missing here: on a cluster the output directory must be "
                              "on storage shared by the client and every worker")
                else:  # remove it, so that a resumed run does this log again
                    reason = f"unreadable result file {part} (removed; run again to redo it): {exc}"
                    Path(part).unlink(missing_ok=True)
                bad.append(Failure(log_id, reason, "combine"))
                continue
            for n in history_tables.TABLES:
                if tabs[n].num_rows:
                    batch[n].append(tabs[n])
        for n in history_tables.TABLES:
            if not batch[n]:
                continue
            table = pa.concat_tables(batch[n], promote_options="permissive")
            pq.write_table(table, stage / "parquet" / n / f"part-{files[n]:05d}.parquet")
            _write_csv(table, stage / "csv" / f"{n}.csv", header=rows[n] == 0)
            files[n] += 1
            rows[n] += table.num_rows
            if n in small:
                small[n].append(table.to_pandas())
        if progress is not None:
            progress.update(n=len(ordered[start:start + COMBINE_BATCH]))
    for n in history_tables.TABLES:
        if files[n] == 0:  # an empty but typed dataset, so readers still get the columns
            t = pa.Table.from_pandas(_template(n), preserve_index=False)
            pq.write_table(t, stage / "parquet" / n / "part-00000.parquet")
            _write_csv(t, stage / "csv" / f"{n}.csv", header=True)
    for sub in ("parquet", "csv"):
        old = out / sub
        trash = out / f".old-{sub}-{os.getpid()}"
        if old.exists():
            old.rename(trash)
        (stage / sub).rename(old)
        shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)
    tables = {n: pd.concat(v, ignore_index=True) if v else _template(n) for n, v in small.items()}
    return rows, tables, bad


def read_tables(out_dir: str | Path, names: Iterable[str] = history_tables.TABLES) -> dict[str, pd.DataFrame]:
    """The combined tables of a finished cohort run, read back from its Parquet datasets."""
    out = {}
    for n in names:
        files = sorted((Path(out_dir) / "parquet" / n).glob("*.parquet"))
        out[n] = (pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files
                  else _template(n))
    return out


def write_failures(out_dir: str | Path, failures: Sequence[Failure]) -> Path:
    """``failures.csv``: path, stage, reason (atomically)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "stage", "reason"])
    for f in failures:
        w.writerow([f.path, f.stage, f.reason])
    path = Path(out_dir) / "failures.csv"
    atomic_write_bytes(path, [buf.getvalue().encode()])
    return path


def write_plots(out_dir: str | Path, tables: Mapping[str, pd.DataFrame],
                rules: str | None = None) -> list[str]:
    """The cohort figures as ``plots/<name>.png`` (nothing when matplotlib is missing)."""
    try:
        from . import plots
    except ImportError:
        return []
    d = Path(out_dir) / "plots"
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in plots.cohort_figures(tables, rules=rules).items():
        plots.save_png(fig, d / f"{name}.png")
        written.append(f"plots/{name}.png")
    for old in d.glob("*.png"):  # a figure an earlier run drew and this one did not is stale
        if f"plots/{old.name}" not in written:
            old.unlink()
    return written


# ----- leftovers of a killed run ---------------------------------------------------------------

_STAGE_DIR = re.compile(r"^\.(?:combine|old-[a-z]+)-(?P<pid>\d+)$")


def remove_stale_work(out_dir: str | Path) -> list[str]:
    """Remove what a run that was killed (SIGKILL, a power cut) left in ``out_dir``: its
    ``.combine-PID/`` and ``.old-SUB-PID/`` folders, once process PID is gone, and the temporary
    files of its atomic writes (``.NAME.*.tmp`` in ``out_dir``, ``parts/`` and ``plots/``) that no
    live process is writing (dead process id in the name; without one, open by no process and
    older than 2 s, or than an hour where /proc cannot tell).  Returns the names removed."""
    out = Path(out_dir)
    gone: list[str] = []
    if not out.is_dir():
        return gone
    for d in out.iterdir():
        m = _STAGE_DIR.match(d.name)
        if m and d.is_dir() and not d.is_symlink() and not pid_alive(int(m["pid"])):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    for sub in (out, out / "parts", out / "plots"):
        if sub.is_dir():
            gone += [str(p.relative_to(out)) for p in remove_stale_temp_files(sub)]
    return gone


# ----- the whole run ------------------------------------------------------------------------

def run_cohort(paths: Iterable[str | Path], out_dir: str | Path, *, workers: int | None = None,
               engine: Engine = "local", scheduler: str | None = None, resume: bool = False,
               procedures: str | Path | Mapping[str, list[tuple[str, str, str, str]]] | None = None,
               truth_sidecar: bool = False, rules: str | None = None, make_plots: bool = True,
               stream: TextIO | None = None) -> CohortRun:
    """Tabulate every log under ``paths`` into ``out_dir`` (see the module docstring).

    ``workers`` processes (default: the CPUs available) on the ``local`` engine, or Dask
    workers on ``dask`` (a LocalCluster of that many unless ``scheduler`` is given).
    ``resume`` keeps the part files of logs already done.  ``procedures`` is a CSV path (see
    :func:`read_procedures`) or its parsed form.  Unreadable files are listed in
    ``failures.csv`` (and on ``stream``, where a progress line shows if it is a terminal) and
    never stop the run.  Raises CohortError when nothing can run (no logs, bad arguments).
    """
    t0 = time.perf_counter()
    if engine not in ("local", "dask"):
        raise CohortError(f"unknown engine {engine!r}: use local or dask")
    if scheduler and engine != "dask":
        raise CohortError("--scheduler needs --engine dask")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers < 1:
        raise CohortError("workers must be at least 1")
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise CohortError("the cohort writes Parquet and needs pyarrow, a dependency of itb-telemetry: "
                          "reinstall it from the repository root with .venv/bin/pip install -e .") from exc
    try:
        get_rules(rules)  # None: the default or $ITB_CLINICAL_RULES; a bad file stops here, before any output
    except (OSError, ValueError) as exc:
        raise CohortError(str(exc)) from exc
    procs = read_procedures(procedures) if isinstance(procedures, str | Path) else (procedures or {})
    out = Path(out_dir)
    found, failures = discover(paths)
    if not found:
        why = "; ".join(f"{f.path}: {f.reason}" for f in failures) or "no .itblog files in " + ", ".join(
            map(str, paths))
        raise CohortError(f"no logs to analyse ({why})")
    created = [p for p in (out, out / "parts") if not p.exists()]
    try:
        (out / "parts").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CohortError(f"cannot create {out / 'parts'}: {exc.strerror or exc}") from exc
    for name in remove_stale_work(out):
        logging.getLogger(__name__).info("removed %s, left by a run that was killed", out / name)
    tasks, more = plan(found, out, procedures=procs, truth_sidecar=truth_sidecar, rules=rules)
    failures += more
    todo = [t for t in tasks if not (resume and Path(t.part).is_file())]
    progress = Progress(len(todo), stream)
    for f in failures:
        progress.failure(f)
    try:
        if not todo:
            results: list[TaskResult] = []
        elif engine == "dask":
            results = run_dask(todo, workers, scheduler, progress.update, progress.note)
        else:
            results = run_local(todo, workers, progress.update)
    except BaseException as exc:
        progress.close()
        done = sum(Path(t.part).is_file() for t in tasks)
        if done == 0:  # nothing to resume from: leave no empty folders behind
            for p in reversed(created):
                with contextlib.suppress(OSError):
                    p.rmdir()
        if isinstance(exc, KeyboardInterrupt):
            raise CohortInterrupted(done, len(tasks), out) from None
        raise
    progress.close()
    failed = {r.path for r in results if not r.ok}
    failures += [Failure(r.path, r.reason, r.stage) for r in results if not r.ok]
    completed = [(t.log_id, t.part) for t in tasks if t.path not in failed]
    rows, small, bad = combine(out, completed)
    path_of = {t.log_id: t.path for t in tasks}
    bad = [Failure(path_of.get(f.path, f.path), f.reason, f.stage) for f in bad]
    for f in bad:
        progress.failure(f)
    failures += bad
    plots_written = write_plots(out, small, rules) if make_plots else []
    if not make_plots and (out / "plots").is_dir():  # an earlier run's figures no longer match the tables
        shutil.rmtree(out / "plots")
    write_failures(out, failures)
    run = CohortRun(out, len(found), len(todo), len(tasks) - len(todo), failures, rows,
                    time.perf_counter() - t0, sum(r.seconds for r in results), plots_written)
    manifest = {
        "version": package_version(), "engine": engine, "workers": workers, "scheduler": scheduler,
        "logs": run.logs, "processed_now": run.processed, "resumed": run.resumed,
        "failures": len(failures), "rows": rows, "seconds": round(run.seconds, 3),
        "work_seconds": round(run.work_seconds, 3), "plots": plots_written,
        "rules": rules or os.environ.get(ENV_VAR) or DEFAULT_LABEL,
        "finished_utc": pd.Timestamp.now("UTC").isoformat(),
    }
    atomic_write_bytes(out / "manifest.json", [(json.dumps(manifest, indent=1) + "\n").encode()])
    return run


__all__ = [
    "CohortError", "CohortRun", "Failure", "LogTask", "Progress", "TaskResult", "chunk_size", "chunks",
    "combine", "discover", "log_tables", "plan", "process_chunk", "process_log",
    "read_part", "read_part_arrow", "read_procedures", "read_tables", "run_cohort", "run_dask", "run_local",
    "write_failures", "write_plots",
]
