"""Detectors: each takes a :class:`~analysis.context.Context` and returns findings.

``ALL`` lists them in the order their findings are reported.
"""

from __future__ import annotations

from collections.abc import Callable

from ..context import Context
from ..findings import Finding
from . import boluses, device, gaps, overdelivery, prescription, reservoir, stalls

Detector = Callable[[Context], list[Finding]]

ALL: tuple[Detector, ...] = (
    gaps.detect,
    stalls.detect,
    device.detect,
    reservoir.detect,
    overdelivery.detect,
    prescription.detect,
    boluses.detect,
)

__all__ = ["ALL", "Detector"]
