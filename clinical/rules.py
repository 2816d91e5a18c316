"""The clinical rules: every clinical and device number, read from one TOML file.

One loader for everyone (the analysis, the programmer's checks, the simulator, the
calculators): :func:`get_rules`.  The default file is ``clinical/clinical_rules.toml``
(:data:`DEFAULT_RULES`); a hospital overrides it without editing code, with a file holding
only the values it changes, given as ``--rules`` / ``rules=`` or in the environment variable
named by :data:`ENV_VAR`.  The hospital's values are merged over the defaults at every depth
(overriding ``refill_discrepancy_ml."20"`` keeps the default for ``"40"``), and any section,
key or table entry the default file does not have, or a value of another kind, is a
:class:`RulesError` naming the file and the key: a misspelled key is never ignored silently.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

DEFAULT_RULES = Path(__file__).with_name("clinical_rules.toml")
ENV_VAR = "ITB_CLINICAL_RULES"
DEFAULT_LABEL = f"{DEFAULT_RULES.parent.name}/{DEFAULT_RULES.name}"  # as the rules' source says
DOCS = "docs/clinical-rules.md"


class RulesError(ValueError):
    """A clinical rules file (or override) that cannot be used; the message (one line) names
    the file and the section or key."""


class MissingRuleError(RulesError, KeyError):
    """A rule the software needs that the rules do not hold (names the section, key and file)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InputError(ValueError):
    """A value given to a clinical calculation that it cannot use (not a rules problem).

    ``field`` names the argument (``weight_kg``, ``age_years`` ...) so that a command line can
    name its own option; the message says what is wrong and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# ----- reading and merging -------------------------------------------------------------------

@lru_cache(maxsize=16)
def _read(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base`` at every depth: a table in both is merged key by key, anything
    else in ``override`` replaces the value in ``base``.  Neither argument is changed."""
    out: dict[str, Any] = _copy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = _copy(value)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _hint(name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _label(where: tuple[str, ...], key: str) -> str:
    """``[section] key`` (``[section] key.entry`` inside a table)."""
    return f"[{where[0]}] {'.'.join((*where[1:], str(key)))}"


def validate_rules(override: Mapping[str, Any], source: str, base: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`RulesError` naming ``source`` and the entry when ``override`` has a section,
    key or table entry that ``base`` (default: the bundled rules) does not, or a value of
    another kind (a string where the default has a number, a list of strings for a list of
    numbers)."""
    _validate(override, _read(str(DEFAULT_RULES)) if base is None else base, source, ())


def _validate(over: Mapping[str, Any], base: Mapping[str, Any], source: str, where: tuple[str, ...]) -> None:
    for key, value in over.items():
        if key not in base:
            what, name = ("key", _label(where, key)) if where else ("section", f"[{key}]")
            raise RulesError(f"{source}: unknown {what} {name}{_hint(key, base)}; the {what}s are "
                             f"those of {DEFAULT_RULES.name} ({DOCS})")
        known = base[key]
        if isinstance(known, Mapping):
            if not isinstance(value, Mapping):
                shape = f"a [{key}] section" if not where else "a table"
                name = key if not where else _label(where, key)
                raise RulesError(f"{source}: {name} must be {shape}, not {value!r}")
            _validate(value, known, source, (*where, key))
            continue
        name = key if not where else _label(where, key)
        if _kind(value) != _kind(known):
            raise RulesError(f"{source}: {name} must be {_kind(known)}, not {value!r}")
        if isinstance(known, list | tuple) and known and isinstance(value, list | tuple):
            kinds = {_kind(v) for v in known}
            if len(kinds) == 1 and any(_kind(v) not in kinds for v in value):
                raise RulesError(f"{source}: {name} must be a list of {kinds.pop()[2:]}s, not {value!r}")


# ----- the rules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """Read-only view of the merged rules, with errors that name the section, key and file.

    ``rules["pump"]["min_rate_ml_day"]`` and ``rules.get("pump", "min_rate_ml_day")`` read a
    value; :meth:`number`, :meth:`numbers` and :meth:`range` read it typed."""

    data: Mapping[str, Any]
    source: str = DEFAULT_LABEL

    def _missing(self, what: str) -> MissingRuleError:
        return MissingRuleError(f"clinical rule {what} is missing from {self.source}; add it to the "
                                f"rules file (see {DOCS})")

    def __getitem__(self, section: str) -> Mapping[str, Any]:
        try:
            return self.data[section]
        except KeyError:
            raise self._missing(f"section [{section}]") from None

    def __contains__(self, section: object) -> bool:
        return section in self.data

    def get(self, section: str, key: str) -> Any:
        """The value ``[section] key``; a missing one raises an error naming both and the file."""
        try:
            return self.data[section][key]
        except (KeyError, TypeError):
            raise self._missing(f"[{section}] {key}") from None

    def number(self, section: str, key: str) -> float:
        """A numeric rule as float."""
        return float(self.get(section, key))

    def numbers(self, section: str, key: str) -> tuple[float, ...]:
        """A list of numbers as floats."""
        return tuple(float(x) for x in self.get(section, key))

    def range(self, section: str, key: str) -> tuple[float, float]:
        """A ``[low, high]`` rule (a one-number list is that number for both)."""
        values = self.numbers(section, key)
        if not values:
            raise RulesError(f"{self.source}: [{section}] {key} must be [low, high], not []")
        return min(values), max(values)

    def refill_discrepancy_ml(self, model_ml: int) -> float:
        """Consequential refill discrepancy for a pump model (the larger model's if unknown)."""
        table = self.get("pump", "refill_discrepancy_ml")
        if str(model_ml) in table:
            return float(table[str(model_ml)])
        return float(max(float(v) for v in table.values()))

    def check_weight(self, weight_kg: float) -> float:
        """``weight_kg`` if it is a plausible weight (``[patient] weight_kg_range``); otherwise an
        :class:`InputError` for ``weight_kg`` (a typing or unit slip must not reach a dose)."""
        if not (math.isfinite(weight_kg) and weight_kg > 0):
            raise InputError("weight_kg", f"weight must be positive, not {weight_kg:g}")
        lo, hi = self.range("patient", "weight_kg_range")
        if not lo <= weight_kg <= hi:
            raise InputError("weight_kg", f"{weight_kg:g} kg is not a plausible weight (the rules accept "
                                          f"{lo:g}-{hi:g} kg, [patient] weight_kg_range): check the weight "
                                          "and its unit")
        return float(weight_kg)


@lru_cache(maxsize=16)
def _load(path: str | None, from_env: bool) -> Rules:
    base = _read(str(DEFAULT_RULES))
    if path is None:
        return Rules(_copy(base), DEFAULT_LABEL)
    source = f"{ENV_VAR}={path}" if from_env else path
    try:
        override = _read(path)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read clinical rules {source}: {exc}") from exc
    validate_rules(override, source, base)
    return Rules(deep_merge(base, override), source)


# What every function taking rules accepts (see :func:`get_rules`).
RulesLike: TypeAlias = "Rules | Mapping[str, Any] | str | Path | None"


def get_rules(rules: Rules | Mapping[str, Any] | str | Path | None = None) -> Rules:
    """The rules, from: a :class:`Rules` (as is); a path to a hospital's TOML file (merged over
    the default); a dict of overrides (merged over the default or ``$ITB_CLINICAL_RULES``); or
    None (``$ITB_CLINICAL_RULES`` if set, else the default).  Raises :class:`RulesError` (a
    ValueError) for a file that cannot be read, is not TOML, or holds anything the default
    file does not."""
    if isinstance(rules, Rules):
        return rules
    if rules is None:
        chosen = os.environ.get(ENV_VAR) or None
        return _load(chosen, True)
    if isinstance(rules, str | Path):
        return _load(str(rules), False)
    if isinstance(rules, Mapping):
        base = get_rules(None)
        source = f"rules overrides (over {base.source})"
        validate_rules(rules, source, base.data)
        return Rules(deep_merge(base.data, rules), source)
    raise TypeError(f"rules must be a Rules, a mapping, a path or None, not {type(rules).__name__}")
