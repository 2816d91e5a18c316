"""The clinical and device numbers the analysis uses, read from ``parsers/clinical_rules.toml``.

No clinical number lives in the analysis code: every threshold is looked up here by section
and key.  A hospital changes them without editing code, by passing its own TOML file (only
the values it changes), a dict of overrides, or by setting ``ITB_CLINICAL_RULES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsers.clinical_rules import load_rules


@dataclass(frozen=True)
class Rules:
    """Read-only view of the rules file with clear errors for missing values."""

    data: Mapping[str, Any]
    source: str = "default"

    def get(self, section: str, key: str) -> Any:
        """The value ``[section] key``; a missing one raises a KeyError naming both."""
        try:
            return self.data[section][key]
        except KeyError:
            raise KeyError(f"clinical rule [{section}] {key} is missing from {self.source}; "
                           "add it to the rules file (see docs/clinical-rules.md)") from None

    def number(self, section: str, key: str) -> float:
        """A numeric rule as float."""
        return float(self.get(section, key))

    def refill_discrepancy_ml(self, model_ml: int) -> float:
        """Consequential refill discrepancy for a pump model (the larger model's if unknown)."""
        table = self.get("pump", "refill_discrepancy_ml")
        if str(model_ml) in table:
            return float(table[str(model_ml)])
        return float(max(float(v) for v in table.values()))


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def get_rules(rules: Rules | Mapping[str, Any] | str | Path | None = None) -> Rules:
    """Rules from: a :class:`Rules` (as is), a path to a TOML file (merged over the default),
    a dict of overrides (merged over the default or ``$ITB_CLINICAL_RULES``), or None."""
    if isinstance(rules, Rules):
        return rules
    if rules is None:
        return Rules(load_rules(), "parsers/clinical_rules.toml")
    if isinstance(rules, str | Path):
        return Rules(load_rules(rules), str(rules))
    if isinstance(rules, Mapping):
        return Rules(_deep_merge(load_rules(), rules), "overrides")
    raise TypeError(f"rules must be a Rules, a mapping, a path or None, not {type(rules).__name__}")
