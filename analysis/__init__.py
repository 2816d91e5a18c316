"""Delivery analysis for implanted intrathecal baclofen (ITB) pumps.

``analyse(log, procedures=..., weight_kg=..., rules=...)`` reconstructs what was prescribed,
commanded and rotor-confirmed from an :class:`parsers.InterrogationLog`, runs the detectors,
and grades withdrawal and overdose risk with the guideline's actions.  It reads only the
tables and dataclasses ``parsers`` produces.  It supports, and does not replace, the
manufacturer's clinician programmer and clinical judgement.
"""

from clinical.rules import Rules, get_rules

from .assessment import DISCLAIMER, TELEMETRY_BLIND_SPOTS, Assessment, analyse
from .context import Procedure
from .findings import FINDING_KINDS, Finding, FindingDetails, findings_frame
from .pk import PkParameters, csf_estimate
from .reconstruct import reconstruct
from .risk import LEVELS, Action, Risk

__all__ = [
    "DISCLAIMER", "FINDING_KINDS", "LEVELS", "TELEMETRY_BLIND_SPOTS", "Action", "Assessment",
    "Finding", "FindingDetails", "PkParameters", "Procedure", "Risk", "Rules", "analyse", "csf_estimate",
    "findings_frame", "get_rules", "reconstruct",
]
