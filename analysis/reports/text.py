"""Text hygiene shared by the renderers."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(s: object) -> str:
    """``s`` as text with control characters (which neither PDF fonts nor HTML can show)
    replaced by U+FFFD; tabs become spaces, newlines stay."""
    return _CONTROL.sub("\ufffd", str(s).replace("\t", " ").replace("\r\n", "\n").replace("\r", "\n"))
