"""Bad input to the ``itb`` command (issue 12): each is one line on stderr naming the input
(file and byte offset, or the option), exit status 2, no traceback, and nothing half-written
(no output file, no empty output folder).  Ctrl-C is one line and exit status 130."""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLES

from itb_device.cli import main

DELAYED = SAMPLES / "mri_delayed_recovery.itblog"
ITB = Path(sys.executable).with_name("itb")


@pytest.fixture
def png(tmp_path) -> Path:
    """A real binary file that is not a scenario, a log or a rules file."""
    p = tmp_path / "some.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    return p


def one_line_error(capsys, args: list[str], *fragments: str) -> str:
    """Run ``itb ARGS`` in-process; it must exit 2 with one line on stderr holding every
    fragment, nothing on stdout and no traceback.  Returns the line."""
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    assert rc == 2, out
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    (line,) = lines
    assert line.startswith(f"itb {args[0]}: error: "), line
    assert "Traceback" not in out.err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ---- 1. a binary file given as a scenario ------------------------------------------------------


def test_simulate_a_binary_file(capsys, tmp_path, png):
    out = tmp_path / "out.itblog"
    line = one_line_error(capsys, ["simulate", png, "-o", out], str(png), "byte 0", "not a scenario file")
    assert line == (f"itb simulate: error: {png}: byte 0: not a scenario file (a scenario is UTF-8 TOML "
                    "text, see docs/scenarios.md)")
    assert listing(tmp_path) == ["some.png"]


def test_simulate_refuses_a_truth_path_before_writing_the_log(capsys, tmp_path):
    out = tmp_path / "out.itblog"
    scenario = SAMPLES / "scenarios" / "mri_telemetry_mode.toml"
    one_line_error(capsys, ["simulate", scenario, "-o", out, "--truth", tmp_path / "no" / "t.json"],
                   "--truth", "does not exist")
    assert listing(tmp_path) == []


def test_simulate_a_scenario_with_a_value_of_the_wrong_kind(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nstart = "2026-01-01T00:00:00Z"\n[[timeline]]\nat = "+1h"\n'
                   'action = "refill"\n[[timeline]]\nat = "+1d"\naction = "interrogate"\n')
    one_line_error(capsys, ["simulate", bad, "-o", tmp_path / "o.itblog"], f"{bad}: timeline[0]",
                   "missing 'volume_ml'")
    assert listing(tmp_path) == ["bad.toml"]


def test_pump_sim_a_binary_scenario(capsys, png):
    one_line_error(capsys, ["pump-sim", "--listen", "pty", "--scenario", png], f"{png}: byte 0:")


def test_pump_sim_a_binary_replay(capsys, png):
    one_line_error(capsys, ["pump-sim", "--listen", "pty", "--replay", png], f"{png}: byte 0:",
                   "not an ITB interrogation log")


# ---- 2. make-cohort --start --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "fragment"),
    [("yesterday", "--start 'yesterday' is not a date"),
     ("2001-01-01", "the cohort must start on or after 2007-01-01")],
)
def test_make_cohort_bad_start_leaves_no_folder(capsys, tmp_path, start, fragment):
    out = tmp_path / "cohort"
    one_line_error(capsys, ["make-cohort", "2", "--start", start, "-o", out], fragment)
    assert not out.exists()


def test_make_cohort_a_date_without_a_time_works(capsys, tmp_path):
    """``--start 2026-01-01`` was a 51-line remote traceback: the scenario loader refused a time
    without an offset.  A date (or a time without an offset) is UTC now."""
    out = tmp_path / "cohort"
    assert main(["make-cohort", "2", "--start", "2026-01-01", "--years", "0.1", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""
    assert listing(out) == ["cohort_0_000000.itblog", "cohort_0_000001.itblog", "make-cohort.json"]
    assert json.loads((out / "make-cohort.json").read_text())["start"] == "2026-01-01T00:00:00Z"
    from parsers import read_log

    log = read_log(out / "cohort_0_000000.itblog")
    assert not log.damaged and log.delivery["time_utc"].min().year == 2026


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["0"], "pumps 0"), (["2", "--years", "0"], "--years 0"), (["2", "--workers", "0"], "--workers 0")],
)
def test_make_cohort_bad_numbers(capsys, tmp_path, args, fragment):
    out = tmp_path / "c"
    one_line_error(capsys, ["make-cohort", *args, "-o", out], fragment)
    assert not out.exists()


