"""What a Python user expects of the ``itb`` command (issue 12): ``--version`` and
``__version__``, ``python -m itb_device``, progress on a terminal during ``itb interrogate``,
one URL form for ``pump-sim --listen`` and ``interrogate``, ``interrogate`` through
``itb_device.open()`` (``sim://``, ``file://``), ``check --json`` naming its source,
``check --help`` on the exit status, and install hints that work in a source checkout."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES
from test_wire_serve import fresh_pump, serving

import itb_device
from itb_device.cli import main
from itb_device.cli.main import COMMANDS
from itb_device.serial_backend import ReadProgress, SerialProgrammer
from itb_device.wire.faults import FaultSpec
from itb_device.wire.server import PumpService, TcpTransport, open_transport
from parsers import read_log
from parsers.writer import encode_log

DELAYED = SAMPLES / "mri_delayed_recovery.itblog"
VERSION = re.compile(r"^itb \(itb-telemetry\) \S+$")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


# ---- 9. versions and python -m -----------------------------------------------------------------


def test_version_option(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert VERSION.match(out) and out.endswith(version("itb-telemetry"))
    assert itb_device.__version__ == version("itb-telemetry")


def test_version_without_installed_metadata(monkeypatch):
    import importlib.metadata

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert itb_device._version() == "0+unknown"


def test_python_dash_m_itb_device_runs_the_cli():
    p = subprocess.run([sys.executable, "-m", "itb_device", "--version"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and VERSION.match(p.stdout.strip()), p
    p = subprocess.run([sys.executable, "-m", "itb_device", "decode", str(DELAYED)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "serial NGP410003" in p.stdout, p.stderr
    p = subprocess.run([sys.executable, "-m", "itb_device", "check"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "the following arguments" in p.stderr


def test_import_itb_device_is_quick_and_lazy():
    code = ("import sys, itb_device; assert 'pandas' not in sys.modules, 'pandas'; "
            "from itb_device import Prescription, open; print(Prescription.__name__, open.__name__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["Prescription", "open_pump"]
    assert "Prescription" in dir(itb_device)


def test_the_command_line_starts_without_pandas():
    """``itb --version`` and ``itb CMD --help`` build the parser of every command: none of them
    may import the analysis, the parsers' pandas tables or the ward app at module level."""
    code = ("import sys; from itb_device.cli.main import build_parser; build_parser(); "
            "heavy = sorted(m for m in ('pandas', 'numpy', 'analysis', 'parsers', 'ward', 'flask') "
            "if m in sys.modules); print(heavy)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


# ---- 10. progress on a terminal ------------------------------------------------------------------



def test_a_command_loads_only_its_own_module_and_no_package_metadata():
    """``itb check ...`` registers the check's options only (issue 18: start-up); the others
    are listed for --help but not imported, and the version is read only for --version."""
    code = ("import sys; from itb_device.cli.main import build_parser; "
            "p = build_parser(['check', 'x.itblog']); "
            "cli = sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('itb_device.cli.')); "
            "print(cli, 'importlib.metadata' in sys.modules); "
            "print(sorted(p._subparsers._group_actions[0].choices))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    loaded, names = p.stdout.splitlines()
    assert loaded == "['check', 'errors', 'main', 'options'] False"
    assert names == str(sorted(COMMANDS))


def test_the_itb_process_spares_its_final_collection_and_a_caller_keeps_its_collector(capsys, tmp_path):
    """The ``itb`` process imports its command's modules with the collector off and freezes
    them, and freezes what is alive when it ends (Python's final full collection took a third
    of a check), its collector on again; a program calling main() keeps its collector as is."""
    import gc

    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.get_freeze_count() == 0
    assert main(["dose", "test", "--age", "9", "--weight-kg", "20"]) == 0  # past the command's imports
    assert gc.isenabled() and gc.get_freeze_count() == 0
    script = tmp_path / "itb"  # the console script's name: this process is the itb command
    script.write_text(
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, gc.isenabled()))\n"
        "from itb_device.cli import main\n"
        "sys.exit(main())\n"
    )
    p = subprocess.run([sys.executable, str(script), "dose", "test", "--age", "9", "--weight-kg", "20"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "frozen True True" and "mcg" in p.stdout

def interrogate(args: list[str], monkeypatch, stderr: io.StringIO) -> tuple[int, str]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", out)
    rc = main(["interrogate", *map(str, args)])
    return rc, out.getvalue()


def test_interrogate_shows_progress_on_a_terminal(monkeypatch, tmp_path):
    pump = fresh_pump(days=40)
    out = tmp_path / "out.itblog"
    err = Terminal()
    with serving(PumpService(pump), "tcp") as srv:
        rc, stdout = interrogate([srv.url, "-o", out, "--timeout", "0.5"], monkeypatch, err)
    assert rc == 0, err.getvalue()
    assert not read_log(out).damaged
    shown = err.getvalue()
    pages = re.findall(r"page (\d+) of (\d+) \((\d+)%\)", shown)
    assert pages, shown
    total = int(pages[0][1])
    assert total == len(read_log(out).pages) > 5
    assert [int(p[0]) for p in pages] == sorted(int(p[0]) for p in pages)  # it only goes forward
    assert pages[-1] == (str(total), str(total), "100")
    # the line is cleared before the one-line account of the read
    account = shown.rpartition("\r\033[K")[2]
    assert account.startswith("itb interrogate: full read of pump ") and account.count("\n") == 1
    assert "\r" not in account and account.endswith("\n")
    assert "link:" in stdout


def test_interrogate_is_quiet_when_not_a_terminal(monkeypatch, tmp_path):
    pump = fresh_pump(days=5)
    err = io.StringIO()
    with serving(PumpService(pump), "tcp") as srv:
        rc, stdout = interrogate([srv.url, "-o", tmp_path / "o.itblog"], monkeypatch, err)
    assert rc == 0
    # no progress line, only the one-line account of the read (whole or incremental, bytes moved)
    assert "\r" not in err.getvalue() and err.getvalue().count("\n") == 1
    assert err.getvalue().startswith("itb interrogate: full read of pump ")
    assert "link: " in stdout


def test_progress_callback_counts_pages_and_retries():
    pump = fresh_pump(days=10)
    seen: list[ReadProgress] = []
    faults = FaultSpec(drop=0.002, seed=4)
    with serving(PumpService(pump), "pty", faults) as srv:
        prog = SerialProgrammer.from_url(srv.url, link_timeout=0.05, progress=seen.append)
        try:
            data = prog.read_log_bytes()
            retried = prog.link.failures
            assert data == encode_log(pump.log_image())  # the session is still open: the same image
        finally:
            prog.close()
    assert seen[0].done_bytes == 0 and seen[-1].done_bytes == seen[-1].total_bytes == len(data)
    assert seen[-1].pages_done == seen[-1].pages_total > 0
    assert retried > 0 and seen[-1].retries == retried  # the faults hit this read
    assert [p.retries for p in seen] == sorted(p.retries for p in seen)


def test_terminal_progress_line():
    from itb_device.cli.interrogate import TerminalProgress

    err = Terminal()
    show = TerminalProgress(err)
    show(ReadProgress(384 + 3 * 1024, 384 + 10 * 1024, 1024, 2))
    assert err.getvalue() == "\ritb interrogate: reading the log, page 3 of 10 (30%), 2 retries\033[K"
    show.close()
    assert err.getvalue().endswith("\r\033[K")


# ---- 11. one URL form; interrogate through itb_device.open() --------------------------------------


@pytest.mark.parametrize("listen", ["socket://127.0.0.1:0", "tcp://127.0.0.1:0", "socket://localhost:0"])
def test_pump_sim_listens_on_the_url_interrogate_takes(listen):
    tr = open_transport(listen)
    try:
        assert isinstance(tr, TcpTransport)
        assert re.fullmatch(r"socket://127\.0\.0\.1:\d+", tr.name)
    finally:
        tr.close()


def test_pump_sim_listen_socket_then_interrogate_the_printed_url(capsys, tmp_path):
    """``itb pump-sim --listen socket://127.0.0.1:0`` as a process; ``itb interrogate`` the URL it
    prints (the same form)."""
    log = SAMPLES / "titration_violation.itblog"
    proc = subprocess.Popen(
        [sys.executable, "-m", "itb_device", "pump-sim", "--listen", "socket://127.0.0.1:0",
         "--replay", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        m = re.fullmatch(r"pump simulator listening on (socket://127\.0\.0\.1:\d+)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        out = tmp_path / "out.itblog"
        assert main(["interrogate", m[1], "-o", str(out), "--timeout", "0.5"]) == 0
        assert out.read_bytes() == log.read_bytes()
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_interrogate_a_simulated_pump(capsys, tmp_path):
    out = tmp_path / "sim.itblog"
    assert main(["interrogate", "sim://?model=40&seed=3", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    log = read_log(out)
    assert log.header.model_ml == 40 and not log.damaged
    assert stdout.startswith(f"{out}: {out.stat().st_size} bytes") and "link:" not in stdout


def test_interrogate_a_scenario_pump(capsys, tmp_path):
    out = tmp_path / "sc.itblog"
    scenario = SAMPLES / "scenarios" / "mri_telemetry_mode.toml"
    assert main(["interrogate", f"sim://?scenario={scenario}", "-o", str(out)]) == 0
    log = read_log(out)
    assert not log.damaged and len(log.delivery) > 0


def test_interrogate_a_saved_log_by_file_url(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # file://sample_logs/... is relative to the working folder
    out = tmp_path / "copy.itblog"
    assert main(["interrogate", "file://sample_logs/normal_year.itblog", "-o", str(out)]) == 0
    assert out.read_bytes() == (SAMPLES / "normal_year.itblog").read_bytes()
    assert read_log(out).delivery.shape[0] > 8000
    assert main(["interrogate", f"file://{SAMPLES / 'normal_year.itblog'}", "-o", str(out)]) == 0


# ---- 12. check --json names its source; --help on the exit status --------------------------------


def test_check_json_names_the_file_its_hash_and_the_pump(capsys):
    rc = main(["check", str(DELAYED), "--after", "mri", "--end", "2026-03-10T15:00Z", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["source"]["file"] == str(DELAYED)
    assert doc["source"]["sha256"] == hashlib.sha256(DELAYED.read_bytes()).hexdigest()
    assert doc["source"]["pump_serial"] == read_log(DELAYED).header.serial == "NGP410003"
    assert doc["schema"] == "itb-check/1"


def test_check_json_source_is_documented():
    text = (ROOT / "docs" / "check-json.md").read_text()
    for key in ("source", "file", "sha256", "pump_serial"):
        assert f"| `{key}` |" in text, key


def test_check_help_states_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 the check ran, WHATEVER THE VERDICT (OK, REVIEW or URGENT), unless --fail-on is given" in text
    assert "without it the exit status is 0 whatever the verdict" in text


# ---- 13. install hints that work in a source checkout ---------------------------------------------


def test_no_install_hint_names_an_index_package():
    hits = []
    for package in ("itb_device", "analysis", "parsers"):
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "itb-telemetry[" in line:
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_dask_hint_is_a_command_for_a_checkout():
    from analysis.research.cohort import DASK_HINT

    assert "pip install -e '.[dask]'" in DASK_HINT and "repository root" in DASK_HINT
