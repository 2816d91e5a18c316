"""Incremental interrogation (docs/wire-protocol.md section 6): the page cache, PAGE_MAP, and a
log put together from cached pages and the pages written since that is byte for byte a whole
read's, across time passing, pump resets, a wrapping ring, clock sets, a noisy link, another pump
at the same URL, a damaged cache and a pump that does not know PAGE_MAP.  Real sockets on
127.0.0.1 and real pseudo-terminals, the served pump in a background thread."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SAMPLES
from test_wire_serve import START, fresh_pump, open_port, serving

from itb_device.cli import main
from itb_device.pagecache import (
    ENV_VAR,
    MAGIC,
    CacheDamaged,
    LogRead,
    PageCache,
    default_cache_dir,
    file_name,
)
from itb_device.serial_backend import ReadProgress, SerialProgrammer
from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.wire.faults import FaultSpec
from itb_device.wire.frames import FrameDecoder, encode_frame
from itb_device.wire.link import Link, StaleSnapshot
from itb_device.wire.messages import (
    MAX_PAGE_RUNS,
    NO_PAGE,
    SNAPSHOT,
    U32,
    Op,
    PageMap,
    decode_page_map,
    encode_page_map,
)
from itb_device.wire.server import PumpService, page_map_of
from parsers import read_log
from parsers.crc import crc32c
from parsers.writer import encode_log

HOURS = 3600
DAYS = 86_400
NOISY = {"drop": 0.01, "corrupt": 0.01, "split": 0.3}
READS = {Op.SESSION_START, Op.SNAPSHOT, Op.READ_BLOCK, Op.PAGE_MAP, Op.SESSION_END}


def later(pump: SimulatedPump, seconds: int) -> SimulatedPump:
    pump.advance_to(pump.now + seconds)
    return pump


def interrogate(
    target: SimulatedPump | PumpService, cache: Path, *, kind: str = "tcp", faults: FaultSpec | None = None,
    full: bool = False, timeout: float = 0.2, compare_whole: bool = True, **kwargs: Any,
) -> LogRead:
    """One session: ``read_log_cached``, then (``compare_whole``) a whole read of the same moment (a
    second snapshot in the same session, time standing still) which it must equal byte for byte, as
    it must the pump's own image."""
    service = target if isinstance(target, PumpService) else PumpService(target)
    with serving(service, kind, faults) as srv:
        prog = SerialProgrammer(open_port(srv.url), link_timeout=timeout, **kwargs)
        try:
            got = prog.read_log_cached(cache, full=full)
            prog.progress = None
            whole = prog.read_log_bytes() if compare_whole else got.data
            pumps = encode_log(service.pump.log_image()) if service.pump is not None else service.replay
        finally:
            prog.close()
    assert got.data == whole == pumps
    assert got.cache_file == PageCache(cache).path_for(got.serial) and got.cache_note == ""
    return got


def incremental(got: LogRead) -> LogRead:
    assert got.incremental, got.describe()
    assert got.reason == ""
    assert got.pages_read + got.pages_reused == got.pages
    return got


def whole(got: LogRead, why: str) -> LogRead:
    assert not got.incremental, got.describe()
    assert re.search(why, got.reason), got.reason
    assert got.pages_read == got.pages and got.pages_reused == 0
    return got


# ----- time passes ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_only_the_pages_written_since_are_read_and_the_log_is_identical(tmp_path, kind):
    pump = fresh_pump(days=20)
    first = whole(interrogate(pump, tmp_path, kind=kind), r"^no pages of this pump are cached yet$")
    assert first.pages > 15 and first.wire_bytes > len(first.data)

    seen: list[ReadProgress] = []
    second = incremental(interrogate(later(pump, 3 * HOURS), tmp_path, kind=kind, progress=seen.append))
    assert second.pages_read == 1 and second.pages_reused == first.pages - 1  # the head page grew
    assert second.pages_verified == 4
    assert second.wire_bytes < len(second.data) / 8
    assert seen and seen[-1].pages_done == seen[-1].pages_total == 1  # progress counts the pages read
    assert [p.done_bytes for p in seen] == sorted(p.done_bytes for p in seen)

    third = incremental(interrogate(later(pump, 4 * DAYS), tmp_path, kind=kind))
    assert third.pages > second.pages and 3 <= third.pages_read <= 6
    assert "incremental read of pump NGP000001: " in third.describe()
    assert re.search(r"\d+ of \d+ pages read, \d+ from the cache \(4 checked against the pump\); "
                     r"[\d,]+ bytes on the link for a [\d,]+-byte log$", third.describe())


