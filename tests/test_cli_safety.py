"""The command line facing hostile logs and interruptions (issue 14 items 13 and 14): control
characters from a log are shown escaped, never obeyed; Ctrl-C while `itb` starts is one line and
status 130; what a killed run left behind (temporary files, cohort staging folders) is removed by
the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT

from analysis.research.cohort import remove_stale_work
from itb_device.cli import main
from parsers import read_log
from parsers.atomic import stale_temp_files
from parsers.crc import crc32c
from parsers.text import printable

URGENT_LOG = ROOT / "sample_logs" / "mri_delayed_recovery.itblog"
CHECK = ["--after", "mri", "--start", "2026-03-10T14:00Z", "--end", "2026-03-10T15:00Z",
         "--tz", "Australia/Sydney", "--weight-kg", "35"]
FAKE_SERIAL = "a\r\nVERDICT: OK\n"
FAKE_DRUG = "\x1b[2J\x1b]0;x\x07\u202e"


def hostile_log(tmp_path: Path, serial: str = FAKE_SERIAL, drug: str = FAKE_DRUG) -> Path:
    """The URGENT sample with a serial number and a drug name holding control characters (the
    writer would refuse them; a damaged or forged log need not come from it): CRCs made good."""
    data = bytearray(URGENT_LOG.read_bytes())
    data[28:44] = serial.encode("latin-1").ljust(16, b"\0")
    data[124:128] = crc32c(bytes(data[:124])).to_bytes(4, "little")
    data[136:152] = drug.encode("utf-8")[:16].ljust(16, b"\0")
    data[380:384] = crc32c(bytes(data[128:380])).to_bytes(4, "little")
    path = tmp_path / "hostile.itblog"
    path.write_bytes(bytes(data))
    return path


def assert_inert(text: str) -> None:
    """Nothing in ``text`` moves the cursor, clears the screen or reorders what is shown."""
    for ch in ("\r", "\x1b", "\x07", "\u202e", "\x00"):
        assert ch not in text, repr(ch)


# ----- item 13: terminal injection ---------------------------------------------------------------

def test_printable_escapes_control_characters_and_keeps_text():
    assert printable("NGP410003 baclofen 2000 mcg/mL") == "NGP410003 baclofen 2000 mcg/mL"
    assert printable("Zürich µg ±5%") == "Zürich µg ±5%"
    assert printable(FAKE_SERIAL) == "a\\r\\nVERDICT: OK\\n"
    assert printable(FAKE_DRUG) == "\\x1b[2J\\x1b]0;x\\x07\\u202e"
    assert printable("\x7f\x85\u2028") == "\\x7f\\x85\\u2028"


def test_a_serial_number_cannot_print_a_fake_verdict_above_the_real_one(tmp_path, capsys):
    log = hostile_log(tmp_path)
    assert main(["check", str(log), *CHECK]) == 0
    out = capsys.readouterr().out
    assert_inert(out)
    verdicts = [line for line in out.splitlines() if line.startswith("VERDICT")]
    assert verdicts == ["VERDICT: URGENT"]
    assert "pump a\\r\\nVERDICT: OK\\n (40 mL)" in out  # shown, escaped, on the header line


def test_check_keeps_its_own_colour_only(tmp_path, monkeypatch):
    from analysis.check import check
    from analysis.timeutil import Clock
    from itb_device.cli.check import render_text
    from itb_device.cli.options import local_zone, parse_user_time
    from parsers import read_log

    log = read_log(hostile_log(tmp_path))
    zone = local_zone("Australia/Sydney")
    result = check(log, "mri", parse_user_time("2026-03-10T15:00Z", zone, "--end"),
                   parse_user_time("2026-03-10T14:00Z", zone, "--start"), weight_kg=35, clock=Clock(zone))
    text = render_text(result, log, colour=True)
    assert text.count("\x1b") == 2  # the verdict's colour on and off, nothing from the log
    assert "VERDICT: \x1b[1;41;97m URGENT \x1b[0m" in text


def test_decode_shows_the_logs_text_escaped(tmp_path, capsys):
    log = hostile_log(tmp_path)
    assert main(["decode", str(log)]) == 0
    captured = capsys.readouterr()
    assert_inert(captured.out + captured.err)
    assert "serial a\\r\\nVERDICT: OK\\n" in captured.out
    assert main(["decode", str(log), "--status"]) == 0  # JSON escapes control characters itself
    assert_inert(capsys.readouterr().out)


def test_error_messages_are_escaped(tmp_path, capsys):
    bad = tmp_path / "no\x1b[31mlog.itblog"
    assert main(["decode", str(bad)]) == 2
    err = capsys.readouterr().err
    assert_inert(err)
    assert "no\\x1b[31mlog.itblog" in err


# ----- item 14: Ctrl-C while starting, and what a killed run leaves behind -----------------------------

def run_script(tmp_path: Path, name: str, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / name
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_while_itb_starts_is_one_line_and_status_130(tmp_path):
    # a script named `itb` is the console script: Ctrl-C arrives after the package is imported
    # and before main() runs (where the imports of a command are still to come)
    done = run_script(tmp_path, "itb", """
        import os, signal, sys, time
        import itb_device.cli
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
        print("not reached")
    """)
    assert done.returncode == 130
    assert done.stderr == "itb: interrupted\n"
    assert "not reached" not in done.stdout


def test_ctrl_c_in_a_command_after_start_up_is_handled_by_the_command(tmp_path):
    script = tmp_path / "itb"
    script.write_text("import sys\nfrom itb_device.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, str(script), "pump-sim", "--listen", "pty"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline().startswith("pump simulator listening on ")
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(20)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
    # the server's own handler stops it (0); a signal that lands before the loop starts is the
    # CLI's one line (130): either way one line, no traceback
    assert (rc, "pump simulator stopped" in err) == (0, True) or (rc == 130 and "interrupted" in err), err
    assert "Traceback" not in err


def test_importing_the_package_leaves_ctrl_c_alone(tmp_path):
    done = run_script(tmp_path, "program.py", """
        import signal
        import itb_device, itb_device.cli
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """)
    assert done.stdout.strip() == "True", done.stderr


def dead_pid() -> int:
    """The process id of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def killed_writer(target: Path) -> None:
    """A real atomic write of ``target``, killed (SIGKILL) halfway: its temporary file stays."""
    code = textwrap.dedent(f"""
        import time
        from parsers.writer import atomic_write_bytes
        def chunks():
            yield b"half a file"
            print("writing", flush=True)
            time.sleep(60)
            yield b"never"
        atomic_write_bytes({str(target)!r}, chunks())
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert stale_temp_files(target.parent, target.name) == []  # being written: not stale
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()


def test_a_killed_exports_temporary_file_is_removed_by_the_next_run(tmp_path, capsys):
    out = tmp_path / "events.parquet"
    killed_writer(out)
    (left,) = tmp_path.glob(".events.parquet.*.tmp")
    old = time.time() - 10
    os.utime(left, (old, old))  # a temporary file without a process id is judged after 2 s
    dead, live = dead_pid(), os.getpid()
    with_dead_pid = tmp_path / f".events.parquet.{dead}.abcd1234.tmp"  # as a writer naming its process
    with_live_pid = tmp_path / f".events.parquet.{live}.abcd1234.tmp"
    other = tmp_path / ".other.csv.abcd1234.tmp"  # another file's: not this command's business
    for p in (with_dead_pid, with_live_pid, other):
        p.write_bytes(b"x")
        os.utime(p, (old, old))
    assert main(["decode", str(URGENT_LOG), "--events", "--format", "parquet", "-o", str(out)]) == 0
    capsys.readouterr()
    assert out.is_file()
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == sorted([with_live_pid.name, other.name])


def test_a_killed_cohort_runs_staging_folders_and_parts_are_removed_on_resume(tmp_path):
    out = tmp_path / "results"
    (out / "parts").mkdir(parents=True)
    staging = run_script(tmp_path, "combine.py", f"""
        import os, signal
        from pathlib import Path
        out = Path({str(out)!r})
        for name in (f".combine-{{os.getpid()}}/csv", f".old-parquet-{{os.getpid()}}"):
            (out / name).mkdir(parents=True)
        (out / f".combine-{{os.getpid()}}/csv/stalls.csv").write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert staging.returncode == -signal.SIGKILL
    mine = out / f".combine-{os.getpid()}"  # a run still going (this process): kept
    mine.mkdir()
    killed_writer(out / "parts" / "a-1234.zip")
    old = time.time() - 10
    for p in (out / "parts").glob(".*.tmp"):
        os.utime(p, (old, old))
    (out / "parts" / "b-5678.zip").write_bytes(b"a finished part: kept")
    gone = remove_stale_work(out)
    assert len(gone) == 3, gone
    assert sorted(p.name for p in out.iterdir()) == sorted(["parts", mine.name])
    assert [p.name for p in (out / "parts").iterdir()] == ["b-5678.zip"]


@pytest.mark.slow
def test_itb_cohort_resume_cleans_up_after_a_killed_run(tmp_path, capsys):
    out = tmp_path / "results"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "one.itblog").write_bytes(URGENT_LOG.read_bytes())
    assert main(["cohort", str(logs), "-o", str(out), "--workers", "1"]) == 0
    pid = dead_pid()
    (out / f".combine-{pid}" / "csv").mkdir(parents=True)
    (out / "parts" / f".x.zip.{pid}.abcd1234.tmp").write_bytes(b"x")
    assert main(["cohort", str(logs), "-o", str(out), "--workers", "1", "--resume"]) == 0
    capsys.readouterr()
    assert not list(out.glob(".combine-*")) and not list((out / "parts").glob(".*.tmp"))


