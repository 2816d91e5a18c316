"""CRC-32C (Castagnoli), the checksum of every header, status block and page.

CRC-32C rather than zlib's CRC-32 because the `crc32c` package computes it with the
processor's CRC instruction (SSE 4.2 / ARMv8), about 2.5 times faster than ``zlib.crc32``
here, and checksumming is the largest fixed cost of the fast reader.  Same polynomial as
iSCSI, ext4 and Btrfs.  Test vector: ``crc32c(b"123456789") == 0xE3069283``.
"""

from __future__ import annotations

from crc32c import crc32c as _crc32c

CHECK_VALUE = 0xE3069283  # crc32c(b"123456789"), the catalogue check value


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """Return the CRC-32C of ``data`` (reflected, init and xor-out 0xFFFFFFFF)."""
    return _crc32c(data)
