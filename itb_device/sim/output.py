"""Write a scenario run: the ``.itblog`` (optionally damaged on purpose) and its truth JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parsers import format as fmt
from parsers.writer import atomic_write_bytes, encode_log

from .scenario import ScenarioError, ScenarioResult
from .truth import build_truth


def damage(data: bytes, spec: dict[str, Any], where: str = "[corrupt]") -> bytes:
    """Apply a scenario's ``[corrupt]`` section: ``flip = [[page, byte_in_page], ...]`` flips
    one byte's bits in the n-th stored page; ``truncate_bytes = N`` cuts N bytes off the end.
    Used to make the damaged sample logs deterministic."""
    buf = bytearray(data)
    header = fmt.HEADER_SIZE + fmt.STATUS_SIZE
    page_size = int.from_bytes(buf[14:16], "little")
    for page, byte in spec.get("flip", []):
        pos = header + int(page) * page_size + int(byte)
        if not header <= pos < len(buf):
            raise ScenarioError(f"{where}: flip [{page}, {byte}] is outside the log")
        buf[pos] ^= 0xFF
    cut = int(spec.get("truncate_bytes", 0))
    if cut:
        del buf[-cut:]
    return bytes(buf)


def write_outputs(
    result: ScenarioResult, log_path: str | Path, truth_path: str | Path | None = None
) -> dict[str, Any]:
    """Write the log (and truth); returns the truth document."""
    data = encode_log(result.image)
    spec = result.scenario.data.get("corrupt")
    truth = build_truth(result, result.pump.rules)
    if spec:
        data = damage(data, spec)
        if "history_gap" not in {f["kind"] for f in truth["expected_findings"]}:
            truth["expected_findings"].append({"kind": "history_gap", "start_utc": None, "end_utc": None})
    atomic_write_bytes(log_path, [data])
    if truth_path is not None:
        text = json.dumps(truth, indent=1, sort_keys=False) + "\n"
        atomic_write_bytes(truth_path, [text.encode()])
    return truth
