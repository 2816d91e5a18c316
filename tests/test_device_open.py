"""``itb_device.open``: the sim:// and file:// backends, the registry, sessions and retries."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import SAMPLES

import itb_device
from itb_device import (
    LinkError,
    Prescription,
    PumpRefused,
    TransientLinkError,
    UnknownBackend,
    register_backend,
)
from itb_device.backends import BACKENDS
from itb_device.file_backend import FileProgrammer
from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.sim.scenario import load_scenario, run_scenario
from itb_device.sim_backend import SimProgrammer
from parsers import LogFormatError, RecordCode, read_log
from parsers.model import datetime_to_clock
from parsers.writer import encode_log

SCENARIOS = SAMPLES / "scenarios"
DEFAULT_START = datetime_to_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def codes(prog: SimProgrammer, code: int) -> list[dict[str, Any]]:
    """Values of every record of type ``code`` in the pump's memory, oldest first."""
    pages = sorted(prog.pump.memory.pages(), key=lambda p: p.seq)
    return [r.values for p in pages for r in p.records if r.code == code]


# ----- sim:// --------------------------------------------------------------------------------

def test_sim_default_is_a_fresh_full_20ml_pump_in_a_session():
    with itb_device.open("sim://") as prog:
        assert isinstance(prog, SimProgrammer)
        st = prog.interrogate()
        img = prog.read_log()
        assert (img.header.model_ml, st.reservoir_ml, st.concentration_mcg_ml) == (20, 20.0, 2000.0)
        assert st.mode == "stopped"
        assert st.daily_dose_mcg_day == 0.0
        assert img.header.programmer_clock == DEFAULT_START
        assert codes(prog, RecordCode.TELEMETRY_START) == [
            {"session_id": 1, "programmer_clock": DEFAULT_START}]
        assert prog.pump.in_telemetry


def test_sim_options_model_start_concentration_seed():
    url = "sim://?model=40&seed=3&start=2026-03-01T08:00:00Z&concentration=1000"
    with itb_device.open(url) as prog:
        st = prog.interrogate()
        hdr = prog.read_log().header
        assert hdr.model_ml == 40
        assert st.reservoir_ml == 40.0
        assert st.concentration_mcg_ml == 1000.0
        start = datetime_to_clock(dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC))
        assert hdr.programmer_clock == start == prog.pump.now
        # the seed draws the pump's hidden accuracy and drift
        ref = SimulatedPump(PumpConfig(model_ml=40), start, seed=3)
        assert prog.pump.accuracy == ref.accuracy
        assert prog.pump._drift == ref._drift
    with itb_device.open("sim://?seed=4") as other:
        assert other.pump.accuracy != ref.accuracy


def test_sim_start_with_an_encoded_utc_offset():
    with itb_device.open("sim://?start=2026-03-01T09:00:00%2B01:00") as prog:
        assert prog.pump.now == datetime_to_clock(dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC))


@pytest.mark.parametrize(("url", "message"), [
    ("sim://?colour=blue", "unknown sim:// options: colour"),
    ("sim://?model=40&speed=2&colour=x", "unknown sim:// options: colour, speed"),
    ("sim://?model=30", "model must be 20 or 40"),
    ("sim://?start=2026-03-01T08:00:00", "naive datetime"),
])
def test_sim_bad_options_are_errors(url, message):
    with pytest.raises(ValueError, match=message):
        itb_device.open(url)


def test_sim_scenario_opens_a_live_session_at_the_last_interrogation():
    path = SCENARIOS / "mri_telemetry_mode.toml"
    sc = load_scenario(path)
    with itb_device.open(f"sim://?scenario={path}&seed={sc.seed}") as prog:
        assert prog.pump.now == run_scenario(sc).interrogated_at
        # the interrogation it stands for reads exactly the committed sample (no clock set
        # happens in this scenario's last session)
        assert encode_log(prog.read_log()) == (SAMPLES / "mri_telemetry_mode.itblog").read_bytes()
        # recovery "telemetry": the session itself restarted the motor
        assert prog.interrogate().motor_state == "running"
        assert len(codes(prog, RecordCode.MOTOR_STALL_RECOVERY)) == 1
        before = prog.interrogate().reservoir_ml
        prog.advance(7200)
        assert prog.interrogate().reservoir_ml < before  # the rotor turns again


