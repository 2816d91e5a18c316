"""Clinical knowledge used by itb-telemetry: the guideline's and the pump labelling's numbers
(``clinical_rules.toml``, read by :mod:`clinical.rules`) and the judgements built only on them
(:mod:`clinical.titration`: is a change of the daily dose within the guideline?).

It sits below the analysis, the programmer and the simulator, which all import it; it imports
none of them (nor ``parsers``: the rules are clinical knowledge, not part of the log format).
It supports, and does not replace, clinical judgement.
"""

from .rules import DEFAULT_LABEL, DEFAULT_RULES, ENV_VAR, Rules, RulesError, get_rules, validate_rules

__all__ = ["DEFAULT_LABEL", "DEFAULT_RULES", "ENV_VAR", "Rules", "RulesError", "get_rules", "validate_rules"]
