"""Byte captures of a link session (`itb interrogate --capture`) and their offline replay
(`itb replay-capture`), run in-process through itb_device.cli.main against a served pump."""

from __future__ import annotations

import re
import struct
import time
from pathlib import Path

import pytest
from test_wire_serve import fresh_pump, serving, session_log

from itb_device.cli import main
from itb_device.serial_backend import SerialProgrammer
from itb_device.wire.capture import MAGIC, READ, WRITE, ReplayPort, load_capture
from itb_device.wire.faults import FaultSpec
from itb_device.wire.frames import FrameDecoder
from itb_device.wire.messages import RESPONSE, Op
from itb_device.wire.server import PumpService

ENTRY = struct.Struct("<BdI")
LINK_LINE = re.compile(r"link: (\d+) requests sent, (\d+) retried")
REPLAY_LINE = re.compile(r"reproduced (\d+) bytes of log .*; (\d+) requests differed from the capture")


def interrogate(url: str, out: Path, cap: Path, capsys, timeout: float) -> tuple[int, int]:
    """Run `itb interrogate URL -o OUT --capture CAP`; returns (requests sent, retried)."""
    rc = main(["interrogate", url, "-o", str(out), "--capture", str(cap), "--timeout", str(timeout)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"capture: {cap}" in captured.err
    m = LINK_LINE.search(captured.out)
    assert m, captured.out
    return int(m[1]), int(m[2])


def replay(cap: Path, out: Path, capsys) -> tuple[int, str, str]:
    rc = main(["replay-capture", str(cap), "-o", str(out)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def entry_offsets(data: bytes) -> list[int]:
    """Byte offsets of the entries of a capture file (walked by hand, per the documented format)."""
    pos, out = len(MAGIC), []
    while pos < len(data):
        out.append(pos)
        pos += ENTRY.size + ENTRY.unpack_from(data, pos)[2]
    assert pos == len(data)
    return out


@pytest.mark.parametrize(
    ("kind", "faults"),
    [("pty", None), ("tcp", None), ("pty", FaultSpec(drop=0.01, corrupt=0.01, split=0.3, seed=5))],
    ids=["pty", "tcp", "pty-faulty"],
)
def test_a_capture_replays_to_the_identical_log(tmp_path: Path, capsys, kind, faults):
    pump = fresh_pump(days=1)
    out, cap, again = tmp_path / "out.itblog", tmp_path / "session.itbcap", tmp_path / "again.itblog"
    with serving(PumpService(pump), kind, faults) as srv:
        sent, retried = interrogate(srv.url, out, cap, capsys, timeout=0.03 if faults else 0.2)
    original = out.read_bytes()
    assert original == session_log(days=1)
    assert (retried > 0) is (faults is not None)

    rc, stdout, stderr = replay(cap, again, capsys)
    m = REPLAY_LINE.search(stdout)
    assert m, (stdout, stderr)
    assert int(m[1]) == len(original)
    assert again.read_bytes() == original
    # only SESSION_START requests (they carry the programmer's clock) may differ
    writes = [FrameDecoder().feed(b)[0] for k, _, b in load_capture(cap) if k == WRITE]
    starts = sum(1 for f in writes if f.opcode == Op.SESSION_START)
    assert 1 <= starts <= 1 + retried
    assert int(m[2]) in (0, starts)
    assert rc == (0 if int(m[2]) == 0 else 1)

    # the replayed link made exactly the same decisions: same requests, same retries
    port = ReplayPort(load_capture(cap))
    prog = SerialProgrammer(port)
    try:
        assert prog.read_log_bytes() == original
    finally:
        prog.close()  # SESSION_END too, as the live session did
    assert (prog.link.attempts, prog.link.failures) == (sent, retried)
    assert port.mismatches in (0, starts)


def test_capture_file_layout(tmp_path: Path, capsys):
    pump = fresh_pump()
    out, cap = tmp_path / "out.itblog", tmp_path / "session.itbcap"
    with serving(PumpService(pump), "pty") as srv:
        sent, retried = interrogate(srv.url, out, cap, capsys, timeout=0.2)
    data = cap.read_bytes()
    assert data.startswith(b"ITBCAP01")
    entries = []
    for pos in entry_offsets(data):
        kind, t, n = ENTRY.unpack_from(data, pos)
        entries.append((kind, t, n, data[pos + ENTRY.size : pos + ENTRY.size + n]))
    assert entries == [(k, t, len(b), b) for k, t, b in load_capture(cap)]
    kinds = [e[0] for e in entries]
    assert set(kinds) == {WRITE, READ}
    assert kinds[0] == WRITE
    times = [e[1] for e in entries]
    assert times == sorted(times)
    assert 0 <= times[0] < times[-1] < 10
    requests = FrameDecoder().feed(b"".join(e[3] for e in entries if e[0] == WRITE))
    responses = FrameDecoder().feed(b"".join(e[3] for e in entries if e[0] == READ))
    assert len(requests) == sent
    assert [f.opcode for f in requests] == [
        Op.SESSION_START,
        Op.SNAPSHOT,
        Op.READ_BLOCK,
        Op.READ_BLOCK,
        Op.SESSION_END,
    ]
    assert [f.opcode for f in responses] == [f.opcode | RESPONSE for f in requests]
    assert [f.seq for f in responses] == [f.seq for f in requests]
    assert [f.seq for f in requests] == [(requests[0].seq + i) & 0xFFFF for i in range(len(requests))]
    assert retried == 0


def test_replaying_a_capture_later_reports_no_differences(tmp_path: Path, capsys):
    pump = fresh_pump()
    out, cap, again = tmp_path / "out.itblog", tmp_path / "session.itbcap", tmp_path / "again.itblog"
    with serving(PumpService(pump), "tcp") as srv:
        interrogate(srv.url, out, cap, capsys, timeout=0.2)
    time.sleep(1.1)  # an offline replay happens later than the session, here just over a second
    rc, stdout, _ = replay(cap, again, capsys)
    assert again.read_bytes() == out.read_bytes()
    assert "; 0 requests differed from the capture" in stdout
    assert rc == 0


# ----- damaged captures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_capture(tmp_path_factory) -> bytes:
    """The bytes of a real capture of an interrogation."""
    tmp = tmp_path_factory.mktemp("cap")
    with serving(PumpService(fresh_pump()), "pty") as srv:
        prog = SerialProgrammer.from_url(srv.url, capture=tmp / "good.itbcap", link_timeout=0.2)
        try:
            prog.read_log_bytes()
        finally:
            prog.close()
    return (tmp / "good.itbcap").read_bytes()


def damage(data: bytes, how: str) -> tuple[bytes, int, str]:
    """A damaged copy of a capture, the byte offset the error must name, and its wording."""
    offsets = entry_offsets(data)
    if how == "magic":
        return b"ITBCAP02" + data[8:], 0, "not an itb capture"
    if how == "truncated header":
        pos = offsets[3]
        return data[: pos + 5], pos, "truncated entry header"
    if how == "truncated data":
        pos = offsets[-1]
        return data[: len(data) - 1], pos, "damaged entry (kind"
    if how == "bad kind":
        pos = offsets[2]
        return data[:pos] + b"\x07" + data[pos + 1 :], pos, "damaged entry (kind 7,"
    if how == "huge length":
        pos = offsets[4]
        return data[: pos + 9] + struct.pack("<I", 0xFFFF_FFF0) + data[pos + 13 :], pos, "damaged entry"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["magic", "truncated header", "truncated data", "bad kind", "huge length"])
def test_a_damaged_capture_is_a_clear_error_naming_file_and_offset(tmp_path: Path, capsys, good_capture, how):
    damaged, offset, wording = damage(good_capture, how)
    cap, out = tmp_path / "damaged.itbcap", tmp_path / "never.itblog"
    cap.write_bytes(damaged)
    rc, stdout, stderr = replay(cap, out, capsys)
    assert rc == 2
    assert stderr.startswith(f"itb replay-capture: error: {cap}: byte {offset}: {wording}"), stderr
    assert stderr.count("\n") == 1
    assert "Traceback" not in stderr
    assert stdout == ""
    assert not out.exists()


def test_a_missing_capture_is_a_clear_error(tmp_path: Path, capsys):
    rc, _, stderr = replay(tmp_path / "nowhere.itbcap", tmp_path / "x.itblog", capsys)
    assert rc == 2
    assert stderr.startswith("itb replay-capture: error: ")
    assert "nowhere.itbcap" in stderr


def test_a_capture_cut_short_fails_with_a_timeout_not_a_wrong_log(tmp_path: Path, capsys, good_capture):
    cut = good_capture[: entry_offsets(good_capture)[6]]  # entries are whole, the session is not
    cap, out = tmp_path / "short.itbcap", tmp_path / "never.itblog"
    cap.write_bytes(cut)
    rc, _, stderr = replay(cap, out, capsys)
    assert rc == 2
    assert stderr.startswith("itb replay-capture: error: ")
    assert "timeout" in stderr
    assert not out.exists()