# ---- 3. pump-sim --faults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("drop=lots", "--faults: fault option 'drop=lots': drop is a probability per byte, a number from 0"),
        ("drop=2", "--faults: fault option 'drop=2': drop is a probability per byte"),
        ("corrupt=-0.1", "corrupt is a probability per byte"),
        ("split=1.5", "split is a probability per write"),
        ("drop=0.6,corrupt=0.6", "drop + corrupt is at most 1"),
        ("seed=x", "seed must be a whole number"),
        ("delay=nan", "delay is seconds"),
        ("loss=0.5", "fault option 'loss=0.5'"),
    ],
)
def test_pump_sim_bad_faults(capsys, spec, fragment):
    one_line_error(capsys, ["pump-sim", "--listen", "pty", "--faults", spec], fragment)


def test_fault_probabilities_at_the_limits_are_accepted():
    from itb_device.wire.faults import FaultSpec

    spec = FaultSpec.parse("drop=0,corrupt=1,split=1,delay=0.5,seed=7")
    assert (spec.drop, spec.corrupt, spec.split, spec.delay_s, spec.seed) == (0.0, 1.0, 1.0, 0.5, 7)


def test_pump_sim_help_says_fault_probabilities_are_per_byte(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pump-sim", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "drop and corrupt are probabilities PER BYTE (0 to 1" in text


@pytest.mark.parametrize(
    ("listen", "fragment"),
    [("socket://127.0.0.1:99999", "the port must be a number from 0 to 65535"),
     ("udp://127.0.0.1:0", "or socket://127.0.0.1:PORT")],
)
def test_pump_sim_bad_listen(capsys, listen, fragment):
    one_line_error(capsys, ["pump-sim", "--listen", listen], f"--listen {listen!r}", fragment)


# ---- 4. check --report checked before the analysis ---------------------------------------------

CHECK = ["check", DELAYED, "--after", "mri", "--end", "2026-03-10T15:00Z"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("no/such/dir/x.pdf", "the folder {tmp}/no/such/dir does not exist"),
        ("x.txt", "the file name must end in .pdf or .html"),
        (".", "the file name must end in .pdf"),
    ],
)
def test_check_report_path_is_refused_before_the_verdict(capsys, tmp_path, name, fragment):
    report = tmp_path / name if name != "." else tmp_path
    line = one_line_error(capsys, [*CHECK, "--report", report], f"--report {report}",
                          fragment.format(tmp=tmp_path))
    assert ".tmp" not in line  # not a temporary file's name
    assert listing(tmp_path) == []


def test_check_with_a_procedure_after_the_interrogation_is_one_line(capsys):
    """An --end after the log was read (the wrong log or the wrong date) is the user's error:
    one line naming the log and --end, exit 2, no traceback (it was a traceback)."""
    log = SAMPLES / "pocket_fill.itblog"  # interrogated on 2026-04-13
    one_line_error(capsys, ["check", log, "--after", "mri", "--end", "2026-10-31T11:00:00+00:00"],
                   f"{log}: --end 2026-10-31T11:00:00+00:00", "after the pump was interrogated",
                   "right log, or the right date")


def test_check_report_into_a_folder_given_as_the_file(capsys, tmp_path):
    folder = tmp_path / "r.pdf"
    folder.mkdir()
    one_line_error(capsys, [*CHECK, "--report", folder], f"--report {folder}: is a folder")


# ---- 5. rules files with unknown sections or keys ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[contacts]\nkids_rehab_cn = "9999 0000"\n',
         "unknown key [contacts] kids_rehab_cn (did you mean kids_rehab_cnc?)"),
        ('[contact]\nkids_rehab_cnc = "9999 0000"\n', "unknown section [contact] (did you mean contacts?)"),
        ('[procedures]\ncheck_after_mri_hours = "three"\n',
         "[procedures] check_after_mri_hours must be a number, not 'three'"),
        ("[procedures]\ncheck_after_mri_hours = [2, 3]\n", "check_after_mri_hours must be a number"),
        ("[check\n", "cannot read clinical rules"),
    ],
)
def test_rules_file_with_unknown_or_wrong_entries(capsys, tmp_path, text, fragment):
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    line = one_line_error(capsys, [*CHECK, "--rules", rules], str(rules), fragment)
    if "unknown key" in fragment:
        assert f"{rules}: unknown key [contacts] kids_rehab_cn" in line


