"""Text from a log (or a pump) made safe for a terminal.

A log's text fields (serial, firmware, programmer id, drug name) and anything quoting them
could hold control characters: a carriage return and line feed that print a fake
``VERDICT: OK`` line above the real one, escape sequences that recolour, move the cursor or
retitle the terminal, or Unicode bidirectional controls that reorder what is shown.  Every
command that prints such text to a terminal passes it through :func:`printable`, which shows
those characters escaped (``\\r``, ``\\x1b``, ``\\u202e``) instead of obeying them.
"""

from __future__ import annotations

_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
# bidirectional controls and line/paragraph separators: invisible, yet they change what is shown
_INVISIBLE = {0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def printable(text: object) -> str:
    """``str(text)`` with every control character escaped (C0, DEL, C1, bidi controls, line and
    paragraph separators); anything else, including other non-ASCII text, is kept."""
    s = str(text)
    if s.isascii() and s.isprintable():
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif o in _INVISIBLE:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def printable_lines(text: str) -> str:
    """``text`` whose own line breaks are kept and every other control character is escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))
