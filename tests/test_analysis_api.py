"""The public entry point: ``analyse`` on a path or a log, pure and fast, no plotting, and
the sample logs (when present) analysed without errors."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from test_analysis_logbuilder import LogBuilder

import analysis
from analysis import FINDING_KINDS, Assessment, analyse
from parsers import read_log


def test_public_api_names():
    for name in ("analyse", "Assessment", "Finding", "Procedure", "Risk", "reconstruct",
                 "csf_estimate", "get_rules", "DISCLAIMER"):
        assert hasattr(analysis, name)
    assert len(FINDING_KINDS) == 23 and len(set(FINDING_KINDS)) == 23


def test_analyse_a_path_or_a_log_gives_the_same_answer(tmp_path):
    b = LogBuilder()
    b.program(b.t(), 240.0)
    b.stall(b.t(days=1, hours=3), b.t(days=1, hours=9))
    path = b.write(tmp_path / "a.itblog", b.t(days=2))
    before = path.read_bytes()
    a1, a2 = analyse(path), analyse(read_log(path))
    assert isinstance(a1, Assessment)
    assert [f.to_dict() for f in a1.findings] == [f.to_dict() for f in a2.findings]
    assert path.read_bytes() == before
    json.dumps(a1.to_dict())  # serialisable
    assert a1.findings_frame()["kind"].tolist() == ["motor_stall"]
    assert a1.reconstruction.index.tz is not None and len(a1.csf) == len(a1.reconstruction)


def test_analysis_does_not_import_plotting_or_the_device_layer():
    code = ("import sys, analysis, analysis.research.scoring; "
            "print(any(m.startswith(('matplotlib', 'itb_device')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_year_of_hourly_history_is_analysed_whole(tmp_path):
    b = LogBuilder()
    b.program(b.t(), flex=[(0, 240), (420, 300), (1200, 200)])
    for d in (90, 180, 270):
        b.refill(b.t(days=d), 20.0)
    path = b.write(tmp_path / "year.itblog", b.t(days=365))
    log = read_log(path)
    a = analyse(log)  # speed is measured by benchmarks/check.py, not here
    assert len(a.reconstruction) >= 365 * 24
    assert a.kinds() == []


def test_sample_logs_score_with_no_missed_or_false_risk():
    """The scoring on the committed samples: every sample analysed, no withdrawal or
    overdose risk missed (never lower than the truth), none raised on the normal logs, and
    damaged history never read as 'no risk'."""
    from analysis.research.scoring import score_directory
    from analysis.risk import LEVELS

    res = score_directory(ROOT / "sample_logs")
    assert res.summary["errors"] == 0
    assert res.summary["samples"] == len(list((ROOT / "sample_logs").glob("*.truth.json"))) >= 14
    risks = res.risks.set_index("sample")
    for kind in ("withdrawal", "overdose"):
        got = risks[kind].map(LEVELS.index)
        want = risks[f"{kind}_expected"].map(LEVELS.index)
        assert (got >= want).all(), risks[got < want]  # no risk missed or understated
    normal = risks.loc[["normal_year", "clock_reset"]]
    assert (normal[["withdrawal", "overdose"]] == "none").all().all()  # no false risk
    assert (risks.loc["corrupted_log", ["withdrawal", "overdose"]] != "none").all()
    assert res.summary["risk_mismatches"] == 0
    assert res.summary["missed_findings"] == 0
