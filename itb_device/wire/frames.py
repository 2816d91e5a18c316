"""Framing: HDLC-style flags and byte stuffing, a header with a sequence number and opcode,
and a CRC-16 over everything, so a receiver finds the next frame after any noise.

On the wire a frame is ``0x7E`` + stuffed(body + crc16) + ``0x7E`` where
body = version u8, seq u16, opcode u8, length u16, payload (little-endian).  Inside the
flags, 0x7E and 0x7D are sent as 0x7D followed by the byte XOR 0x20.  CRC-16/CCITT-FALSE
(poly 0x1021, init 0xFFFF, no reflection, no xor-out; ``binascii.crc_hqx``), test vector
``crc16(b"123456789") == 0x29B1``.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

FLAG = 0x7E
ESC = 0x7D
ESC_XOR = 0x20
VERSION = 1
_HEAD = struct.Struct("<BHBH")
HEAD_SIZE = _HEAD.size  # 6
CRC_SIZE = 2
MAX_PAYLOAD = 4096
_STUFF = {FLAG: bytes([ESC, FLAG ^ ESC_XOR]), ESC: bytes([ESC, ESC ^ ESC_XOR])}


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    seq: int
    opcode: int
    payload: bytes


def encode_frame(seq: int, opcode: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame on the wire."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = _HEAD.pack(VERSION, seq & 0xFFFF, opcode, len(payload)) + payload
    body += crc16(body).to_bytes(2, "little")
    stuffed = body.replace(bytes([ESC]), _STUFF[ESC]).replace(bytes([FLAG]), _STUFF[FLAG])
    return bytes([FLAG]) + stuffed + bytes([FLAG])


class FrameDecoder:
    """Incremental decoder: feed it whatever bytes arrived, get back the complete valid frames.

    Bytes outside a frame are noise and skipped; a frame with a bad CRC, a bad length or a
    bad escape is counted in ``bad_frames`` and dropped.  Never raises on input.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self.bad_frames = 0
        self.noise_bytes = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return the frames it completed."""
        frames: list[Frame] = []
        pos = 0
        n = len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(FLAG, pos)
                if start < 0:
                    self.noise_bytes += n - pos
                    return frames
                self.noise_bytes += start - pos
                pos = start + 1
                self._in_frame = True
                self._buf.clear()
                continue
            end = data.find(FLAG, pos)
            if end < 0:
                self._buf += data[pos:]
                if len(self._buf) > 2 * (MAX_PAYLOAD + HEAD_SIZE + CRC_SIZE) + 2:
                    self.bad_frames += 1
                    self._in_frame = False
                    self._buf.clear()
                return frames
            self._buf += data[pos:end]
            pos = end + 1
            if self._buf:  # an empty one is the closing flag doubling as the next opening
                frame = self._decode(bytes(self._buf))
                if frame is None:
                    self.bad_frames += 1
                else:
                    frames.append(frame)
            self._buf.clear()  # the closing flag may open the next frame
        return frames

    @staticmethod
    def _decode(stuffed: bytes) -> Frame | None:
        if stuffed.endswith(bytes([ESC])):
            return None
        body = bytearray()
        i = 0
        while True:
            j = stuffed.find(ESC, i)
            if j < 0:
                body += stuffed[i:]
                break
            body += stuffed[i:j]
            nxt = stuffed[j + 1] ^ ESC_XOR
            if nxt not in (FLAG, ESC):
                return None
            body.append(nxt)
            i = j + 2
        if len(body) < HEAD_SIZE + CRC_SIZE:
            return None
        if crc16(bytes(body[:-CRC_SIZE])) != int.from_bytes(body[-CRC_SIZE:], "little"):
            return None
        version, seq, opcode, length = _HEAD.unpack_from(body, 0)
        if version != VERSION or length != len(body) - HEAD_SIZE - CRC_SIZE:
            return None
        return Frame(seq, opcode, bytes(body[HEAD_SIZE:-CRC_SIZE]))
