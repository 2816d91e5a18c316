"""Interrogation logs of SynchroMed-II-style ITB pumps: the ``.itblog`` format, reader, writer.

``parsers`` knows nothing of the device layer or the analysis; both build on it.
"""

from .errors import LogFormatError
from .model import FlexStep, Header, LogImage, Page, Problem, Record, Status
from .reader import InterrogationLog, read_log, read_log_bytes
from .records import Alarm, BolusKind, Mode, RecordCode
from .writer import pack_ring, write_log

__all__ = [
    "Alarm",
    "BolusKind",
    "FlexStep",
    "Header",
    "InterrogationLog",
    "LogFormatError",
    "LogImage",
    "Mode",
    "Page",
    "Problem",
    "Record",
    "RecordCode",
    "Status",
    "pack_ring",
    "read_log",
    "read_log_bytes",
    "write_log",
]
