"""The clinical and device numbers, read from one TOML file (``clinical_rules.toml``).

Kept at the bottom layer so the programmer's checks, the simulator and the analysis read
the same numbers.  A hospital overrides them without editing code: set the environment
variable ``ITB_CLINICAL_RULES`` to its own copy of the file (or pass ``path``).
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_RULES = Path(__file__).with_name("clinical_rules.toml")
ENV_VAR = "ITB_CLINICAL_RULES"


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """The rules as nested dicts: ``path``, else ``$ITB_CLINICAL_RULES``, else the default.

    A hospital file need only hold the values it changes; the rest come from the default.
    """
    base = _load(str(DEFAULT_RULES))
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        return base
    try:
        override = _load(str(chosen))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read clinical rules {chosen}: {exc}") from exc
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in override.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged
