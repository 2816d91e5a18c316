"""Atomic file writes, and the clean-up of what a killed writer left behind.

Every file this project writes (logs, exports, reports, cohort parts) goes through
:func:`atomic_write_bytes`, so a reader never sees half a file; :func:`remove_stale_temp_files`
is how the next run removes the temporary file of a write that was killed (SIGKILL, a power cut)
without ever touching one a live process is still writing.  One home for both, here at the
bottom of the import graph, so the command line and the cohort engine share it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path


def atomic_write_bytes(path: str | Path, chunks: Iterable[bytes]) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it: a reader
    never sees a half-written file and a crash leaves the old file intact.  The temporary
    file is ``.NAME.PID.XXXXXXXX.tmp``: the process id tells a later run whether its writer is
    gone (:func:`stale_temp_files`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent or ".")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----- leftovers of a process that was killed ------------------------------------------------------
# Atomic writes go through ``.NAME.<pid>.<random>.tmp`` beside the target (``.NAME.<random>.tmp``
# before the writer named its process); a SIGKILL or a power cut between the write and the rename
# leaves that file behind.  The next run removes it, once nobody is writing it any more.

_TMP_TAIL = re.compile(r"^(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp$")
_TMP_NAME = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp$")
LEGACY_TMP_MIN_AGE_S = 2.0  # a temp file without a process id must be this old (the rename window)
LEGACY_TMP_AGE_NO_PROC_S = 3600.0  # ... and, where /proc cannot say who has it open, this old


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def open_by_anyone(paths: set[str]) -> set[str] | None:
    """Those of ``paths`` (absolute) a process on this machine has open, from /proc; None where
    there is no /proc to ask."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    found: set[str] = set()
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            fds = os.listdir(d / "fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(d / "fd" / fd)
                if target in paths:
                    found.add(target)
    return found


def stale_temp_files(folder: Path, name: str | None = None) -> list[Path]:
    """Temporary files of atomic writes in ``folder`` (of the target ``name`` only, when given)
    that no live process is writing: their process id (in the name) is dead, or, without one,
    no process has them open and they are older than :data:`LEGACY_TMP_MIN_AGE_S`."""
    stale: list[Path] = []
    legacy: list[Path] = []
    pattern = f".{glob.escape(name)}.*.tmp" if name else ".*.tmp"
    for p in folder.glob(pattern):
        m = _TMP_TAIL.match(p.name[len(name) + 2:]) if name is not None else _TMP_NAME.match(p.name)
        if m is None or not p.is_file() or p.is_symlink():
            continue
        if m["pid"]:
            if not pid_alive(int(m["pid"])):
                stale.append(p)
            continue
        with contextlib.suppress(OSError):
            if time.time() - p.stat().st_mtime >= LEGACY_TMP_MIN_AGE_S:
                legacy.append(p)
    if legacy:
        in_use = open_by_anyone({str(p.resolve()) for p in legacy})
        for p in legacy:
            if in_use is None:
                with contextlib.suppress(OSError):
                    if time.time() - p.stat().st_mtime >= LEGACY_TMP_AGE_NO_PROC_S:
                        stale.append(p)
            elif str(p.resolve()) not in in_use:
                stale.append(p)
    return sorted(stale)


def remove_stale_temp_files(folder: Path, name: str | None = None) -> list[Path]:
    """Remove :func:`stale_temp_files` of ``folder``; returns what was removed."""
    gone = []
    for p in stale_temp_files(folder, name):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            gone.append(p)
    return gone