def test_an_incremental_read_only_reads(tmp_path):
    """Only read requests reach the pump, each carried out once (no write is ever sent)."""
    pump = fresh_pump(days=5)
    interrogate(pump, tmp_path)
    service = PumpService(later(pump, 2 * HOURS))
    ops: list[int] = []
    handle = service.handle

    def spy(frame: Any, client: Any = None) -> bytes:
        ops.append(frame.opcode)
        return handle(frame, client)

    service.handle = spy  # type: ignore[method-assign]
    incremental(interrogate(service, tmp_path))
    assert set(ops) <= READS and Op.PAGE_MAP in ops


def test_nothing_new_reads_only_the_head_page(tmp_path):
    """A replayed log does not change: the second read moves the header, status, map, checks and the
    head page that was still filling."""
    raw = (SAMPLES / "normal_year.itblog").read_bytes()
    first = whole(interrogate(PumpService(replay=raw), tmp_path, kind="pty", compare_whole=False),
                  "cached yet")
    second = incremental(interrogate(PumpService(replay=raw), tmp_path, kind="pty"))
    assert second.pages_read <= 1 and second.pages == first.pages > 250
    assert second.wire_bytes < 3000 < 200_000 < first.wire_bytes


# ----- what reads whole, and says so ------------------------------------------------------------


def test_a_pump_reset_reads_whole_and_says_so(tmp_path):
    pump = fresh_pump(days=10)
    interrogate(pump, tmp_path, kind="pty")
    later(pump, 2 * HOURS).reset()
    whole(interrogate(later(pump, HOURS), tmp_path, kind="pty"),
          r"^the pump reset since it was last read \(a pump_reset record in page seq \d+\)$")
    incremental(interrogate(later(pump, 5 * HOURS), tmp_path, kind="pty"))  # the reset is now held


def test_a_memory_that_went_back_reads_whole(tmp_path):
    """The pump at the URL has fewer pages than the cache (its memory was reset or replaced)."""
    interrogate(fresh_pump(days=10), tmp_path)
    whole(interrogate(fresh_pump(days=3), tmp_path),
          r"^the pump's newest page is seq \d+ but the cache holds seq \d+: its log memory was reset")


def test_a_wrapped_ring(tmp_path):
    """A small ring (8 slots of 256 bytes, about 2.3 days): an overlap is read incrementally
    (the map then has two runs), a ring that wrapped past the cache is read whole."""
    cfg = PumpConfig(page_size=256, ring_slots=8)
    pump = SimulatedPump(cfg, start=START, seed=1, reservoir_ml=20.0)
    later(pump, 3 * DAYS)
    first = whole(interrogate(pump, tmp_path), "cached yet")
    assert first.pages == 8
    runs = page_map_of(first.data).runs
    assert len(runs) == 2 and NO_PAGE not in [r[0] for r in runs]  # wrapped: two runs in slot order
    got = incremental(interrogate(later(pump, 12 * HOURS), tmp_path))
    assert got.pages == 8 and 2 <= got.pages_read <= 5
    whole(interrogate(later(pump, 4 * DAYS), tmp_path),
          r"^the ring wrapped past the cache: the pump's oldest page is seq \d+, the newest cached one")
    incremental(interrogate(later(pump, HOURS), tmp_path))


def test_clock_sets_forwards_and_backwards_stay_incremental(tmp_path):
    pump = fresh_pump(days=6)
    interrogate(pump, tmp_path)
    for when in (dt.datetime(2026, 7, 10, 12, tzinfo=dt.UTC), dt.datetime(2026, 7, 1, tzinfo=dt.UTC)):
        later(pump, 2 * HOURS)
        with serving(PumpService(pump), "tcp") as srv, SerialProgrammer(open_port(srv.url),
                                                                          link_timeout=0.2) as prog:
            prog.set_clock(when)  # a write, in a session of its own
        got = incremental(interrogate(later(pump, 3 * HOURS), tmp_path))
        assert got.pages_read <= 2


