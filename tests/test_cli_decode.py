"""``itb decode``: summary, status JSON, events and delivery exports, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import logfactory as lf
import pandas as pd
import pytest

from itb_device.cli import main
from parsers import read_log

PS = 256


@pytest.fixture
def log_path(tmp_path) -> Path:
    path = tmp_path / "pump.itblog"
    recs = lf.base_history(n_delivery=30)
    recs.insert(5, lf.unknown(recs[4].clock + 1, code=0x51))
    lf.write_image(path, lf.make_image(recs, status=lf.make_status(active_alarms=("low_reservoir",))))
    return path


@pytest.fixture
def damaged_path(tmp_path, log_path) -> Path:
    data = lf.flip_bit(log_path.read_bytes(), lf.page_offset(2, PS) + 70)
    return lf.write_bytes(tmp_path / "damaged.itblog", data)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["decode", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("itb decode: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, err)


def test_summary(capsys, log_path):
    code, out, err = run(capsys, str(log_path))
    assert code == 0 and err == ""
    assert out.splitlines()[0] == str(log_path)
    assert "20 mL reservoir, serial NGP123456H, firmware 8637-2.1" in out
    assert "pump clock +30 s from UTC" in out
    assert "baclofen 2000 mcg/mL, reservoir 12.50 mL" in out
    assert "alarms low_reservoir" in out
    assert "30 delivery intervals, 9 events, 6 pages" in out
    assert "problems    none found in the file" in out


def test_summary_of_a_damaged_file_lists_problems_on_stderr(capsys, damaged_path):
    code, out, err = run(capsys, str(damaged_path))
    assert code == 0
    at = lf.page_offset(2, PS)
    assert f"itb decode: error: {damaged_path}: byte {at}: page 2" in err
    assert f"byte {lf.page_offset(3, PS)}: pages seq 2..2" in err
    assert "problems    2 errors, 0 warnings (listed above)" in out


def test_status_json(capsys, log_path):
    code, out, err = run(capsys, str(log_path), "--status")
    assert code == 0 and err == ""
    doc = json.loads(out)
    log = read_log(log_path)
    assert doc["file"] == str(log_path)
    assert doc["header"]["serial"] == "NGP123456H" and doc["header"]["clock_drift_s"] == 30
    assert doc["header"]["interrogated_at_utc"] == log.header.interrogated_at.isoformat()
    assert doc["status"]["drug_name"] == "baclofen"
    assert doc["status"]["active_alarms"] == ["low_reservoir"]
    assert doc["header_crc_ok"] is True and doc["status_crc_ok"] is True
    assert doc["records"] == {"events": 9, "delivery": 30, "pages": 6}
    assert doc["problems"] == []
    assert doc["history_utc"][0] == log.events["time_utc"].min().isoformat()


def test_status_json_reports_problems(capsys, damaged_path):
    code, out, _ = run(capsys, str(damaged_path), "--status", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert [(p["kind"], p["offset"]) for p in doc["problems"]] == [
        ("bad_page_crc", lf.page_offset(2, PS)),
        ("page_gap", lf.page_offset(3, PS)),
    ]


@pytest.mark.parametrize("what", ["events", "delivery"])
def test_csv_export(capsys, tmp_path, log_path, what):
    out_file = tmp_path / f"{what}.csv"
    code, out, err = run(capsys, str(log_path), f"--{what}", "--format", "csv", "-o", str(out_file))
    assert (code, out, err) == (0, "", "")
    table = getattr(read_log(log_path), what)
    got = pd.read_csv(out_file)
    assert list(got.columns) == list(table.columns)
    assert len(got) == len(table)
    assert got["time_utc"].tolist() == table["time_utc"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    assert got["pump_clock"].tolist() == table["pump_clock"].tolist()
    assert got["offset"].tolist() == table["offset"].tolist()
    assert sorted(os.listdir(tmp_path)) == sorted(["pump.itblog", f"{what}.csv"])


def test_csv_to_stdout_by_default_when_not_a_terminal(capsys, log_path):
    code, out, _ = run(capsys, str(log_path), "--delivery")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ",".join(read_log(log_path).delivery.columns)
    assert lines[0].startswith("time_utc,")
    assert len(lines) == 31


@pytest.mark.parametrize("what", ["events", "delivery"])
def test_json_export(capsys, tmp_path, log_path, what):
    out_file = tmp_path / f"{what}.json"
    code, _, _ = run(capsys, str(log_path), f"--{what}", "--format", "json", "-o", str(out_file))
    assert code == 0
    rows = json.loads(out_file.read_text())
    table = getattr(read_log(log_path), what)
    assert len(rows) == len(table)
    assert [r["offset"] for r in rows] == table["offset"].tolist()
    assert rows[0]["time_utc"] == table["time_utc"].iloc[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    if what == "events":
        unknown = [r for r in rows if r["event"] == "unknown_0x0051"]
        assert len(unknown) == 1 and unknown[0]["payload_hex"] == bytes(range(24)).hex()


@pytest.mark.parametrize("what", ["events", "delivery"])
def test_parquet_export(capsys, tmp_path, log_path, what):
    pytest.importorskip("pyarrow")
    out_file = tmp_path / f"{what}.parquet"
    code, _, _ = run(capsys, str(log_path), f"--{what}", "--format", "parquet", "-o", str(out_file))
    assert code == 0
    got = pd.read_parquet(out_file)
    table = getattr(read_log(log_path), what)
    pd.testing.assert_frame_equal(got, table, check_dtype=False, check_categorical=False)
    assert got["time_utc"].dt.tz is not None


def test_export_replaces_an_existing_file(capsys, tmp_path, log_path):
    out_file = tmp_path / "events.csv"
    out_file.write_text("stale\n")
    assert run(capsys, str(log_path), "--events", "-o", str(out_file))[0] == 0
    assert out_file.read_text().startswith("time_utc,event,code")


def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.itblog"
    code, out, err = run(capsys, str(missing))
    assert code == 2 and out == ""
    assert_one_line_error(err, str(missing), "cannot open")


def test_not_a_log_file(capsys, tmp_path):
    notes = lf.write_bytes(tmp_path / "notes.txt", b"patient notes, not a log\n" * 20)
    code, out, err = run(capsys, str(notes), "--events")
    assert code == 2 and out == ""
    assert_one_line_error(err, str(notes), "byte 0", "not an ITB interrogation log")


def test_strict_on_a_damaged_file(capsys, tmp_path, damaged_path):
    out_file = tmp_path / "ev.csv"
    code, out, err = run(capsys, str(damaged_path), "--strict", "--events", "-o", str(out_file))
    assert code == 2 and out == ""
    assert_one_line_error(err, str(damaged_path), f"byte {lf.page_offset(2, PS)}", "fails its CRC-32C")
    assert not out_file.exists()
    assert run(capsys, str(damaged_path), "--events", "-o", str(out_file))[0] == 0


def test_strict_on_a_clean_file(capsys, log_path):
    code, out, err = run(capsys, str(log_path), "--strict")
    assert code == 0 and err == "" and "problems    none found" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--events", "--format", "parquet"], "--format parquet needs -o FILE"),
        (["--status", "--format", "csv"], "print as table or json, not csv"),
    ],
)
def test_bad_option_combinations(capsys, log_path, args, fragment):
    code, out, err = run(capsys, str(log_path), *args)
    assert code == 2 and out == ""
    assert_one_line_error(err, fragment)


def _itb_script() -> Path:
    script = Path(sys.executable).with_name("itb")
    assert script.exists(), f"the itb console script is not installed next to {sys.executable}"
    return script


def test_console_script_in_a_real_process(tmp_path, log_path):
    itb = _itb_script()
    ok = subprocess.run(
        [str(itb), "decode", str(log_path), "--delivery", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""
    assert len(json.loads(ok.stdout)) == 30
    bad = subprocess.run(
        [str(itb), "decode", str(tmp_path / "missing.itblog")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert_one_line_error(bad.stderr, "missing.itblog", "cannot open")
