"""SerialProgrammer end to end against a served pump, over a real pseudo-terminal and over
socket://127.0.0.1 (pyserial on the programmer's side, serve() in a background thread)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from conftest import SAMPLES
from test_wire_serve import fresh_pump, open_port, serving

import itb_device
from itb_device import FlexDose, LinkError, Prescription, PumpRefused, ReadOnlyPump
from itb_device.serial_backend import SerialProgrammer
from itb_device.sim.pump import SimulatedPump
from itb_device.sim.scenario import load_scenario, run_scenario
from itb_device.wire.frames import encode_frame
from itb_device.wire.link import Link
from itb_device.wire.messages import SNAPSHOT, U32, Op
from itb_device.wire.server import PumpService, TcpTransport
from parsers import RecordCode, read_log, read_log_bytes
from parsers.model import datetime_to_clock
from parsers.writer import encode_log

KINDS = ["pty", "tcp"]


def records(pump: SimulatedPump, code: int) -> list[dict[str, Any]]:
    """Values of every record of type ``code`` in the pump's memory, oldest first."""
    pages = sorted(pump.memory.pages(), key=lambda p: p.seq)
    return [r.values for p in pages for r in p.records if r.code == code]


def connect(url: str, **kwargs: Any) -> SerialProgrammer:
    return SerialProgrammer(open_port(url), link_timeout=kwargs.pop("link_timeout", 0.2), **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_interrogation_returns_exactly_what_the_pump_holds(kind):
    scenario = load_scenario(SAMPLES / "scenarios" / "titration_violation.toml")
    pump = run_scenario(scenario, final_session=False).pump
    with serving(PumpService(pump), kind) as srv:
        prog = connect(srv.url)
        try:
            assert pump.in_telemetry
            assert (prog.pump_clock, prog.model_ml) == (pump.pump_clock(), pump.cfg.model_ml)
            assert prog.interrogate() == pump.status()
            data = prog.read_log_bytes()
            assert data == encode_log(pump.log_image())
            assert len(data) > 16_000
            assert encode_log(prog.read_log()) == data
            assert prog.link.failures == 0
        finally:
            prog.close()
    assert not pump.in_telemetry
    starts, ends = records(pump, RecordCode.TELEMETRY_START), records(pump, RecordCode.TELEMETRY_END)
    assert ends[-1]["session_id"] == starts[-1]["session_id"]


@pytest.mark.parametrize("kind", KINDS)
def test_programming_commands_change_the_simulated_pump(kind):
    pump = fresh_pump(days=1)
    with serving(PumpService(pump), kind) as srv, connect(srv.url) as prog:
        res = prog.refill(18.5, 2000)
        assert res.expected_residual_ml == pytest.approx(20.0, abs=1e-6)
        refill = records(pump, RecordCode.REFILL)[-1]
        assert refill["volume_added_ml"] == pytest.approx(18.5)
        assert res.measured_residual_ml == pytest.approx(refill["measured_residual_ml"], abs=1e-6)
        assert pump.reservoir_est == pytest.approx(18.5)
        assert pump.drug_conc == 2000

        rx = Prescription("simple_continuous", 300.0, 2000.0)
        prog.program(rx)
        assert pump.rx == rx
        assert records(pump, RecordCode.PRESCRIPTION)[-1]["override"] == 0
        assert prog.interrogate().daily_dose_mcg_day == pytest.approx(300)

        flex = Prescription("flex", 0.0, 2000.0, (FlexDose(0, 300.0), FlexDose(480, 340.0)))
        prog.program(flex)
        assert pump.rx == flex
        assert [r["step_start_min"] for r in records(pump, RecordCode.PRESCRIPTION)[-2:]] == [0, 480]

        big = Prescription("simple_continuous", 600.0, 2000.0)
        prog.program(big, override=True, reason="bench_test", operator=1)
        assert pump.rx == big
        assert records(pump, RecordCode.PRESCRIPTION)[-1]["override"] == 1

        bolus_id = prog.bolus(25.0, duration_min=10)
        assert pump.bolus is not None
        assert (pump.bolus["id"], pump.bolus["kind"], pump.bolus["dose"]) == (bolus_id, "clinician", 25.0)
        start = records(pump, RecordCode.BOLUS_START)[-1]
        assert (start["bolus_id"], start["duration_s"]) == (bolus_id, 600)
        assert start["dose_mcg"] == pytest.approx(25.0)

        when = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
        prog.set_clock(when)
        assert pump.pump_clock() == datetime_to_clock(when)
        assert records(pump, RecordCode.CLOCK_SET)[-1]["new_clock"] == datetime_to_clock(when)

        assert prog.read_log_bytes() == encode_log(pump.log_image())
        assert prog.link.failures == 0
    assert not pump.in_telemetry


@pytest.mark.parametrize("kind", KINDS)
def test_a_replayed_log_is_served_read_only(kind):
    path = SAMPLES / "titration_violation.itblog"
    raw = path.read_bytes()
    service = PumpService(replay=raw)
    with serving(service, kind) as srv, connect(srv.url) as prog:
        header = read_log(path).header
        assert (prog.pump_clock, prog.model_ml) == (header.pump_clock, header.model_ml)
        assert prog.read_log_bytes() == raw
        assert prog.interrogate() == read_log_bytes(raw).status
        with pytest.raises(ReadOnlyPump, match="replays a saved interrogation"):
            prog.program(Prescription("simple_continuous", 100.0, 2000.0), override=True,
                         reason="bench_test", operator=1)
        with pytest.raises(ReadOnlyPump, match="cannot be changed"):
            prog.bolus(10)
        with pytest.raises(ReadOnlyPump):
            prog.refill(10, 2000)
        with pytest.raises(ReadOnlyPump):
            prog.set_clock()
        assert prog.read_log_bytes() == raw  # nothing changed
    assert service.replay == raw


@pytest.mark.parametrize("kind", KINDS)
def test_pump_refusals_arrive_as_pump_refused_with_the_pumps_message(kind):
    pump = fresh_pump()
    twin = fresh_pump()  # the same pump, asked directly, for the expected messages
    twin.telemetry_start()
    expected = {}
    for name, call in {
        "refill": lambda p: p.refill(50.0, 2000.0),
        "bolus": lambda p: p.start_bolus("clinician", 10.0, 60),
        "program": lambda p: p.program(Prescription("simple_continuous", 50.0, 2000.0)),
    }.items():
        with pytest.raises(PumpRefused) as exc:
            call(twin)
        expected[name] = str(exc.value)
    with serving(PumpService(pump), kind) as srv, connect(srv.url) as prog:
        with pytest.raises(PumpRefused) as exc:
            prog.refill(50, 2000)
        assert str(exc.value) == expected["refill"] == "refill volume 50.0 mL does not fit a 20 mL reservoir"
        with pytest.raises(PumpRefused) as exc:
            prog.bolus(10, duration_min=1)
        assert str(exc.value) == expected["bolus"] == "the pump is stopped"
        with pytest.raises(PumpRefused) as exc:
            prog.program(Prescription("simple_continuous", 50.0, 2000.0))
        assert str(exc.value) == expected["program"]
        assert "outside the pump's range" in str(exc.value)
        # malformed or unknown requests are refused too, never acted on
        with pytest.raises(PumpRefused, match="malformed PROGRAM request"):
            prog.link.request(Op.PROGRAM, b"\x01")
        with pytest.raises(PumpRefused, match="unknown opcode 0x20"):
            prog.link.request(0x20, b"")
        assert pump.rx.mode == "stopped"
        assert pump.reservoir_est == 20.0
        assert records(pump, RecordCode.BOLUS_START) == []


def test_itb_device_open_socket_url():
    pump = fresh_pump(days=2)
    with serving(PumpService(pump), "tcp") as srv:
        assert srv.url.startswith("socket://127.0.0.1:")
        with itb_device.open(srv.url, link_timeout=0.2) as prog:
            assert isinstance(prog, SerialProgrammer)
            assert prog.read_log_bytes() == encode_log(pump.log_image())
            assert prog.interrogate() == pump.status()
        assert not pump.in_telemetry


def test_itb_device_open_pty_device_path():
    pump = fresh_pump(days=1)
    with serving(PumpService(pump), "pty") as srv:
        assert srv.url.startswith("/dev/")
        with itb_device.open(srv.url, link_timeout=0.2) as prog:
            assert isinstance(prog, SerialProgrammer)
            assert prog.read_log_bytes() == encode_log(pump.log_image())


def test_open_a_closed_socket_port_is_a_link_error():
    tr = TcpTransport("127.0.0.1", 0)
    url = tr.name
    tr.close()  # nothing listens there now
    with pytest.raises(LinkError, match=r"cannot open socket://127\.0\.0\.1:"):
        itb_device.open(url)


def test_a_closed_session_refuses_further_requests():
    pump = fresh_pump()
    with serving(PumpService(pump), "pty") as srv:
        prog = connect(srv.url)
        prog.close()
        prog.close()  # twice is fine
        with pytest.raises(LinkError, match="closed"):
            prog.interrogate()
        with pytest.raises(LinkError, match="closed"):
            prog.bolus(1)


def test_late_answers_to_an_earlier_sequence_number_are_ignored():
    """A response carrying another request's sequence number is never taken as the answer."""
    pump = fresh_pump()
    with serving(PumpService(pump), "pty") as srv:
        port = open_port(srv.url)
        try:
            link = Link(port, timeout=0.2, retries=3)
            link.request(Op.SESSION_START, U32.pack(0), seq=100)
            first = SNAPSHOT.unpack(link.request(Op.SNAPSHOT, seq=101))
            # a stray repeat of request 101: the pump answers it again from its cache ...
            port.write(encode_frame(101, Op.SNAPSHOT))
            deadline = time.monotonic() + 2
            while port.in_waiting == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert port.in_waiting > 0
            # ... and that late answer, read first, must not be taken for request 102's
            second = SNAPSHOT.unpack(link.request(Op.SNAPSHOT, seq=102))
            assert second[0] == first[0] + 1
            assert link.failures == 0
            assert link.decoder.bad_frames == 0
        finally:
            port.close()