def test_a_noisy_link_still_gives_the_identical_log(tmp_path):
    pump = fresh_pump(days=3)
    first = whole(interrogate(pump, tmp_path, kind="pty", compare_whole=False), "cached yet")
    assert first.pages >= 3
    later(pump, 5 * HOURS)
    with serving(PumpService(pump), "pty", FaultSpec(**NOISY, seed=8)) as srv:
        prog = SerialProgrammer(open_port(srv.url), link_timeout=0.03)
        try:
            got = incremental(prog.read_log_cached(tmp_path))
            assert got.data == encode_log(pump.log_image())
            assert prog.link.failures > 0 and prog.link.decoder.bad_frames > 0  # the faults hit it
            assert srv.transport.dropped > 0 and srv.transport.corrupted > 0
        finally:
            prog.close()
    assert got.pages_verified == min(4, got.pages_reused) and got.pages_reused >= 2


def test_another_pump_at_the_same_url(tmp_path):
    """The same served URL, another pump behind it: another serial number has no cached pages;
    the same serial number with another history is caught by the pages checked."""
    a = fresh_pump(days=8, seed=1)
    b = SimulatedPump(PumpConfig(serial="NGP000002"), start=START, seed=2, reservoir_ml=20.0)
    c = fresh_pump(days=9, seed=5)  # serial NGP000001 too, its own history
    later(b, 8 * DAYS)
    service = PumpService(a)
    with serving(service, "tcp") as srv:

        def read() -> LogRead:
            assert service.pump is not None
            with SerialProgrammer(open_port(srv.url), link_timeout=0.2) as prog:
                got = prog.read_log_cached(tmp_path)
                assert got.data == encode_log(service.pump.log_image()) == prog.read_log_bytes()
                return got

        whole(read(), "cached yet")
        service.pump = b
        assert whole(read(), "cached yet").serial == "NGP000002"
        service.pump = c
        whole(read(), r"^page seq \d+ on the pump is not the cached one \(its (header|CRC) differs\): "
                      r"another pump, or its memory was rewritten$")
        service.pump = a
        whole(read(), "not the cached one")
        incremental(read())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NGP000001.itbpages", "NGP000002.itbpages"]


def test_another_layout_under_the_same_serial_reads_whole(tmp_path):
    interrogate(fresh_pump(days=3), tmp_path)
    other = SimulatedPump(PumpConfig(page_size=512), start=START, seed=1, reservoir_ml=20.0)
    whole(interrogate(later(other, 3 * DAYS), tmp_path),
          r"^the pump's page size \(512\) is not the cached copy's \(1024\): another pump or another layout$")


@pytest.mark.parametrize("damage", ["flip", "cut", "empty", "foreign"])
def test_a_damaged_cache_file_reads_whole_says_so_and_is_replaced(tmp_path, damage):
    pump = fresh_pump(days=5)
    path = interrogate(pump, tmp_path).cache_file
    assert path is not None
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x10  # a page byte: the page would still be found, the file's CRC fails
    elif damage == "cut":
        del raw[len(raw) - 100 :]
    elif damage == "empty":
        raw.clear()
    else:
        raw[:8] = b"NOTACACH"
    path.write_bytes(bytes(raw))
    got = whole(interrogate(later(pump, HOURS), tmp_path),
                rf"^the cached copy {re.escape(str(path))} is damaged \(.+\); it is replaced$")
    assert "damaged" in got.describe()
    incremental(interrogate(later(pump, HOURS), tmp_path))


def test_an_old_pump_without_page_map_is_read_whole(tmp_path):
    pump = fresh_pump(days=5)
    interrogate(PumpService(pump, page_map=False), tmp_path)
    got = whole(interrogate(PumpService(later(pump, HOURS), page_map=False), tmp_path),
                r"^the pump gave no page map, as a pump from before PAGE_MAP "
                r"\(it answered: unknown opcode 0x05\)$")
    assert got.cache_file is not None  # its copy is kept all the same
    incremental(interrogate(PumpService(later(pump, HOURS)), tmp_path))  # ... for when it knows PAGE_MAP


def test_full_reads_whole(tmp_path):
    pump = fresh_pump(days=3)
    interrogate(pump, tmp_path)
    whole(interrogate(pump, tmp_path, full=True), r"^a full read was asked for$")


