"""Raw byte captures of a link session, and their offline replay.

A capture records, in order, every ``write`` the programmer made and every ``read`` result
(including the empty reads that mean a timeout).  Because the link's decisions depend only on
read results, feeding the same results back (:class:`ReplayPort`) reproduces the session's
decode exactly, offline (Tidepool's habit: archive the raw capture before decoding).

File format: magic ``b"ITBCAP01"``, then entries: kind u8 (1 write, 2 read), seconds since
the start f64, length u32, the bytes (little-endian).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

from parsers.writer import atomic_write_bytes

from .frames import FrameDecoder

MAGIC = b"ITBCAP01"
WRITE, READ = 1, 2
_ENTRY = struct.Struct("<BdI")


class CaptureError(ValueError):
    """A capture file that cannot be read, naming the file and byte offset."""


class CapturePort:
    """Wraps an open port and records its traffic; ``save()`` writes the capture atomically."""

    def __init__(self, port: Any, path: str | Path) -> None:
        self.port = port
        self.path = Path(path)
        self._t0 = time.monotonic()
        self._entries: list[bytes] = []

    def _add(self, kind: int, data: bytes) -> None:
        self._entries.append(_ENTRY.pack(kind, time.monotonic() - self._t0, len(data)) + data)

    def write(self, data: bytes) -> int | None:
        self._add(WRITE, bytes(data))
        return self.port.write(data)

    def read(self, size: int = 1) -> bytes:
        data = self.port.read(size)
        self._add(READ, bytes(data))
        return data

    @property
    def in_waiting(self) -> int:
        return self.port.in_waiting

    @property
    def timeout(self) -> float | None:
        return self.port.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.port.timeout = value

    def save(self) -> Path:
        """Write the capture file."""
        atomic_write_bytes(self.path, [MAGIC, *self._entries])
        return self.path

    def close(self) -> None:
        self.save()
        self.port.close()


def load_capture(path: str | Path) -> list[tuple[int, float, bytes]]:
    """The entries of a capture file: (kind, seconds, bytes)."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CaptureError(f"{path}: byte 0: not an itb capture (no {MAGIC!r} magic)")
    out, pos = [], len(MAGIC)
    while pos < len(data):
        if pos + _ENTRY.size > len(data):
            raise CaptureError(f"{path}: byte {pos}: truncated entry header")
        kind, t, n = _ENTRY.unpack_from(data, pos)
        if kind not in (READ, WRITE) or pos + _ENTRY.size + n > len(data):
            raise CaptureError(f"{path}: byte {pos}: damaged entry (kind {kind}, {n} bytes)")
        out.append((kind, t, data[pos + _ENTRY.size : pos + _ENTRY.size + n]))
        pos += _ENTRY.size + n
    return out


class ReplayPort:
    """Plays a capture back: reads return the recorded results in order; writes are
    checked against the recorded ones (``mismatches`` counts differences)."""

    def __init__(self, entries: list[tuple[int, float, bytes]]) -> None:
        self._reads = [d for k, _, d in entries if k == READ]
        self._writes = [d for k, _, d in entries if k == WRITE]
        self._r = self._w = 0
        self.mismatches = 0
        self.timeout: float | None = None
        frames = FrameDecoder().feed(self._writes[0]) if self._writes else []
        self.first_seq = frames[0].seq if frames else None

    def write(self, data: bytes) -> int:
        expected = self._writes[self._w] if self._w < len(self._writes) else None
        if expected is None or not _same_request(bytes(data), expected):
            self.mismatches += 1
        self._w += 1
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if self._r >= len(self._reads):
            return b""
        self._r += 1
        return self._reads[self._r - 1]

    @property
    def in_waiting(self) -> int:
        return len(self._reads[self._r]) if self._r < len(self._reads) else 0

    def close(self) -> None:
        """Nothing to release."""


def _same_request(a: bytes, b: bytes) -> bool:
    """Two request frames match; a session start may differ in the programmer's clock it
    carries (a replay runs later than the capture)."""
    if a == b:
        return True
    fa, fb = FrameDecoder().feed(a), FrameDecoder().feed(b)
    if len(fa) != 1 or len(fb) != 1:
        return False
    x, y = fa[0], fb[0]
    return (x.seq, x.opcode) == (y.seq, y.opcode) and x.opcode == 0x01  # SESSION_START