@pytest.mark.parametrize("field", ["serial", "firmware", "programmer_id", "drug_name"])
@pytest.mark.parametrize("value", [FAKE_SERIAL, "\x1b[2J", "ok\x7f", "nul\x00inside", "\u00b5g"])
def test_the_writer_refuses_text_a_log_cannot_hold_faithfully(field, value):
    """Item 13: text fields are printable ASCII; the writer refuses anything else, naming the
    field (a forged log is still read and shown escaped, above)."""
    import dataclasses

    from parsers.header import encode_header, encode_status

    log = read_log(URGENT_LOG)
    with pytest.raises(ValueError, match=rf"^{field} .*(printable ASCII)"):
        if field == "drug_name":
            encode_status(dataclasses.replace(log.status, drug_name=value))
        else:
            encode_header(dataclasses.replace(log.header, **{field: value}), log.header.page_count)


def test_a_scenario_with_a_control_character_in_the_serial_is_refused_naming_file_and_key(tmp_path):
    scenario = tmp_path / "bad.toml"
    scenario.write_text('name = "bad"\nstart = "2026-01-01T00:00:00Z"\n[pump]\n'
                        'serial = "a\\r\\nVERDICT: OK"\n[[events]]\nat = "+1d"\naction = "interrogate"\n')
    run = subprocess.run([sys.executable, "-m", "itb_device", "simulate", str(scenario), "-o",
                          str(tmp_path / "x.itblog")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert f"{scenario}: pump.serial" in run.stderr and "control character" in run.stderr
    assert_inert(run.stderr.replace("\n", ""))
    assert not (tmp_path / "x.itblog").exists()
