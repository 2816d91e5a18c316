"""Errors raised by the log parsers: every message names the file and the byte offset."""

from __future__ import annotations

from pathlib import Path


class LogFormatError(ValueError):
    """A log file that cannot be read (or, in strict mode, that has any damage).

    ``str(err)`` is a one-line message for a user: ``"<file>: byte <offset>: <what is wrong>"``.
    """

    def __init__(self, path: str | Path | None, offset: int | None, message: str) -> None:
        self.path = str(path) if path is not None else "<memory>"
        self.offset = offset
        self.message = message
        where = f"{self.path}: byte {offset}" if offset is not None else self.path
        super().__init__(f"{where}: {message}")
