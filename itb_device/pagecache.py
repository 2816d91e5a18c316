"""The page cache: each pump's last interrogated log, kept by serial number, so that the next
interrogation reads only the pages written since (docs/wire-protocol.md section 6,
"Incremental interrogation").

One file per pump, ``<serial>.itbpages`` in the cache folder: a 16-byte head (magic
``ITBPGC01``, the CRC-32C and the length of the image) then the log exactly as the pump sent
it (an ``.itblog`` image).  Written with :func:`parsers.atomic.atomic_write_bytes`: a reader never
sees half a file, a killed writer leaves the previous copy whole, and two programmers that
read the same pump at once each leave a complete copy (the last one wins).  Plain files rather
than SQLite because a pump's copy is one blob that is always replaced whole: no schema, no
locks to wait for (the ward app and the command line may share the folder), and the pages
inside keep their own CRCs.  The file's own CRC tells a damaged copy (the disk) from a damaged
page that the pump itself sent, which is not reused but read again each time.

The cache is only an optimisation: any file in it may be deleted at any time, and anything
wrong with it makes the next interrogation read the whole log (and say why).  It holds the
patients' histories, so a folder it creates is its owner's only (mode 0700; an existing
folder is left as it is).

Where (:func:`default_cache_dir`): ``$ITB_PUMP_CACHE`` when set, else
``$XDG_DATA_HOME/itb-telemetry/pumps``, ``%LOCALAPPDATA%\\itb-telemetry\\pumps`` on Windows,
``~/.local/share/itb-telemetry/pumps``.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from parsers import format as fmt
from parsers.atomic import atomic_write_bytes, remove_stale_temp_files
from parsers.crc import crc32c
from parsers.header import decode_header
from parsers.model import Header

ENV_VAR = "ITB_PUMP_CACHE"
MAGIC = b"ITBPGC01"
_HEAD = struct.Struct("<8sII")  # magic, CRC-32C of the image, image length
SUFFIX = ".itbpages"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HEAD_AND_STATUS = fmt.HEADER_SIZE + fmt.STATUS_SIZE


class CacheDamaged(Exception):
    """A cached copy that cannot be used (its own checksum fails, it is not a log, or it names
    another pump); the message says which file and why."""


def default_cache_dir() -> Path:
    """The per-user cache folder (see the module's docstring)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "itb-telemetry" / "pumps"
    local = os.environ.get("LOCALAPPDATA", "").strip()
    if os.name == "nt" and local:
        return Path(local) / "itb-telemetry" / "pumps"
    return Path.home() / ".local" / "share" / "itb-telemetry" / "pumps"


def file_name(serial: str) -> str:
    """The cache file of pump ``serial``: the serial itself when it is plain letters, digits,
    ``.``, ``_`` and ``-``, else ``x-`` and its bytes in hex (never a path, never hidden)."""
    if _SAFE.match(serial):
        return serial + SUFFIX
    return "x-" + serial.encode("utf-8", "replace").hex() + SUFFIX


def page_places(image: bytes, page_size: int) -> range:
    """The byte offsets of the whole page-sized places after the header and status."""
    if page_size <= 0:
        return range(0)
    return range(HEAD_AND_STATUS, len(image) - page_size + 1, page_size)


def intact_page(page: bytes | bytearray | memoryview) -> bool:
    """A page with the page marker and a good CRC (docs/log-format.md 5.1)."""
    return (int.from_bytes(page[0:2], "little") == fmt.PAGE_SYNC
            and crc32c(page[:-4]) == int.from_bytes(page[-4:], "little"))


def page_seq(page: bytes | bytearray | memoryview) -> int:
    """The sequence number in a page's header (page bytes 8-11)."""
    return int.from_bytes(page[8:12], "little")


def page_count_field(page: bytes | bytearray | memoryview) -> int:
    """The record count in a page's header (page bytes 2-3)."""
    return int.from_bytes(page[2:4], "little")


@dataclass
class HeldLog:
    """A pump's cached log: its header, and its intact pages by sequence number (``full``: those
    holding ``records_per_page`` records, which a pump never writes to again)."""

    path: Path
    header: Header
    image: bytes
    pages: dict[int, bytes] = field(default_factory=dict)
    full: set[int] = field(default_factory=set)

    @property
    def newest_seq(self) -> int | None:
        """The highest sequence number held (None: no page)."""
        return max(self.pages, default=None)

    def differs(self, header: Header) -> str | None:
        """Why the pump whose log has ``header`` cannot be this cached pump's (None: it may be)."""
        mine = self.header
        for what, a, b in (
            ("serial number", mine.serial, header.serial),
            ("page size", mine.page_size, header.page_size),
            ("ring slots", mine.ring_slots, header.ring_slots),
            ("reservoir size (mL)", mine.model_ml, header.model_ml),
            ("implant date", mine.implant_date, header.implant_date),
        ):
            if a != b:
                return (f"the pump's {what} ({b}) is not the cached copy's ({a}): another pump or "
                        "another layout")
        return None


@dataclass(frozen=True)
class LogRead:
    """What one interrogation read: the log (``data``, exactly as a whole read gives it) and how.

    ``incremental``: only the pages written since the cached copy were read (``reason`` is
    empty); otherwise the whole log was, and ``reason`` says why.  ``pages``: pages in the log;
    ``pages_read``: pages moved over the link; ``pages_reused``: taken from the cache, of which
    ``pages_verified`` were first checked against the pump (sequence number and CRC).
    ``wire_bytes``: bytes on the link, both directions (0 without a link).  ``cache_file``: the
    copy kept for next time (None: none kept, ``cache_note`` says why)."""

    data: bytes
    incremental: bool
    reason: str = ""
    serial: str = ""
    pages: int = 0
    pages_read: int = 0
    pages_reused: int = 0
    pages_verified: int = 0
    wire_bytes: int = 0
    cache_file: Path | None = None
    cache_note: str = ""

    def describe(self) -> str:
        """One line for a person: incremental or whole (and why), pages and bytes moved."""
        pump = f" of pump {self.serial}" if self.serial else ""
        if self.incremental:
            how = (f"incremental read{pump}: {self.pages_read} of {self.pages} pages read, "
                   f"{self.pages_reused} from the cache ({self.pages_verified} checked against the pump)")
        else:
            how = f"full read{pump}, because {self.reason}: {self.pages_read} of {self.pages} pages read"
        line = f"{how}; {self.wire_bytes:,} bytes on the link for a {len(self.data):,}-byte log"
        if self.cache_note:
            line += f"; {self.cache_note}"
        return line


@dataclass(frozen=True)
class PageCache:
    """The page cache in ``folder`` (default: :func:`default_cache_dir`)."""

    folder: Path

    @classmethod
    def at(cls, where: PageCache | str | Path | None = None) -> PageCache:
        """``where`` as a cache: a :class:`PageCache`, a folder, or None for the default folder."""
        if isinstance(where, PageCache):
            return where
        return cls(Path(where).expanduser() if where is not None else default_cache_dir())

    def path_for(self, serial: str) -> Path:
        """The file that holds pump ``serial``'s copy."""
        return self.folder / file_name(serial)

    def load(self, serial: str) -> HeldLog | None:
        """Pump ``serial``'s copy, or None when there is none.  Raises :class:`CacheDamaged`
        when there is one that cannot be used."""
        path = self.path_for(serial)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheDamaged(f"the cached copy {path} cannot be read ({exc.strerror or exc})") from exc
        if len(raw) < _HEAD.size:
            raise CacheDamaged(f"the cached copy {path} is damaged (cut short at {len(raw)} bytes)")
        magic, crc, length = _HEAD.unpack_from(raw)
        image = raw[_HEAD.size :]
        if magic != MAGIC:
            raise CacheDamaged(f"the cached copy {path} is damaged (not a page cache file)")
        if len(image) != length or crc32c(image) != crc:
            raise CacheDamaged(f"the cached copy {path} is damaged (its checksum does not match)")
        held = _parse_image(path, image)
        if held.header.serial != serial:
            raise CacheDamaged(f"the cached copy {path} holds pump {held.header.serial!r}, not {serial!r}")
        return held

    def store(self, image: bytes) -> Path:
        """Keep ``image`` (a log as the pump sent it) as its pump's copy, replacing any older one
        atomically; returns the file.  Raises :class:`CacheDamaged` for an image that names no
        pump (a damaged header, no serial) and OSError when the folder cannot be written."""
        header = _parse_image(self.folder, image).header
        if not header.serial.strip():
            raise CacheDamaged("the log names no pump serial number")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_for(header.serial)
        with contextlib.suppress(OSError):
            remove_stale_temp_files(self.folder, path.name)
        atomic_write_bytes(path, [_HEAD.pack(MAGIC, crc32c(image), len(image)), image])
        return path

    def forget(self, serial: str) -> None:
        """Delete pump ``serial``'s copy (if any)."""
        self.path_for(serial).unlink(missing_ok=True)


def _parse_image(path: Path, image: bytes) -> HeldLog:
    """The header and intact pages of a log image (CacheDamaged when its header is not good)."""
    if len(image) < HEAD_AND_STATUS:
        raise CacheDamaged(f"{path}: the log is shorter than a header and status")
    try:
        header, ok = decode_header(image[: fmt.HEADER_SIZE])
    except Exception as exc:  # construct's errors for a wrong magic
        raise CacheDamaged(f"{path}: not an interrogation log ({type(exc).__name__})") from exc
    if not ok:
        raise CacheDamaged(f"{path}: the log's header fails its CRC")
    if header.page_size not in fmt.ALLOWED_PAGE_SIZES:
        raise CacheDamaged(f"{path}: page size {header.page_size} is not one the format allows")
    held = HeldLog(path, header, image)
    per_page = fmt.records_per_page(header.page_size)
    view = memoryview(image)
    for off in page_places(image, header.page_size):
        page = view[off : off + header.page_size]
        if not intact_page(page):
            continue  # a page the pump sent damaged (or an erased slot): read again each time
        seq = page_seq(page)
        if seq in held.pages:
            continue  # a second copy: the first is the one a reader keeps
        held.pages[seq] = bytes(page)
        if page_count_field(page) == per_page:
            held.full.add(seq)
    return held
