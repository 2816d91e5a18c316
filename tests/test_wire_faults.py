"""A faulty link (FaultyTransport on the pump's side: dropped, corrupted and split bytes) between a
real pyserial programmer and the served pump: exact bytes or a clear timeout, never wrong data,
and commands carried out exactly once however often they are retried."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_wire_serve import fresh_pump, open_port, serving, session_log

from itb_device import LinkError, Prescription
from itb_device.cli import main
from itb_device.serial_backend import SerialProgrammer
from itb_device.wire.faults import FaultSpec
from itb_device.wire.frames import Frame
from itb_device.wire.messages import Op
from itb_device.wire.server import PumpService
from parsers import RecordCode
from parsers.writer import encode_log

NOISY = {"drop": 0.01, "corrupt": 0.01, "split": 0.3}
DEAD = r"^timeout: SESSION_START got no valid response after 31 attempts \(0\.02 s each\)"


@pytest.mark.parametrize(("kind", "seed", "days"), [("pty", 1, 2), ("pty", 2, 1), ("tcp", 3, 1)])
def test_a_noisy_link_still_delivers_the_exact_log(kind, seed, days):
    pump = fresh_pump(days)  # 1 day: a 1.4 KB log, 2 days: 2.4 KB
    with serving(PumpService(pump), kind, FaultSpec(**NOISY, seed=seed)) as srv:
        prog = SerialProgrammer(open_port(srv.url), link_timeout=0.03)
        try:
            data = prog.read_log_bytes()
            assert data == encode_log(pump.log_image()) == session_log(days)
            link = prog.link
            assert link.failures > 0  # the faults really hit this interrogation ...
            assert link.decoder.bad_frames > 0  # ... including corrupted frames
            assert srv.transport.dropped > 0
            assert srv.transport.corrupted > 0
        finally:
            prog.close()


def test_a_dead_link_times_out_quickly():
    pump = fresh_pump()
    with serving(PumpService(pump), "pty", FaultSpec(drop=1.0)) as srv:
        t0 = time.monotonic()
        with pytest.raises(LinkError, match=DEAD):
            SerialProgrammer(open_port(srv.url), link_timeout=0.02)
        assert time.monotonic() - t0 < 20.0  # bounded, not a speed test
    assert not pump.in_telemetry  # the pump never heard the programmer


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_a_link_that_dies_mid_interrogation_times_out_quickly(kind):
    pump = fresh_pump(days=2)
    spec = FaultSpec()
    with serving(PumpService(pump), kind, spec) as srv:
        prog = SerialProgrammer(open_port(srv.url), link_timeout=0.02)
        try:
            assert prog.interrogate() == pump.status()
            spec.drop = 1.0  # the telemetry head slips off the pump
            t0 = time.monotonic()
            with pytest.raises(LinkError, match=r"^timeout: "):
                prog.read_log_bytes()
            assert time.monotonic() - t0 < 20.0  # bounded, not a speed test
        finally:
            prog.close()


def test_itb_interrogate_on_a_dead_link_exits_2_naming_the_timeout(tmp_path: Path, capsys):
    out = tmp_path / "dead.itblog"
    with serving(PumpService(fresh_pump()), "tcp", FaultSpec(drop=1.0)) as srv:
        t0 = time.monotonic()
        rc = main(["interrogate", srv.url, "-o", str(out), "--timeout", "0.02"])
        assert time.monotonic() - t0 < 20.0  # bounded, not a speed test
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("itb interrogate: error: timeout: SESSION_START got no valid response")
    assert "Traceback" not in err
    assert not out.exists()


class CountingService(PumpService):
    """The real service, counting the request frames that reached it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.requests: dict[int, int] = {}

    def handle(self, frame: Frame, *args) -> bytes:
        self.requests[frame.opcode] = self.requests.get(frame.opcode, 0) + 1
        return super().handle(frame, *args)


@pytest.mark.slow
def test_a_thousand_boluses_through_a_noisy_link_are_each_given_exactly_once():
    pump = fresh_pump()
    pump.telemetry_start()
    pump.program(Prescription("simple_continuous", 100.0, 2000.0))
    pump.telemetry_end()
    service = CountingService(pump, tick=5)  # each 1-second bolus has ended before the next
    with serving(service, "pty", FaultSpec(**NOISY, seed=7)) as srv:
        prog = SerialProgrammer(open_port(srv.url), link_timeout=0.01)
        prog.link.bad_frame_wait = 0.01
        try:
            executed = service.executed
            ids = [prog.bolus(1.0, duration_min=1 / 60) for _ in range(1000)]
            assert service.executed - executed == 1000
            link = prog.link
        finally:
            prog.close()
    assert link.failures > 100  # many requests were retried with the same sequence number ...
    # ... and some of those retries reached the pump a second time: answered from the cache
    assert service.requests[Op.BOLUS] > 1000
    pages = sorted(pump.memory.pages(), key=lambda p: p.seq)
    starts = [r.values for p in pages for r in p.records if r.code == RecordCode.BOLUS_START]
    ends = [r.values for p in pages for r in p.records if r.code == RecordCode.BOLUS_END]
    assert len(starts) == 1000
    assert len({s["bolus_id"] for s in starts}) == 1000
    assert [s["bolus_id"] for s in starts] == ids  # each reply matched its own request
    assert all(s["duration_s"] == 1 and s["dose_mcg"] == pytest.approx(1.0) for s in starts)
    assert len(ends) == 1000
    assert all(e["completed"] == 1 for e in ends)
