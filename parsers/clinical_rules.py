"""The clinical and device numbers, read from one TOML file (``clinical_rules.toml``).

Kept at the bottom layer so the programmer's checks, the simulator and the analysis read
the same numbers.  A hospital overrides them without editing code: set the environment
variable ``ITB_CLINICAL_RULES`` to its own copy of the file (or pass ``path``).  An override
file may only hold sections and keys the default file has (a misspelled key would otherwise
be ignored silently and the default used), with values of the same kind.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_RULES = Path(__file__).with_name("clinical_rules.toml")
ENV_VAR = "ITB_CLINICAL_RULES"


class RulesError(ValueError):
    """A clinical rules file that cannot be used; the message (one line) names the file."""


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _hint(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def validate_rules(override: Mapping[str, Any], source: str, base: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`RulesError` naming ``source`` and the entry when ``override`` has a section
    or key that ``base`` (default: the bundled rules) does not, or a value of another kind
    (a string where the default has a number, say).  Tables inside a key (such as
    ``refill_discrepancy_ml = { "20" = 1.0 }``) may hold any keys."""
    base = _load(str(DEFAULT_RULES)) if base is None else base
    for section, values in override.items():
        if section not in base:
            raise RulesError(f"{source}: unknown section [{section}]{_hint(section, base)}; "
                             f"the sections are those of {DEFAULT_RULES.name} (docs/clinical-rules.md)")
        known = base[section]
        if not isinstance(known, Mapping):
            if _kind(values) != _kind(known):
                raise RulesError(f"{source}: {section} must be {_kind(known)}, not {values!r}")
            continue
        if not isinstance(values, Mapping):
            raise RulesError(f"{source}: {section} must be a [{section}] section, not {values!r}")
        for key, value in values.items():
            if key not in known:
                raise RulesError(f"{source}: unknown key [{section}] {key}{_hint(key, known)}; "
                                 f"the keys are those of {DEFAULT_RULES.name} (docs/clinical-rules.md)")
            if _kind(value) != _kind(known[key]):
                raise RulesError(f"{source}: [{section}] {key} must be {_kind(known[key])}, "
                                 f"not {value!r}")


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """The rules as nested dicts: ``path``, else ``$ITB_CLINICAL_RULES``, else the default.

    A hospital file need only hold the values it changes; the rest come from the default.
    Raises :class:`RulesError` (a ValueError) for a file that cannot be read, is not TOML, or
    holds an unknown section or key.
    """
    base = _load(str(DEFAULT_RULES))
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        return base
    source = str(chosen) if path else f"{ENV_VAR}={chosen}"
    try:
        override = _load(str(chosen))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read clinical rules {source}: {exc}") from exc
    validate_rules(override, source, base)
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in override.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged
