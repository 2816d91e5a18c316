"""What every test shares: the repository's paths and the shipped clinical rules.

Tests import the paths from here (``from conftest import ROOT, SAMPLES``; pytest puts this
folder on ``sys.path``).  Every test runs with the shipped rules file, whatever the developer's
environment says (``ITB_CLINICAL_RULES``); a test that needs a hospital's file sets it itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical.rules import ENV_VAR

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_logs"
GUIDELINE = ROOT.parent / "shared" / "guideline" / "chw-itb-practice-guideline.txt"


@pytest.fixture(autouse=True)
def _own_page_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Interrogations over a link keep the pumps' pages in a folder of the test's own
    (``itb_device.pagecache``), never in the developer's, and no test sees another's."""
    monkeypatch.setenv("ITB_PUMP_CACHE", str(tmp_path_factory.mktemp("pump-cache")))


@pytest.fixture(autouse=True)
def _shipped_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped rules file, whatever the environment says."""
    monkeypatch.delenv(ENV_VAR, raising=False)


def write_hostile_log(path: Path) -> Path:
    """mri_prompt_recovery with markup in its serial, firmware and drug name, and a control
    character in the drug name.  The writer refuses control characters in text fields, so the
    byte is forged afterwards, as a damaged or hand-made file would hold it, with the status CRC
    made good (docs/log-format.md 4)."""
    import dataclasses

    from parsers import read_log, write_log
    from parsers.crc import crc32c

    img = read_log(SAMPLES / "mri_prompt_recovery.itblog").to_image()
    img = dataclasses.replace(
        img,
        header=dataclasses.replace(img.header, serial="<script>x</scr", firmware='"><b>$x^2$'),
        status=dataclasses.replace(img.status, drug_name="<img src=x>&Z"),
    )
    write_log(path, img)
    data = bytearray(path.read_bytes())
    at = data.index(b"<img src=x>&Z") + 12
    data[at] = 0x01
    data[380:384] = crc32c(bytes(data[128:380])).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path