def test_sim_scenario_seed_option_sets_the_pumps_hidden_draws():
    path = SCENARIOS / "mri_telemetry_mode.toml"
    with itb_device.open(f"sim://?scenario={path}&seed=21") as a, \
            itb_device.open(f"sim://?scenario={path}&seed=22") as b:
        ref = run_scenario(load_scenario(path), seed=21, final_session=False).pump
        assert a.pump.accuracy == ref.accuracy
        assert b.pump.accuracy != ref.accuracy


def test_sim_scenario_without_seed_uses_the_scenarios_seed():
    path = SCENARIOS / "mri_telemetry_mode.toml"
    with itb_device.open(f"sim://?scenario={path}") as prog:
        ref = run_scenario(load_scenario(path), final_session=False).pump
        assert prog.pump.accuracy == ref.accuracy


# ----- file:// -------------------------------------------------------------------------------

def test_file_absolute_path_replays_the_saved_interrogation():
    path = SAMPLES / "titration_violation.itblog"
    log = read_log(path)
    with itb_device.open(f"file://{path}") as prog:
        assert isinstance(prog, FileProgrammer)
        assert prog.read_only
        assert prog.interrogate() == log.status
        assert prog.read_log().header == log.to_image().header
        assert encode_log(prog.read_log()) == path.read_bytes()


def test_file_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "logs").mkdir()
    shutil.copy(SAMPLES / "eri_eos.itblog", tmp_path / "logs" / "a b.itblog")
    shutil.copy(SAMPLES / "eri_eos.itblog", tmp_path / "top.itblog")
    monkeypatch.chdir(tmp_path)
    expected = read_log(SAMPLES / "eri_eos.itblog").status
    for url in ("file://logs/a%20b.itblog", "file://top.itblog", "file:top.itblog"):
        with itb_device.open(url) as prog:
            assert prog.interrogate() == expected, url
            assert prog.path.resolve().parent in (tmp_path, tmp_path / "logs")


def test_file_save_log_writes_the_same_bytes(tmp_path):
    src = SAMPLES / "clock_reset.itblog"
    with itb_device.open(f"file://{src}") as prog:
        out = prog.save_log(tmp_path / "copy.itblog")
    assert out.read_bytes() == src.read_bytes()


def test_file_missing_is_a_log_format_error(tmp_path):
    with pytest.raises(LogFormatError, match="cannot open"):
        itb_device.open(f"file://{tmp_path / 'nope.itblog'}")


# ----- the registry --------------------------------------------------------------------------

def test_unknown_scheme_names_it_and_the_known_ones():
    with pytest.raises(UnknownBackend) as exc:
        itb_device.open("serial9://COM3")
    msg = str(exc.value)
    assert "no backend for serial9://" in msg
    assert "sim://" in msg and "file://" in msg
    assert "\n" not in msg


def test_a_bare_path_is_not_a_url():
    with pytest.raises(UnknownBackend, match="is not a URL"):
        itb_device.open("sample_logs/normal_year.itblog")


class FlakyProgrammer(SimProgrammer):
    """A sim:// session whose link drops ``fails[hook]`` frames before each hook succeeds."""

    def __init__(self, pump: SimulatedPump, fails: dict[str, int] | None = None,
                 error: type[Exception] = TransientLinkError, **kwargs: Any) -> None:
        super().__init__(pump, **kwargs)
        self.fails = dict(fails or {})
        self.error = error
        self.attempts: dict[str, int] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> FlakyProgrammer:
        q = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        pump = SimulatedPump(PumpConfig(), DEFAULT_START, reservoir_ml=20.0)
        return cls(pump, {"interrogate": int(q.get("fails", 0))}, **kwargs)

    def _flaky(self, hook: str) -> None:
        self.attempts[hook] = self.attempts.get(hook, 0) + 1
        if self.fails.get(hook, 0) > 0:
            self.fails[hook] -= 1
            raise self.error(f"{hook}: frame lost")

    def _interrogate(self):
        self._flaky("interrogate")
        return super()._interrogate()

    def _program(self, rx, override, **opts):
        self._flaky("program")
        return super()._program(rx, override, **opts)


@pytest.fixture
def flaky_scheme():
    register_backend("flakysim", __name__, "FlakyProgrammer")
    try:
        yield "flakysim"
    finally:
        del BACKENDS["flakysim"]


