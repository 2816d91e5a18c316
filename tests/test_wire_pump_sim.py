"""`itb pump-sim` as a real subprocess: it prints where it listens, serves an interrogation over
socket://127.0.0.1 or a pseudo-terminal, and stops cleanly on SIGINT."""

from __future__ import annotations

import contextlib
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import ROOT

from itb_device import ReadOnlyPump
from itb_device.cli import main
from itb_device.serial_backend import SerialProgrammer
from itb_device.sim.scenario import load_scenario, run_scenario
from parsers.writer import encode_log

SCENARIO = ROOT / "sample_logs" / "scenarios" / "titration_violation.toml"
LISTENING = re.compile(r"^pump simulator listening on (\S+)$")
START_S = 60.0  # generous: a cold interpreter importing numpy/pandas on a loaded machine


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of the child's stdout, or fail after ``timeout`` seconds (never hangs)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"no line from pump-sim within {timeout} s (got {buf!r})")
            chunk = proc.stdout.read1(4096)
            if not chunk:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
                raise AssertionError(f"pump-sim ended before printing its address: {err}")
            buf += chunk
    finally:
        sel.close()
    return buf.decode().strip()


@contextlib.contextmanager
def pump_sim(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start `itb pump-sim ARGS`; yields the process and the address it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "itb_device.cli", "pump-sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        # a shell without job control starts background jobs with SIGINT ignored, and the child
        # would inherit that; give it the default disposition so Python raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = read_line(proc, START_S)
        m = LISTENING.match(line)
        assert m, line
        yield proc, m[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=10)
    return rc, proc.stderr.read().decode()


def scenario_session_log() -> tuple[bytes, object]:
    pump = run_scenario(load_scenario(SCENARIO), final_session=False).pump
    if not pump.in_telemetry:
        pump.telemetry_start()
    return encode_log(pump.log_image()), pump.status()


def test_pump_sim_over_tcp_serves_an_interrogation_and_stops_on_sigint():
    expected, status = scenario_session_log()
    with pump_sim("--listen", "tcp://127.0.0.1:0", "--scenario", str(SCENARIO)) as (proc, url):
        m = re.fullmatch(r"socket://127\.0\.0\.1:(\d+)", url)
        assert m, url
        assert 0 < int(m[1]) < 65536
        prog = SerialProgrammer.from_url(url, link_timeout=0.5)
        try:
            assert prog.interrogate() == status
            assert prog.read_log_bytes() == expected
            assert prog.link.failures == 0
        finally:
            prog.close()
        assert proc.poll() is None  # still serving after the client left
        rc, err = stop(proc)
    assert rc == 0
    assert err.strip().splitlines()[-1] == "pump simulator stopped"
    assert "Traceback" not in err


def test_pump_sim_over_a_pty_serves_a_saved_log_read_only():
    log = ROOT / "sample_logs" / "titration_violation.itblog"
    with pump_sim("--listen", "pty", "--replay", str(log)) as (proc, path):
        assert path.startswith("/dev/")
        prog = SerialProgrammer.from_url(path, link_timeout=0.5)
        try:
            assert prog.read_log_bytes() == log.read_bytes()
            with pytest.raises(ReadOnlyPump):
                prog.bolus(5)
        finally:
            prog.close()
        rc, err = stop(proc)
    assert rc == 0
    assert "pump simulator stopped" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "wording"),
    [
        (["--listen", "tcp://0.0.0.0:0"], "loopback only"),
        (["--listen", "serial:///dev/ttyS0"], "use 'pty' or tcp://127.0.0.1:PORT"),
        (["--listen", "pty", "--faults", "loss=0.5"], "fault option 'loss=0.5'"),
        (["--listen", "pty", "--scenario", "no/such/scenario.toml"], "no/such/scenario.toml"),
    ],
)
def test_pump_sim_usage_errors_exit_2(capsys, args, wording):
    rc = main(["pump-sim", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("itb pump-sim: error: ")
    assert wording in err
