"""Reading a pump from the page: one background thread per reading, with its progress.

The form is checked first (a wrong time is refused before the pump is touched); the thread
opens the pump with ``itb_device.open(url)`` as ``itb interrogate`` does, reads the log
(progress: pages read of total, retries) through the ward's page cache (``DATA/pumps``: only the
pages written since this pump's last reading move over the link, and the log is byte-identical
to a whole read; docs/wire-protocol.md, incremental interrogation), keeps it by SHA-256 and runs
the check.  The page
``/jobs/ID`` shows how far it got and refreshes itself every second (a ``<meta>`` refresh: no
script needed), then opens the result.  Readings live in memory; a log is kept only once it is
read whole.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .forms import CheckForm, ValidCheck
from .service import FieldErrors, Ward

KEEP_S = 3600  # a finished reading is forgotten after an hour


@dataclass
class Job:
    id: str
    url: str
    form: CheckForm
    state: str = "connecting"  # connecting, reading, checking, done, failed
    pages_done: int = 0
    pages_total: int = 0
    retries: int = 0
    check_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    how: str = ""  # how the log was read (incremental or whole, and why)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def percent(self) -> int:
        return 100 * self.pages_done // self.pages_total if self.pages_total else 0


class Jobs:
    def __init__(self, ward: Ward) -> None:
        self.ward = ward
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, url: str, form: CheckForm, valid: ValidCheck) -> Job:
        job = Job(secrets.token_urlsafe(12), url, form)
        with self._lock:
            now = time.monotonic()
            for k in [k for k, j in self._jobs.items() if j.finished and now - j.finished > KEEP_S]:
                del self._jobs[k]
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, valid), name=f"ward-read-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job, valid: ValidCheck) -> None:
        try:
            data = self._read(job)
            job.state = "checking"
            name = f"read from {job.url}"
            sha, log = self.ward.accept_log(data, name, f"pump {job.url}")
            job.log = sha
            job.check_id = self.ward.run(valid, sha, log, source=f"pump {job.url}", name=name)
            job.state = "done"
        except FieldErrors as exc:  # what the pump sent is not a log: said next to the pump's field
            job.errors = {("url" if k == "log" else k): v for k, v in exc.errors.items()}
            job.log = exc.log or job.log
            job.state = "failed"
        except Exception as exc:  # the message is shown next to the pump field, never a traceback
            job.errors = {"url": _one_line(exc)}
            job.state = "failed"
        finally:
            job.finished = time.monotonic()

    def _read(self, job: Job) -> bytes:
        from itb_device import open as open_pump
        from itb_device.backends import backend_for
        from itb_device.pagecache import PageCache
        from itb_device.serial_backend import SerialProgrammer

        def progress(p: Any) -> None:
            job.state = "reading"
            job.pages_done, job.pages_total, job.retries = p.pages_done, p.pages_total, p.retries

        if not issubclass(backend_for(job.url), SerialProgrammer):
            raise ValueError(f"{job.url}: not a link to a pump")
        prog = open_pump(job.url, baudrate=115200, link_timeout=0.25, progress=progress)
        try:
            job.state = "reading"
            got = prog.read_log_cached(PageCache.at(self.ward.config.data_dir / "pumps"))
            job.how = got.describe()
            return bytes(got.data)
        finally:
            with contextlib.suppress(Exception):
                prog.close()


def _one_line(exc: BaseException) -> str:
    from parsers.text import printable

    text = " ".join(str(exc).split()) or type(exc).__name__
    return printable(text)
