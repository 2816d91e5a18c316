"""The committed sample logs are exactly what their scenarios produce, and all of them decode."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from conftest import SAMPLES

from itb_device.sim.output import damage, write_outputs
from itb_device.sim.scenario import load_scenario, run_scenario
from itb_device.sim.truth import build_truth
from parsers import read_log
from parsers.writer import encode_log

SCENARIOS = sorted((SAMPLES / "scenarios").glob("*.toml"))
NAMES = [p.stem for p in SCENARIOS]


def test_there_are_samples():
    assert len(NAMES) >= 16
    assert "normal_year" in NAMES and "corrupted_log" in NAMES


def test_every_log_and_truth_has_a_scenario():
    logs = {p.name.removesuffix(".itblog") for p in SAMPLES.glob("*.itblog")}
    truths = {p.name.removesuffix(".truth.json") for p in SAMPLES.glob("*.truth.json")}
    assert logs == truths == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_regenerated_byte_for_byte(name, tmp_path):
    result = run_scenario(load_scenario(SAMPLES / "scenarios" / f"{name}.toml"))
    committed = (SAMPLES / f"{name}.itblog").read_bytes()
    data = encode_log(result.image)
    spec = result.scenario.data.get("corrupt")
    if spec:
        data = damage(data, spec)
    assert data == committed
    # the truth: the same document, and the same text write_outputs writes
    truth = write_outputs(result, tmp_path / "s.itblog", tmp_path / "s.truth.json")
    assert (tmp_path / "s.itblog").read_bytes() == committed
    assert (tmp_path / "s.truth.json").read_text() == (SAMPLES / f"{name}.truth.json").read_text()
    doc = json.loads((SAMPLES / f"{name}.truth.json").read_text())
    assert doc == truth
    rebuilt = build_truth(result, result.pump.rules)
    if spec:
        rebuilt["expected_findings"].append({"kind": "history_gap", "start_utc": None,
                                             "end_utc": None})
    assert rebuilt == doc
    assert (doc["scenario"], doc["seed"]) == (name, result.scenario.seed)


@pytest.mark.parametrize("name", NAMES)
def test_sample_decodes(name):
    log = read_log(SAMPLES / f"{name}.itblog")
    scenario = tomllib.loads((SAMPLES / "scenarios" / f"{name}.toml").read_text())
    assert log.header.serial == scenario["pump"]["serial"]
    assert len(log.delivery) > 0
    truth = json.loads((SAMPLES / f"{name}.truth.json").read_text())
    assert log.header.interrogated_at.isoformat().replace("+00:00", "Z") == \
        truth["interrogated_at_utc"]
    if "corrupt" in scenario:
        assert log.damaged
        kinds = {p.kind for p in log.problems if p.severity == "error"}
        cut = {"truncated"} if scenario["corrupt"].get("truncate_bytes") else set()
        want = {"bad_page_crc", "page_gap"} | cut
        assert want <= kinds
        assert len(log.gaps) >= 1
        assert all(p.offset is not None for p in log.problems)
    else:
        assert not log.damaged, [str(p) for p in log.problems]
        assert log.gaps.empty


def test_readme_lists_every_sample_with_its_description():
    text = (SAMPLES / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([\w-]+)\.itblog` \| (.+?) \|$", text, flags=re.M))
    assert sorted(rows) == NAMES
    for path in SCENARIOS:
        assert rows[path.stem] == tomllib.loads(path.read_text())["description"]
