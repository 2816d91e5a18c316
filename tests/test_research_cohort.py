"""``itb cohort`` and ``analysis.research.cohort`` on a small generated cohort: outputs, an unreadable
file listed and skipped, resume, procedures, bad arguments, and the Dask engine giving the
same tables as the local one."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, SAMPLES

from analysis.research import cohort
from analysis.research import tables as history_tables
from itb_device.cli import main
from itb_device.sim.population import CohortSpec, cohort_scenarios, write_pump
from parsers import read_log

PUMPS = 6


@pytest.fixture(scope="module")
def logs_dir(tmp_path_factory) -> Path:
    """Six synthetic 60-day pumps with truth files, a damaged sample, a copy of an MRI sample
    (no truth beside it) and one file that is not a log."""
    d = tmp_path_factory.mktemp("cohort_logs")
    for sc in cohort_scenarios(CohortSpec(pumps=PUMPS, years=60 / 365, seed=5)):
        write_pump(sc, d, truth=True)
    sub = d / "clinic"
    sub.mkdir()
    shutil.copy(SAMPLES / "corrupted_log.itblog", sub / "corrupted_log.itblog")
    shutil.copy(SAMPLES / "mri_delayed_recovery.itblog", sub / "mri_delayed_recovery.itblog")
    (d / "not_a_log.itblog").write_bytes(b"this is a text file, not an interrogation log\n" * 10)
    return d


@pytest.fixture(scope="module")
def procedures_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("procs") / "procedures.csv"
    p.write_text("log,kind,start_utc,end_utc\n"
                 "mri_delayed_recovery,MRI,2026-03-10T14:00:00Z,2026-03-10T15:00:00Z\n")
    return p


@pytest.fixture(scope="module")
def local_run(logs_dir, procedures_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("out_local")
    err = io.StringIO()
    run = cohort.run_cohort([logs_dir], out, workers=2, procedures=procedures_csv, truth_sidecar=True,
                            stream=err)
    return out, run, err.getvalue()


def sort(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns[:3])).reset_index(drop=True)


def test_cli_runs_the_cohort_and_lists_the_unreadable_file(logs_dir, procedures_csv, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["cohort", str(logs_dir / "clinic"), str(logs_dir / "not_a_log.itblog"), "-o", str(out),
               "--workers", "2", "--procedures", str(procedures_csv), "--no-plots"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "not_a_log.itblog" in captured.err and "not an ITB interrogation log" in captured.err
    assert "3 logs" in captured.out and "1 could not be read" in captured.out
    with open(out / "failures.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in rows] == ["not_a_log.itblog"]
    assert rows[0]["stage"] == "read" and "not an ITB interrogation log" in rows[0]["reason"]
    for name in history_tables.TABLES:
        assert list((out / "parquet" / name).glob("*.parquet")), name
        assert (out / "csv" / f"{name}.csv").is_file()
    assert not (out / "plots").exists()
    summary = pd.read_csv(out / "csv" / "summary.csv")
    assert summary["log_id"].tolist() == ["corrupted_log.itblog", "mri_delayed_recovery.itblog"]
    assert summary["interrogated_utc"].str.endswith("Z").all()
    stalls = pd.read_csv(out / "csv" / "stalls.csv")
    assert stalls["cause"].tolist() == ["procedure"]


def test_outputs_hold_every_readable_log(local_run, logs_dir):
    out, run, err = local_run
    assert run.logs == PUMPS + 3 and run.processed == PUMPS + 3 and run.resumed == 0
    assert [Path(f.path).name for f in run.failures] == ["not_a_log.itblog"]
    assert "not_a_log.itblog" in err and "\r" not in err  # no progress line when not a terminal
    t = cohort.read_tables(out)
    s = t["summary"]
    assert len(s) == PUMPS + 2 and s["log_id"].is_unique
    assert {"clinic/corrupted_log.itblog", "clinic/mri_delayed_recovery.itblog"} <= set(s["log_id"])
    damaged = s.set_index("log_id").loc["clinic/corrupted_log.itblog"]
    assert damaged["problems"] > 0 and damaged["damaged"]
    for name, df in t.items():
        lead = ["log_id"] if name == "summary" else ["log_id", "serial"]
        assert list(df.columns) == lead + list(history_tables.SCHEMAS[name]), name
        for col, dtype in history_tables.SCHEMAS[name].items():
            assert str(df[col].dtype) == dtype, (name, col)
        assert set(df["log_id"]) <= set(s["log_id"])
    assert run.rows == {n: len(df) for n, df in t.items()}
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "refill_discrepancy.png", "stall_durations.png", "titration_steps.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["logs"] == PUMPS + 3 and manifest["failures"] == 1 and manifest["engine"] == "local"


def test_combined_tables_equal_the_per_log_tables(local_run, logs_dir):
    out, _, _ = local_run
    t = cohort.read_tables(out)
    name = "cohort_5_000002.itblog"
    procs = json.loads((logs_dir / "cohort_5_000002.truth.json").read_text())["procedures"]
    direct = history_tables.tables(read_log(logs_dir / name), procs)
    for table, df in direct.items():
        got = t[table][t[table]["log_id"] == name].drop(columns=["log_id"] + (["serial"] if table != "summary"
                                                                               else []))
        pd.testing.assert_frame_equal(got.reset_index(drop=True), df)


def test_procedures_set_the_stall_cause(local_run):
    out, _, _ = local_run
    st = cohort.read_tables(out, ["stalls"])["stalls"]
    mri = st[st["log_id"] == "clinic/mri_delayed_recovery.itblog"]
    assert mri["cause"].tolist() == ["procedure"] and mri["procedure_kind"].tolist() == ["mri"]
    assert mri["ongoing"].tolist() == [True]


def test_resume_skips_finished_logs(local_run, logs_dir, tmp_path):
    src, _, _ = local_run
    out = tmp_path / "resumed"
    shutil.copytree(src, out)
    parts = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    assert len(parts) == PUMPS + 2
    run = cohort.run_cohort([logs_dir], out, workers=1, resume=True, procedures=None, truth_sidecar=True,
                            stream=io.StringIO())
    # the procedures differ for the MRI copy: only it (and the unreadable file) are done again
    assert run.resumed == PUMPS + 1 and run.processed == 2
    again = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    assert {k: v for k, v in again.items() if k in parts} == parts
    # a log that changes on disk is done again; the others are not
    victim = logs_dir / "cohort_5_000001.itblog"
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        run2 = cohort.run_cohort([logs_dir], out, workers=1, resume=True, truth_sidecar=True,
                                 stream=io.StringIO())
    finally:
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run2.processed == 2 and run2.resumed == PUMPS + 1
    assert len(cohort.read_tables(out, ["summary"])["summary"]) == PUMPS + 2
    # without --resume everything is done again
    run3 = cohort.run_cohort([logs_dir], out, workers=2, truth_sidecar=True, stream=io.StringIO(),
                             make_plots=False)
    assert run3.processed == PUMPS + 3 and run3.resumed == 0
    # a damaged result file is reported, removed, and done again by the next resumed run
    part = next(p for p in (out / "parts").iterdir() if p.name.startswith("cohort_5_000003-"))
    part.write_bytes(b"not a zip")
    run4 = cohort.run_cohort([logs_dir], out, workers=1, resume=True, truth_sidecar=True,
                             stream=io.StringIO(), make_plots=False)
    bad = [f for f in run4.failures if f.stage == "combine"]
    assert [Path(f.path).name for f in bad] == ["cohort_5_000003.itblog"] and not part.exists()
    run5 = cohort.run_cohort([logs_dir], out, workers=1, resume=True, truth_sidecar=True,
                             stream=io.StringIO(), make_plots=False)
    assert run5.processed == 2 and run5.combined == PUMPS + 2


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
    (["--procedures", "/no/such/procedures.csv"], "cannot read procedures"),
])
def test_bad_arguments_exit_2(logs_dir, tmp_path, capsys, args, message):
    assert main(["cohort", str(logs_dir), "-o", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err


def test_no_logs_at_all_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = ["cohort", str(tmp_path / "empty"), str(tmp_path / "missing"), "-o", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no logs to analyse" in err and "missing: no such file or directory" in err


def test_a_missing_path_among_good_ones_is_a_failure_not_an_error(logs_dir, tmp_path):
    run = cohort.run_cohort([logs_dir / "clinic", tmp_path / "nope.itblog"], tmp_path / "o", workers=1,
                            make_plots=False, stream=io.StringIO())
    assert run.combined == 2
    assert [(Path(f.path).name, f.stage) for f in run.failures] == [("nope.itblog", "discover")]


def test_progress_line_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        p = cohort.Progress(3, stream)
        ok = cohort.TaskResult("a", "a", "a.zip", True)
        bad = cohort.TaskResult("b.itblog", "b", "b.zip", False, "byte 0: not a log", "read")
        p.update(ok)
        p.update(bad)
        p.update(ok)
        p.close()
    assert quiet.getvalue() == "itb cohort: cannot read b.itblog: byte 0: not a log\n"
    assert "3/3 logs, 1 failed" in tty.getvalue() and "logs/s" in tty.getvalue()
    assert "cannot read b.itblog" in tty.getvalue()


def test_chunks_amortise_the_pool():
    assert cohort.chunk_size(1, 2) == 1
    assert cohort.chunk_size(100, 2) == 3
    assert cohort.chunk_size(100_000, 2) == 16


@pytest.mark.parametrize("n", [0, 1, 7, 100, 1000])
def test_the_last_chunks_are_small_so_the_workers_finish_together(n):
    tasks = [cohort.LogTask(f"{i}.itblog", f"{i}", f"{i}.zip") for i in range(n)]
    parts = cohort.chunks(tasks, 2)
    assert [t for c in parts for t in c] == tasks and all(parts)
    size = cohort.chunk_size(n, 2)
    assert max(map(len, parts), default=0) <= size
    if n >= 100:  # the last two rounds of the two workers in quarter-size chunks
        assert [len(c) for c in parts[-4:]] == [max(1, size // 4)] * 4


def test_dask_engine_gives_the_same_tables_as_the_local_engine(local_run, logs_dir, procedures_csv, tmp_path):
    """``itb cohort --engine dask`` on a 2-worker LocalCluster, in a subprocess (so no Dask
    threads stay behind in the test process), against the local engine's tables."""
    pytest.importorskip("distributed")
    src, _, _ = local_run
    out = tmp_path / "dask"
    proc = subprocess.run(
        [sys.executable, "-m", "itb_device.cli", "cohort", str(logs_dir), "-o", str(out), "--engine", "dask",
         "--workers", "2", "--procedures", str(procedures_csv), "--procedures-from-truth", "--no-plots"],
        capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Dask cluster" in proc.stderr and "with 2 workers" in proc.stderr
    assert "not_a_log.itblog" in proc.stderr and "INFO" not in proc.stderr
    with open(out / "failures.csv", newline="") as f:
        assert [Path(r["path"]).name for r in csv.DictReader(f)] == ["not_a_log.itblog"]
    local, remote = cohort.read_tables(src), cohort.read_tables(out)
    for name in history_tables.TABLES:
        assert len(local[name]) == len(remote[name]) > 0, name
        pd.testing.assert_frame_equal(sort(local[name]), sort(remote[name]))
    assert json.loads((out / "manifest.json").read_text())["engine"] == "dask"
