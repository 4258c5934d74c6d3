"""The serial wire formats: a binary frame with CRC, and one ADC integer per text line.

Pure functions and incremental decoders, kept apart from the thread or loop that reads the port
(as pyserial's ``Packetizer`` is), so they are tested without hardware.

Binary frame (all integers little-endian except the CRC)::

    offset  size  field
    0       2     sync, the bytes 0xA5 0x5A
    2       2     sequence number, uint16, +1 per frame, wrapping at 65536
    4       1     n, the number of samples in the frame (1..255)
    5       1     flags; bit 0 set: a beat label follows the samples
    6       2n    samples, int16 ADC counts (mV = (count - baseline) / gain)
    6+2n    2     only with flag bit 0: label position (uint8 index into the samples) and the
                  label (one ASCII byte, a WFDB beat symbol such as N, V or A)
    end     2     CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection,
                  no final xor) over every byte from offset 2 up to the CRC, big-endian

The decoder resynchronises on the sync bytes after garbage or a CRC failure and counts what it
dropped: ``garbage_bytes`` (bytes outside any frame), ``crc_errors`` (a complete frame whose CRC
failed), ``partial_frames`` (a frame cut short: the next frame's sync appears inside it, or the
stream ended inside it), and sequence ``gaps`` (with ``lost_frames``, the frames missing).

ASCII: one decimal ADC count per line (``\\n`` or ``\\r\\n``), as hobby front-ends (an AD8232
with a microcontroller) print them. Lines that are not an integer count as ``bad_lines``.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.sensors.errors import SensorError

__all__ = [
    "SYNC",
    "AsciiDecoder",
    "Frame",
    "FrameDecoder",
    "SourceCounters",
    "crc16_ccitt",
    "encode_frame",
]

SYNC = b"\xa5\x5a"
_HEAD = struct.Struct("<HBB")
_MAX_SAMPLES = 255
_MAX_LINE = 32


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (check value 0x29B1 for b"123456789")."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(slots=True)
class SourceCounters:
    """What a source saw and survived; live, updated while the source runs."""

    frames: int = 0
    samples: int = 0
    crc_errors: int = 0
    garbage_bytes: int = 0
    partial_frames: int = 0
    gaps: int = 0
    lost_frames: int = 0
    bad_lines: int = 0
    read_errors: int = 0
    reopens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    seq: int
    samples: NDArray[np.int16]
    label: tuple[int, str] | None = None
    lost: int = 0
    """Frames missing just before this one (from the sequence numbers)."""


def encode_frame(
    seq: int, samples: ArrayLike, label: str | None = None, position: int = 0
) -> bytes:
    """One binary frame; ``samples`` are integer ADC counts, ``label`` a beat symbol carried by
    the sample at ``position`` in the frame."""
    s = np.asarray(samples)
    if s.ndim != 1 or not 1 <= len(s) <= _MAX_SAMPLES:
        raise SensorError(f"a frame holds 1..{_MAX_SAMPLES} samples, got shape {s.shape}")
    if s.dtype.kind == "f":
        if not np.isfinite(s).all() or (s != np.round(s)).any():
            raise SensorError("frame samples must be integer ADC counts")
    elif s.dtype.kind not in "iu":
        raise SensorError(f"frame samples must be integers, got dtype {s.dtype}")
    if len(s) and (s.min() < -32768 or s.max() > 32767):
        raise SensorError("frame samples must fit in int16")
    if not 0 <= seq <= 0xFFFF:
        raise SensorError(f"sequence number must be in 0..65535, got {seq}")
    body = bytearray(_HEAD.pack(seq, len(s), 1 if label is not None else 0))
    body += s.astype("<i2").tobytes()
    if label is not None:
        code = label.encode("ascii") if label.isascii() else b""
        if len(code) != 1 or not 0 <= position < len(s):
            raise SensorError(f"label must be one ASCII symbol at a sample of the frame: {label!r}")
        body += bytes((position,)) + code
    return SYNC + bytes(body) + crc16_ccitt(bytes(body)).to_bytes(2, "big")


class FrameDecoder:
    """Incremental decoder of binary frames: ``feed(bytes) -> list[Frame]``."""

    def __init__(self, counters: SourceCounters | None = None) -> None:
        self.counters = counters if counters is not None else SourceCounters()
        self._buf = bytearray()
        self._next_seq: int | None = None

    def _frame_at(self, pos: int) -> tuple[int, Frame | None] | None:
        """``None`` if more bytes are needed; else (frame length, frame or None when bad)."""
        buf = self._buf
        if len(buf) < pos + 6:
            return None
        seq, n, flags = _HEAD.unpack_from(buf, pos + 2)
        if n == 0 or flags & ~1:
            return 1, None
        length = 6 + 2 * n + (2 if flags & 1 else 0) + 2
        if len(buf) < pos + length:
            return None
        body = bytes(buf[pos + 2 : pos + length - 2])
        if crc16_ccitt(body) != int.from_bytes(buf[pos + length - 2 : pos + length], "big"):
            return length, None
        samples = np.frombuffer(body, dtype="<i2", count=n, offset=4).astype(np.int16)
        label = None
        if flags & 1:
            p, sym = body[4 + 2 * n], body[5 + 2 * n]
            if p < n and 32 < sym < 127:
                label = (p, chr(sym))
        return length, Frame(seq, samples, label)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        c = self.counters
        buf = self._buf
        pos = 0
        while True:
            k = buf.find(SYNC, pos)
            if k < 0:
                # Keep a trailing first sync byte, which may start a frame (unless it was the
                # last byte of a frame just taken).
                keep = 1 if pos < len(buf) and buf[-1:] == SYNC[:1] else 0
                c.garbage_bytes += len(buf) - pos - keep
                pos = len(buf) - keep
                break
            c.garbage_bytes += k - pos
            pos = k
            res = self._frame_at(pos)
            if res is None:
                break
            length, frame = res
            if frame is None:
                inner = buf.find(SYNC, pos + 2, pos + length)
                if length == 1:
                    c.garbage_bytes += 1
                    pos += 1
                elif inner >= 0:
                    # A sync inside a failed frame: it was cut short if a good frame starts there.
                    nxt = self._frame_at(inner)
                    if nxt is None:
                        break
                    if nxt[1] is not None:
                        c.partial_frames += 1
                    else:
                        c.crc_errors += 1
                    pos = inner
                else:
                    c.crc_errors += 1
                    pos += length
                continue
            out.append(self._accept(frame))
            pos += length
        del buf[:pos]
        return out

    def _accept(self, frame: Frame) -> Frame:
        c = self.counters
        missing = 0
        if self._next_seq is not None and frame.seq != self._next_seq:
            missing = (frame.seq - self._next_seq) & 0xFFFF
            c.gaps += 1
            c.lost_frames += missing
        self._next_seq = (frame.seq + 1) & 0xFFFF
        c.frames += 1
        c.samples += len(frame.samples)
        return replace(frame, lost=missing) if missing else frame

    def reset(self) -> None:
        """Drop buffered bytes (the port was reopened): an unfinished frame is partial, and the
        device may restart its sequence numbers."""
        if SYNC in self._buf:
            self.counters.partial_frames += 1
        self._buf.clear()
        self._next_seq = None


class AsciiDecoder:
    """Incremental decoder of one-integer-per-line text: ``feed(bytes) -> list[int]``."""

    def __init__(self, counters: SourceCounters | None = None) -> None:
        self.counters = counters if counters is not None else SourceCounters()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[int]:
        self._buf += data
        c = self.counters
        lines = self._buf.split(b"\n")
        rest = lines.pop()
        if len(rest) > _MAX_LINE:
            c.garbage_bytes += len(rest)
            c.bad_lines += 1
            rest = bytearray()
        self._buf = bytearray(rest)
        out: list[int] = []
        for ln in lines:
            s = ln.strip()
            if not s:
                continue
            try:
                v = int(s)
            except ValueError:
                v = None
            if v is None or not -(2**31) <= v < 2**31:
                c.garbage_bytes += len(ln) + 1
                c.bad_lines += 1
                continue
            out.append(v)
        c.frames += len(out)
        c.samples += len(out)
        return out

    def reset(self) -> None:
        if self._buf:
            self.counters.partial_frames += 1
            self._buf.clear()