def test_register_backend_extends_the_registry(flaky_scheme):
    with itb_device.open(f"{flaky_scheme}://?fails=0", retries=5, timeout=1.5) as prog:
        assert type(prog) is FlakyProgrammer
        assert (prog.retries, prog.timeout) == (5, 1.5)
        assert prog.interrogate().reservoir_ml == 20.0
    with pytest.raises(UnknownBackend) as exc:
        itb_device.open("flakysim2://")
    assert "flakysim://" in str(exc.value)


def test_register_backend_with_a_builtin_class():
    register_backend("simalias", "itb_device.sim_backend", "SimProgrammer")
    try:
        with itb_device.open("simalias://?model=40") as prog:
            assert prog.read_log().header.model_ml == 40
    finally:
        del BACKENDS["simalias"]


def test_transient_failures_are_retried(flaky_scheme, caplog):
    caplog.set_level(logging.WARNING, logger="itb_device")
    with itb_device.open(f"{flaky_scheme}://?fails=2") as prog:
        assert prog.retries == 2
        assert prog.interrogate().mode == "stopped"
        assert prog.attempts["interrogate"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "itb_device"]
    assert warnings == ["interrogate: attempt 1 of 3 failed: interrogate: frame lost",
                        "interrogate: attempt 2 of 3 failed: interrogate: frame lost"]


def test_a_link_that_always_fails_raises_link_error_after_retries_plus_one(flaky_scheme):
    with itb_device.open(f"{flaky_scheme}://?fails=100", retries=3) as prog:
        with pytest.raises(LinkError) as exc:
            prog.interrogate()
        assert type(exc.value) is LinkError  # not the transient error itself
        assert "interrogate failed after 4 attempts" in str(exc.value)
        assert prog.attempts["interrogate"] == 4


def test_no_retries_means_one_attempt(flaky_scheme):
    with itb_device.open(f"{flaky_scheme}://?fails=1", retries=0) as prog:
        with pytest.raises(LinkError, match="after 1 attempts"):
            prog.interrogate()
        assert prog.attempts["interrogate"] == 1


def test_a_retried_program_is_logged_once():
    pump = SimulatedPump(PumpConfig(), DEFAULT_START, reservoir_ml=20.0)
    with FlakyProgrammer(pump, {"program": 2}) as prog:
        prog.program(Prescription(daily_dose_mcg=300))
        assert prog.attempts["program"] == 3
        assert len(codes(prog, RecordCode.PRESCRIPTION)) == 1


def test_non_transient_errors_are_not_retried():
    pump = SimulatedPump(PumpConfig(), DEFAULT_START, reservoir_ml=20.0)
    with FlakyProgrammer(pump, {"interrogate": 5}, error=LinkError) as prog:
        with pytest.raises(LinkError, match="interrogate: frame lost"):
            prog.interrogate()
        assert prog.attempts["interrogate"] == 1
    with FlakyProgrammer(pump, {"program": 5}, error=PumpRefused) as prog:
        with pytest.raises(PumpRefused):
            prog.program(Prescription(daily_dose_mcg=300))
        assert prog.attempts["program"] == 1


# ----- sessions ------------------------------------------------------------------------------

def test_context_manager_ends_the_session_once():
    with itb_device.open("sim://") as prog:
        prog.advance(600)
    assert codes(prog, RecordCode.TELEMETRY_END) == [{"session_id": 1}]
    assert not prog.pump.in_telemetry
    prog.close()
    assert len(codes(prog, RecordCode.TELEMETRY_END)) == 1


def test_session_closes_when_the_block_raises():
    with pytest.raises(RuntimeError), itb_device.open("sim://") as prog:
        raise RuntimeError("boom")
    assert len(codes(prog, RecordCode.TELEMETRY_END)) == 1


@pytest.mark.parametrize("url", ["sim://", f"file://{SAMPLES / 'eri_eos.itblog'}"])
def test_every_method_after_close_raises_link_error(url, tmp_path):
    prog = itb_device.open(url)
    prog.close()
    calls = {
        "interrogate": prog.interrogate,
        "read_log": prog.read_log,
        "save_log": lambda: prog.save_log(tmp_path / "x.itblog"),
        "check_prescription": lambda: prog.check_prescription(Prescription(daily_dose_mcg=100)),
        "program": lambda: prog.program(Prescription(daily_dose_mcg=100)),
        "refill": lambda: prog.refill(10, 2000),
        "bolus": lambda: prog.bolus(50),
        "set_clock": prog.set_clock,
    }
    for name, call in calls.items():
        with pytest.raises(LinkError, match="session is closed"):
            call()
        assert not (tmp_path / "x.itblog").exists(), name