def test_a_damaged_log_on_the_pump_is_still_identical(tmp_path):
    """A replayed log with damaged pages: those places have no page in the map and are read each
    time; whatever is read, the log is the served bytes."""
    raw = (SAMPLES / "corrupted_log.itblog").read_bytes()
    assert NO_PAGE in [first for first, _ in page_map_of(raw).runs]
    interrogate(PumpService(replay=raw), tmp_path, kind="pty", compare_whole=False)
    interrogate(PumpService(replay=raw), tmp_path, kind="pty")


def test_an_unwritable_cache_still_gives_the_log(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    pump = fresh_pump(days=2)
    with serving(PumpService(pump), "tcp") as srv, SerialProgrammer(open_port(srv.url),
                                                                     link_timeout=0.2) as prog:
        got = prog.read_log_cached(blocker / "cache")
        assert got.data == encode_log(pump.log_image())
    assert got.cache_file is None and got.cache_note.startswith("no copy kept: the page cache ")
    assert got.describe().endswith(got.cache_note)


# ----- the command line -------------------------------------------------------------------------


def test_itb_interrogate_uses_the_cache_and_full_forces_a_whole_read(tmp_path, capsys):
    pump = fresh_pump(days=10)
    out = tmp_path / "out.itblog"
    cache = Path(os.environ[ENV_VAR])
    with serving(PumpService(pump), "tcp") as srv:
        def run(*extra: str) -> str:
            assert main(["interrogate", srv.url, "-o", str(out), "--timeout", "0.5", *extra]) == 0
            got = capsys.readouterr()
            assert "link: " in got.out and not read_log(out).damaged
            return got.err

        err = run()
        assert re.fullmatch(r"itb interrogate: full read of pump NGP000001, because no pages of this "
                            r"pump are cached yet: (\d+) of \1 pages read; [\d,]+ bytes on the link for a "
                            r"[\d,]+-byte log\n", err), err
        assert (cache / "NGP000001.itbpages").is_file()
        assert re.match(r"itb interrogate: incremental read of pump NGP000001: 1 of \d+ pages read", run())
        assert "full read of pump NGP000001, because a full read was asked for" in run("--full")
        mine = tmp_path / "mine"
        assert "because no pages of this pump are cached yet" in run("--cache", str(mine))
        assert stat.S_IMODE(mine.stat().st_mode) == 0o700  # the patients' histories: owner only
        assert "incremental read" in run("--cache", str(mine))
        assert "full read of pump NGP000001, because a capture records a whole read" in run(
            "--capture", str(tmp_path / "cap.itbcap"))
        assert "incremental read" in run()


def test_itb_interrogate_cache_must_be_a_folder(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    out = tmp_path / "o.itblog"
    rc = main(["interrogate", "socket://127.0.0.1:9", "-o", str(out), "--cache", str(afile)])
    assert rc == 2 and "--cache" in capsys.readouterr().err


def test_pump_sim_no_page_map_option():
    from itb_device.cli.main import build_parser

    args = build_parser().parse_args(["pump-sim", "--listen", "pty", "--no-page-map"])
    assert args.no_page_map is True


# ----- PAGE_MAP on the wire ---------------------------------------------------------------------


def test_page_map_round_trip_and_malformed_answers():
    m = PageMap.of_places(0xDEADBEEF, [5, 6, 7, None, None, 1, 2, None, 8])
    assert m.runs == ((5, 3), (NO_PAGE, 2), (1, 2), (NO_PAGE, 1), (8, 1))
    assert decode_page_map(encode_page_map(m)) == m
    assert m.place_seqs() == [5, 6, 7, None, None, 1, 2, None, 8]
    payload = encode_page_map(m)
    for bad in (payload[:-1], payload + b"\0", payload[:4], encode_page_map(PageMap(0, 3, ((1, 2),)))):
        with pytest.raises(ValueError):
            decode_page_map(bad)
    with pytest.raises(ValueError, match="runs; at most 510 fit in one answer"):
        encode_page_map(PageMap.of_places(0, [None if i % 2 else i for i in range(2 * MAX_PAGE_RUNS + 2)]))
    assert MAX_PAGE_RUNS == 510


def test_page_map_of_a_served_snapshot():
    pump = fresh_pump(days=3)
    with serving(PumpService(pump), "pty") as srv:
        port = open_port(srv.url)
        try:
            link = Link(port, timeout=0.5, retries=2)
            link.request(Op.SESSION_START, U32.pack(0))
            snap, total, page = SNAPSHOT.unpack(link.request(Op.SNAPSHOT))
            m = decode_page_map(link.request(Op.PAGE_MAP, U32.pack(snap)))
            image = encode_log(pump.log_image())
            assert m.image_crc == crc32c(image) and total == len(image)
            assert m.places == (total - 384) // page and m.runs == ((0, m.places),)
            with pytest.raises(StaleSnapshot, match="no longer held"):
                link.request(Op.PAGE_MAP, U32.pack(snap + 10))
            with pytest.raises(Exception, match="malformed PAGE_MAP request"):
                link.request(Op.PAGE_MAP, b"\x01")
        finally:
            port.close()


def test_a_page_map_too_large_to_send_is_refused_and_read_whole(tmp_path):
    """More runs than one answer holds (every other page damaged): error 1, so the log is read whole."""
    pump = SimulatedPump(PumpConfig(page_size=256, ring_slots=1200), start=START, seed=1, reservoir_ml=20.0)
    image = bytearray(encode_log(later(pump, 170 * DAYS).log_image()))
    for k in range(0, (len(image) - 384) // 256, 2):
        image[384 + k * 256 + 20] ^= 0xFF
    service = PumpService(replay=bytes(image))
    (frame,) = FrameDecoder().feed(encode_frame(1, Op.SNAPSHOT))
    service.handle(frame)
    (frame,) = FrameDecoder().feed(encode_frame(2, Op.PAGE_MAP, U32.pack(1)))
    assert service.handle(frame)[4] == Op.ERROR | 0x80
    PageCache(tmp_path).store(bytes(image))
    whole(interrogate(service, tmp_path, kind="pty", compare_whole=False),
          r"^the pump gave no page map, .*runs; at most 510 fit in one answer\)$")


def test_the_docs_page_map_example_is_the_codes():
    text = " ".join((ROOT / "docs" / "wire-protocol.md").read_text(encoding="utf-8").split())
    start = 820540800
    pump = SimulatedPump(PumpConfig(), start=start, seed=0, reservoir_ml=20.0)
    service = PumpService(pump)
    frames = []
    for seq, op, payload in [(0x1000, Op.SESSION_START, U32.pack(start + 5)), (0x1001, Op.SNAPSHOT, b""),
                             (0x1003, Op.PAGE_MAP, U32.pack(1))]:
        req = encode_frame(seq, op, payload)
        (frame,) = FrameDecoder().feed(req)
        frames.append((req, service.handle(frame)))
    req, resp = frames[-1]
    for f in (req, resp):
        assert " ".join(f"{b:02X}" for b in f) in text
    assert f"image CRC 0x{crc32c(encode_log(pump.log_image())):08X}" in text
    assert re.search(r"\| `0x05` \| PAGE_MAP ", text) and "**PAGE_MAP `0x05`.**" in text


# ----- the cache --------------------------------------------------------------------------------


def test_cache_file_names_and_folder(monkeypatch, tmp_path):
    assert file_name("NGP000001") == "NGP000001.itbpages"
    assert file_name("../etc/x") == "x-" + b"../etc/x".hex() + ".itbpages"
    assert file_name(".hidden") == "x-" + b".hidden".hex() + ".itbpages"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" and PageCache.at(None).folder == tmp_path / "c"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "itb-telemetry" / "pumps"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".local" / "share" / "itb-telemetry" / "pumps"


def test_cache_store_and_load(tmp_path):
    pump = fresh_pump(days=3)
    image = encode_log(pump.log_image())
    cache = PageCache(tmp_path / "c")
    path = cache.store(image)
    assert path.read_bytes()[:8] == MAGIC and path.read_bytes()[16:] == image
    held = cache.load("NGP000001")
    assert held is not None and held.image == image and len(held.pages) == 3 and held.full == {0, 1}
    assert cache.load("NGP000002") is None
    (tmp_path / "c" / "NGP000002.itbpages").write_bytes(path.read_bytes())  # another pump's copy
    with pytest.raises(CacheDamaged, match="holds pump 'NGP000001', not 'NGP000002'"):
        cache.load("NGP000002")
    with pytest.raises(CacheDamaged, match="not an interrogation log"):
        cache.store(b"\0" * 400)
    cache.forget("NGP000001")
    assert cache.load("NGP000001") is None
