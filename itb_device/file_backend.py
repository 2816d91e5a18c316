"""``file://PATH.itblog``: a saved interrogation served read-only, as if it were the pump."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from parsers import LogImage, Status, read_log

from .programmer import PumpProgrammer


class FileProgrammer(PumpProgrammer):
    """Replays a saved interrogation; every command that would change a pump is refused."""

    read_only = True

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.interrogation = read_log(self.path)
        self._image = self.interrogation.to_image()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> FileProgrammer:
        """``file:///abs/path.itblog`` or ``file://relative/path.itblog``."""
        parts = urlsplit(url)
        host = "" if parts.netloc in ("", "localhost") else parts.netloc
        return cls(unquote(host + parts.path), **kwargs)

    def _interrogate(self) -> Status:
        return self._image.status

    def _read_log(self) -> LogImage:
        return self._image
