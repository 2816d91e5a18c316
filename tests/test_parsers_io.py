"""The source log is never written, no handle or mapping outlives ``read_log``, and exports
are atomic: a failed write leaves the old file as it was."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import logfactory as lf
import pytest

import parsers
from parsers import LogFormatError, read_log
from parsers.writer import atomic_write_bytes, write_log


@pytest.fixture
def log_file(tmp_path) -> Path:
    path = tmp_path / "src.itblog"
    lf.write_image(path, lf.make_image(lf.base_history(n_delivery=30)))
    return path


def _snapshot(path: Path) -> tuple:
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_size, st.st_ino, stat.S_IMODE(st.st_mode)


def _open_references(path: Path) -> list[str]:
    """Open descriptors and memory maps of this process that point at ``path`` (Linux)."""
    target = str(path.resolve())
    refs = [
        f"fd {fd}" for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == target
    ]
    with open("/proc/self/maps") as maps:
        refs += [line.strip() for line in maps if line.rstrip().endswith(target)]
    return refs


@pytest.mark.parametrize("damage", ["none", "bad_page", "truncated"])
def test_reading_never_writes_the_source(tmp_path, log_file, damage):
    data = log_file.read_bytes()
    if damage == "bad_page":
        log_file.write_bytes(lf.flip_bit(data, lf.page_offset(1, 256) + 40))
    elif damage == "truncated":
        log_file.write_bytes(data[:-100])
    os.utime(log_file, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    log_file.chmod(0o444)
    before = _snapshot(log_file)
    listing = sorted(os.listdir(tmp_path))
    for decoder in ("fast", "construct"):
        log = read_log(log_file, decoder=decoder)
        assert log.path == log_file
        assert log.damaged == (damage != "none")  # base_history's refill outside a session is a warning only
    if damage != "none":
        with pytest.raises(LogFormatError):
            read_log(log_file, strict=True)
    else:  # strict raises on warnings too (the factory's refill lies outside a session)
        read_log(log_file, strict=not log.problems)
    assert _snapshot(log_file) == before
    assert before[1] == 1_600_000_000_000_000_000 and before[4] == 0o444
    assert sorted(os.listdir(tmp_path)) == listing  # no side files either


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_no_handle_or_mapping_outlives_read_log(log_file, tmp_path):
    log = read_log(log_file)
    assert _open_references(log_file) == []
    assert len(log.delivery) == 30  # the tables stay usable after the file is closed
    bad = lf.write_bytes(tmp_path / "bad.itblog", b"\x89ITB\r\n\x1a\n" + bytes(50))
    with pytest.raises(LogFormatError):
        read_log(bad)
    assert _open_references(bad) == []


def test_atomic_write_keeps_old_file_when_chunks_fail(tmp_path):
    target = tmp_path / "export.csv"
    target.write_bytes(b"old contents\n")
    before = _snapshot(target)

    def chunks():
        yield b"new header\n"
        yield b"new row 1\n"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write_bytes(target, chunks())
    assert _snapshot(target) == before
    assert os.listdir(tmp_path) == ["export.csv"]  # the temporary file is gone


def test_atomic_write_cleans_up_on_keyboard_interrupt(tmp_path):
    def chunks():
        yield b"partial"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "new.csv", chunks())
    assert os.listdir(tmp_path) == []  # neither the target nor a temporary file


def test_atomic_write_replaces_in_one_step(tmp_path):
    target = tmp_path / "export.csv"
    target.write_bytes(b"old")
    old_inode = target.stat().st_ino
    atomic_write_bytes(target, iter([b"a,b\n", b"1,2\n", b""]))
    assert target.read_bytes() == b"a,b\n1,2\n"
    assert target.stat().st_ino != old_inode  # renamed over, not rewritten in place
    assert os.listdir(tmp_path) == ["export.csv"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    """The temporary file is private (mkstemp), but the result honours the umask."""
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "shared.csv", [b"x"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.csv").stat().st_mode) == 0o640


def test_write_log_failure_leaves_existing_log_intact(tmp_path, log_file):
    before = _snapshot(log_file)
    img = lf.make_image([lf.delivery(i) for i in range(7)])
    too_big = parsers.Page(0, 0, img.pages[0].records * 2)
    with pytest.raises(ValueError, match="at most 7 fit"):
        write_log(log_file, lf.with_pages(img, [too_big]))
    assert _snapshot(log_file) == before
    assert sorted(os.listdir(tmp_path)) == ["src.itblog"]