def test_binary_rules_file(capsys, png):
    one_line_error(capsys, [*CHECK, "--rules", png], f"cannot read clinical rules {png}")


def test_rules_from_the_environment_are_checked_too(capsys, monkeypatch, tmp_path):
    rules = tmp_path / "hospital.toml"
    rules.write_text('[contacts]\nkids_rehab_cn = "9999 0000"\n')
    monkeypatch.setenv("ITB_CLINICAL_RULES", str(rules))
    one_line_error(capsys, CHECK, f"ITB_CLINICAL_RULES={rules}: unknown key [contacts] kids_rehab_cn")
    # every command that reads the rules says the same, in one line
    out = tmp_path / "out.itblog"
    one_line_error(capsys, ["simulate", SAMPLES / "scenarios" / "mri_telemetry_mode.toml", "-o", out],
                   f"ITB_CLINICAL_RULES={rules}: unknown key")
    one_line_error(capsys, ["dose", "oral", "--weight-kg", "20"], f"ITB_CLINICAL_RULES={rules}")
    cohort = tmp_path / "cohort"
    one_line_error(capsys, ["make-cohort", "2", "-o", cohort], f"ITB_CLINICAL_RULES={rules}")
    assert not out.exists() and not cohort.exists()


def test_a_correct_override_changes_the_printed_contact(capsys, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[contacts]\nkids_rehab_cnc = "0400 000 000"\n')
    assert main([str(a) for a in [*CHECK, "--rules", rules]]) == 0
    out = capsys.readouterr().out
    assert "0400 000 000" in out and "9845 2815" not in out


def test_validate_rules_directly():
    from clinical.rules import RulesError, get_rules, validate_rules

    base = get_rules().data
    validate_rules({"pump": {"refill_discrepancy_ml": {"20": 1.5, "40": 2.5}}}, "x.toml", base)
    with pytest.raises(RulesError, match=r"^x\.toml: unknown key \[pump\] reservoir_mls"):
        validate_rules({"pump": {"reservoir_mls": [20]}}, "x.toml", base)
    with pytest.raises(RulesError, match=r"x\.toml: pump must be a \[pump\] section"):
        validate_rules({"pump": 3}, "x.toml", base)


# ---- 6. itb score outside the repository --------------------------------------------------------


def test_score_outside_the_repository_uses_the_bundled_samples(tmp_path):
    p = subprocess.run([str(ITB), "score"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1].startswith("RESULT samples=")
    assert "Traceback" not in p.stderr


def test_score_a_missing_folder(capsys, tmp_path):
    missing = tmp_path / "samples"
    one_line_error(capsys, ["score", missing], f"{missing}: no such folder", "itb score PATH/TO/sample_logs")


def test_score_a_folder_without_samples(capsys, tmp_path):
    one_line_error(capsys, ["score", tmp_path], f"{tmp_path}: holds no NAME.itblog with a NAME.truth.json")


def test_score_with_no_samples_anywhere(capsys, tmp_path, monkeypatch):
    from itb_device.cli import score

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(score, "BUNDLED", tmp_path / "nowhere")
    one_line_error(capsys, ["score"], f"no sample_logs folder here ({tmp_path})",
                   "itb score PATH/TO/sample_logs")


# ---- 7. Ctrl-C ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_logs(tmp_path_factory) -> Path:
    """A cohort made by ``itb make-cohort`` (6 pumps), copied into 12 folders: 72 logs, enough
    that the analysis is still running when Ctrl-C comes."""
    root = tmp_path_factory.mktemp("sigint")
    made = root / "made"
    p = subprocess.run([str(ITB), "make-cohort", "6", "-o", str(made), "--workers", "2"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    logs = root / "logs"
    for i in range(12):
        shutil.copytree(made, logs / f"site{i:02d}", ignore=shutil.ignore_patterns("*.json"))
    return logs


def interrupt_when(args: list[str], marker: str, cwd: Path, delay: float = 0.0) -> tuple[int, str]:
    """Run ``itb ARGS`` in its own session (as a terminal runs a job), wait for ``marker`` on its
    stderr, then send SIGINT to the whole process group, as Ctrl-C in a terminal does (the
    worker processes get it too).  Returns (exit status, stderr)."""
    proc = subprocess.Popen([str(ITB), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    err = b""
    deadline = time.monotonic() + 180
    try:
        while marker.encode() not in err:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"no {marker!r} from itb {args[0]} (stderr so far: {err!r})")
            chunk = proc.stderr.read1(4096)
            if not chunk:
                raise AssertionError(f"itb {args[0]} ended before {marker!r}: {err!r}")
            err += chunk
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        sel.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode, (err + rest).decode(errors="replace")


def test_ctrl_c_during_a_dask_cohort_is_one_line(many_logs, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "results"
    rc, err = interrupt_when(["cohort", str(many_logs), "-o", str(out), "--engine", "dask", "--workers", "2",
                              "--no-plots"], "Dask cluster", tmp_path, delay=0.5)
    lines = err.strip().splitlines()
    assert rc == 130, err
    assert "Traceback" not in err and len(lines) < 3, err
    assert lines[0].startswith("itb cohort: Dask cluster")
    assert lines[-1].startswith("itb cohort: interrupted; ") and " of 72 logs done" in lines[-1], err
    done = int(lines[-1].split("; ")[1].split()[0])
    if done:  # what is done is kept for --resume, and only that
        assert "rerun with --resume" in lines[-1]
        assert listing(out) == ["parts", *sorted(f"parts/{p.name}" for p in (out / "parts").iterdir())]
        assert len(list((out / "parts").iterdir())) == done
    else:
        assert not out.exists()


# ---- 8. output folders that already hold results ------------------------------------------------


def test_make_cohort_into_a_folder_holding_another_cohort(capsys, tmp_path):
    out = tmp_path / "cohort"
    base = ["make-cohort", "2", "--years", "0.05", "-o", str(out)]
    assert main(base) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # the same command again finishes (here: finds finished) the same cohort
    assert main(base) == 0
    assert "0 simulated now, 2 already there" in capsys.readouterr().out
    # another cohort is refused, and the folder is unchanged
    one_line_error(capsys, [*base, "--seed", "1"], f"-o {out}: the folder already holds another cohort",
                   "seed 0", "pass --force to replace them or pick another folder")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    # with --force the old one is removed and replaced, and it says so
    assert main([*base, "--seed", "1"]) == 2
    capsys.readouterr()
    assert main([*base, "--seed", "1", "--force"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("itb make-cohort: --force: removed another cohort (pumps 2, years 0.05, seed 0")
    assert sorted(p.name for p in out.iterdir()) == [
        "cohort_1_000000.itblog", "cohort_1_000001.itblog", "make-cohort.json"]
    # --force on the same cohort simulates it again
    assert main([*base, "--seed", "1", "--force"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("itb make-cohort: --force: removed the same cohort (pumps 2")
    assert "(2 simulated now, 0 already there)" in captured.out


def test_make_cohort_into_a_folder_of_other_logs(capsys, tmp_path):
    out = tmp_path / "logs"
    out.mkdir()
    shutil.copy(DELAYED, out)
    one_line_error(capsys, ["make-cohort", "2", "-o", out],
                   "1 .itblog files that are not from itb make-cohort", "--force")
    assert listing(out) == ["mri_delayed_recovery.itblog"]


def test_make_cohort_grows_the_same_cohort(capsys, tmp_path):
    out = tmp_path / "cohort"
    assert main(["make-cohort", "1", "--years", "0.05", "-o", str(out)]) == 0
    assert main(["make-cohort", "2", "--years", "0.05", "-o", str(out)]) == 0
    assert "(1 simulated now, 1 already there)" in capsys.readouterr().out


@pytest.fixture
def two_logs(tmp_path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    for name in ("mri_delayed_recovery", "titration_violation"):
        shutil.copy(SAMPLES / f"{name}.itblog", d)
    return d


def test_cohort_into_an_old_output_folder(capsys, tmp_path, two_logs):
    out = tmp_path / "results"
    assert main(["cohort", str(two_logs), "-o", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    stale = out / "plots" / "a_figure_of_an_older_version.png"
    stale.write_bytes(b"\x89PNG stale")
    before = listing(out)
    one_line_error(capsys, ["cohort", two_logs, "-o", out, "--workers", "1"],
                   f"-o {out}: the folder already holds a cohort run's results",
                   "manifest.json",
                   "pass --resume to go on with them, --force to replace them, or pick another folder")
    assert listing(out) == before
    # --resume keeps the parts, and replaces the figures: none is left from before
    assert main(["cohort", str(two_logs), "-o", str(out), "--workers", "1", "--resume"]) == 0
    assert "2 resumed" in capsys.readouterr().out
    assert not stale.exists() and (out / "plots").is_dir()
    # --force says what it replaced and starts again; --no-plots leaves no old figures behind
    assert main(["cohort", str(two_logs), "-o", str(out), "--workers", "1", "--force", "--no-plots"]) == 0
    captured = capsys.readouterr()
    removed = f"itb cohort: --force: removed the earlier results in {out} (manifest.json"
    assert captured.err.startswith(removed)
    assert "(2 run now, 0 resumed)" in captured.out
    assert not (out / "plots").exists()


def test_cohort_resume_and_force_together_is_a_usage_error(capsys, tmp_path, two_logs):
    with pytest.raises(SystemExit) as exc:
        main(["cohort", str(two_logs), "-o", str(tmp_path / "r"), "--resume", "--force"])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("itb cohort: error: argument --force: not allowed with argument --resume")


# ---- other outputs checked before the work ------------------------------------------------------


def test_decode_output_folder_missing(capsys, tmp_path):
    out = tmp_path / "no" / "d.csv"
    one_line_error(capsys, ["decode", DELAYED, "--events", "-o", out], f"-o {out}: the folder")
    assert listing(tmp_path) == []


def test_report_output_folder_missing(capsys, tmp_path):
    out = tmp_path / "no" / "r.pdf"
    one_line_error(capsys, ["report", DELAYED, "-o", out],
                   f"-o {out}: the folder {tmp_path / 'no'} does not exist")


def test_interrogate_bad_urls(capsys, tmp_path, png):
    out = tmp_path / "o.itblog"
    one_line_error(capsys, ["interrogate", "sim://?colour=red", "-o", out], "sim://?colour=red",
                   "unknown sim:// options: colour")
    one_line_error(capsys, ["interrogate", f"file://{png}", "-o", out], f"{png}: byte 0:")
    one_line_error(capsys, ["interrogate", "pump7", "-o", out], "'pump7' is not a URL")
    one_line_error(capsys, ["interrogate", "sim://?model=20", "-o", out, "--capture", tmp_path / "c.cap"],
                   "--capture records the bytes of a link")
    assert listing(tmp_path) == ["some.png"]


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["make-cohort", "two", "-o", "x"])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == ("itb make-cohort: error: argument pumps: invalid int value: 'two' "
                    "(see itb make-cohort --help)")


def test_check_json_source_matches_the_file(capsys):
    assert main([str(a) for a in [*CHECK, "--json"]]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == {
        "file": str(DELAYED),
        "sha256": hashlib.sha256(DELAYED.read_bytes()).hexdigest(),
        "pump_serial": "NGP410003",
    }
