"""A small reader for WFDB records: format 212 signals and MIT-format annotation files.

Written from the WFDB file specifications (PhysioNet, "WFDB Applications Guide" and the
``header(5)``, ``signal(5)`` and ``annot(5)`` manual pages) so that devices need no ``wfdb``
package (which pulls pandas and matplotlib). Only what MIT-BIH and similar databases use is
supported: one or more signals in a single format-212 file, and MIT annotation files.

Format 212 packs two 12-bit two's-complement samples into three bytes: the low byte of the
first sample, then a byte whose low nibble holds the first sample's high four bits and whose
high nibble holds the second's, then the low byte of the second sample. Samples of the signals
are interleaved frame by frame.

An MIT annotation is a little-endian 16-bit word: the top six bits are the annotation code, the
low ten bits the sample interval since the previous annotation. Codes 59 to 63 are pseudo
annotations (SKIP for long intervals, NUM, SUB, CHN, and AUX strings); a zero word ends the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.errors import RecordError

__all__ = [
    "Annotations",
    "Record",
    "SignalFile",
    "SignalSpec",
    "read_annotations",
    "read_header",
    "read_record",
]

# The MIT annotation code table (ecgcodes.h); index = code.
_CODES = ' NLRaVFJASEj/Q~ | sT*D"=pB^t+u?![]en@xf()r'

_SKIP, _NUM, _SUB, _CHN, _AUX = 59, 60, 61, 62, 63

_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(\S+))?$")


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One signal line of a header."""

    file: str
    fmt: int
    gain: float
    adc_resolution: int
    adc_zero: int
    baseline: int
    initial_value: int
    checksum: int
    name: str
    units: str


@dataclass(frozen=True, slots=True)
class Header:
    record: str
    fs: float
    n_samples: int
    signals: tuple[SignalSpec, ...]
    comments: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals)


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    """A record's samples: ``digital`` (n, signals) ADC units, converted to mV by :meth:`mv`."""

    header: Header
    digital: NDArray[np.int16]

    @property
    def fs(self) -> float:
        return self.header.fs

    @property
    def names(self) -> tuple[str, ...]:
        return self.header.names

    def lead_index(self, lead: str) -> int:
        """The column of the signal named ``lead`` (leads are chosen by name: 114 swaps them)."""
        return _lead_index(self.header, lead)

    def mv(self, lead: str) -> NDArray[np.float64]:
        """The signal named ``lead`` in millivolts (physical units)."""
        i = self.lead_index(lead)
        spec = self.header.signals[i]
        return (self.digital[:, i].astype(np.float64) - spec.baseline) / spec.gain


@dataclass(frozen=True, slots=True, eq=False)
class Annotations:
    """Annotation sample indices, symbols, and the aux strings (rhythm labels such as ``(VFL``)."""

    samples: NDArray[np.int64]
    symbols: tuple[str, ...]
    aux: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.symbols)


def _lead_index(header: Header, lead: str) -> int:
    try:
        return header.names.index(lead)
    except ValueError:
        raise RecordError(
            header.record, f"no signal named {lead!r}; the record has {list(header.names)}"
        ) from None


def _header_path(directory: Path, record: str) -> Path:
    return directory / f"{record}.hea"


def read_header(directory: str | Path, record: str) -> Header:
    """Parse ``RECORD.hea`` (single-segment records)."""
    path = _header_path(Path(directory), record)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(str(path), f"cannot read header: {err}") from err
    lines = [ln.strip() for ln in text.splitlines()]
    comments = tuple(ln[1:].strip() for ln in lines if ln.startswith("#"))
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    if not body:
        raise RecordError(str(path), "empty header")
    first = body[0].split()
    try:
        n_sig = int(first[1])
        fs = float(first[2].split("/")[0]) if len(first) > 2 else 250.0
        n_samples = int(first[3]) if len(first) > 3 else 0
    except (IndexError, ValueError) as err:
        raise RecordError(str(path), f"bad record line {body[0]!r}: {err}") from err
    if "/" in first[0]:
        raise RecordError(str(path), "multi-segment records are not supported")
    if len(body) < 1 + n_sig:
        raise RecordError(str(path), f"header names {n_sig} signals but has {len(body) - 1} lines")
    specs: list[SignalSpec] = []
    for ln in body[1 : 1 + n_sig]:
        f = ln.split()
        try:
            m = _GAIN.match(f[2])
            if m is None:
                raise ValueError(f"bad gain field {f[2]!r}")
            gain = float(m.group(1)) or 200.0
            zero = int(f[4])
            baseline = int(m.group(2)) if m.group(2) is not None else zero
            specs.append(
                SignalSpec(
                    file=f[0],
                    fmt=int(f[1].split("x")[0].split(":")[0].split("+")[0]),
                    gain=gain,
                    adc_resolution=int(f[3]),
                    adc_zero=zero,
                    baseline=baseline,
                    initial_value=int(f[5]),
                    checksum=int(f[6]),
                    name=" ".join(f[8:]) if len(f) > 8 else f"sig{len(specs)}",
                    units=m.group(3) or "mV",
                )
            )
        except (IndexError, ValueError) as err:
            raise RecordError(str(path), f"bad signal line {ln!r}: {err}") from err
    return Header(record, fs, n_samples, tuple(specs), comments)


def _decode_212(raw: NDArray[np.uint8], n_values: int) -> NDArray[np.int16]:
    n_pairs = (n_values + 1) // 2
    b = raw[: 3 * n_pairs].reshape(-1, 3).astype(np.int16)
    out = np.empty(2 * n_pairs, dtype=np.int16)
    out[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    out[1::2] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    # Sign-extend the 12-bit values.
    out[out > 2047] -= 4096
    return out[:n_values]


#: Frames decoded at a time when a whole file is checked (bounded memory for any length).
_VERIFY_FRAMES = 1 << 16


class SignalFile:
    """Random access to a record's format-212 samples, read from the file as they are needed.

    A replay holds the file open and decodes one chunk at a time, so its memory does not grow
    with the record's length (30 minutes of two signals decode to 2.6 MB of int16 at once, and
    to 10 MB in mV). With ``verify`` the header's per-signal checksums and initial values are
    checked on opening, in blocks of ``_VERIFY_FRAMES`` frames.
    """

    def __init__(self, directory: str | Path, record: str, *, verify: bool = True) -> None:
        d = Path(directory)
        self.header = read_header(d, record)
        files = {s.file for s in self.header.signals}
        if len(files) != 1 or any(s.fmt != 212 for s in self.header.signals):
            raise RecordError(
                str(_header_path(d, record)), "only records with all signals in one format-212 file"
            )
        self.path = d / files.pop()
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            size = os.fstat(self._fd).st_size
        except OSError as err:
            raise RecordError(str(self.path), f"cannot read signal file: {err}") from err
        n_sig = len(self.header.signals)
        self.n_frames = self.header.n_samples or (size * 2 // 3) // n_sig
        need = (self.n_frames * n_sig + 1) // 2 * 3
        if size < need:
            self.close()
            raise RecordError(str(self.path), f"signal file has {size} bytes, {need} expected")
        if verify:
            try:
                self._verify()
            except RecordError:
                self.close()
                raise

    @property
    def fs(self) -> float:
        return self.header.fs

    def __len__(self) -> int:
        return self.n_frames

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SignalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self, a: int, b: int) -> NDArray[np.int16]:
        """Frames ``[a, b)`` as ``(b - a, signals)`` ADC units."""
        if self._fd < 0:
            raise RecordError(str(self.path), "signal file is closed")
        a, b = max(0, a), min(b, self.n_frames)
        n_sig = len(self.header.signals)
        if b <= a:
            return np.empty((0, n_sig), dtype=np.int16)
        v0, v1 = a * n_sig, b * n_sig  # value indices; two values per three bytes
        p0, p1 = v0 // 2, (v1 + 1) // 2
        try:
            raw = os.pread(self._fd, 3 * (p1 - p0), 3 * p0)
        except OSError as err:
            raise RecordError(str(self.path), f"cannot read signal file: {err}") from err
        if len(raw) < 3 * (p1 - p0):
            raise RecordError(str(self.path), "signal file ended early (truncated while open?)")
        values = _decode_212(np.frombuffer(raw, dtype=np.uint8), 2 * (p1 - p0))
        return values[v0 - 2 * p0 : v1 - 2 * p0].reshape(b - a, n_sig)

    def mv(self, lead: str, a: int, b: int) -> NDArray[np.float64]:
        """Frames ``[a, b)`` of the signal named ``lead`` in millivolts."""
        i = _lead_index(self.header, lead)
        spec = self.header.signals[i]
        return (self.frames(a, b)[:, i].astype(np.float64) - spec.baseline) / spec.gain

    def _verify(self) -> None:
        n_sig = len(self.header.signals)
        sums = np.zeros(n_sig, dtype=np.int64)
        for a in range(0, self.n_frames, _VERIFY_FRAMES):
            block = self.frames(a, a + _VERIFY_FRAMES)
            if a == 0:
                first = block[0]
            sums += block.sum(axis=0, dtype=np.int64)
        if not self.n_frames:
            return
        for i, s in enumerate(self.header.signals):
            chk = int(sums[i]) & 0xFFFF
            chk = chk - 0x10000 if chk >= 0x8000 else chk
            if chk != s.checksum or int(first[i]) != s.initial_value:
                raise RecordError(
                    str(self.path), f"signal {s.name}: checksum or initial value mismatch"
                )


def read_record(directory: str | Path, record: str, *, verify: bool = True) -> Record:
    """Read a record whose signals share one format-212 file; ``verify`` checks the header's
    per-signal checksums and initial values against the decoded samples."""
    with SignalFile(directory, record, verify=False) as f:
        digital = f.frames(0, f.n_frames)
        header = f.header
        path = f.path
    if verify:
        for i, s in enumerate(header.signals):
            col = digital[:, i]
            chk = int(col.astype(np.int64).sum()) & 0xFFFF
            chk = chk - 0x10000 if chk >= 0x8000 else chk
            if len(col) and (chk != s.checksum or int(col[0]) != s.initial_value):
                raise RecordError(str(path), f"signal {s.name}: checksum or initial value mismatch")
    return Record(header, digital)


def read_annotations(directory: str | Path, record: str, extension: str = "atr") -> Annotations:
    """Read an MIT-format annotation file ``RECORD.EXTENSION``."""
    path = Path(directory) / f"{record}.{extension}"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RecordError(str(path), f"cannot read annotations: {err}") from err
    if len(data) % 2:
        data += b"\0"
    words = np.frombuffer(data, dtype="<u2")
    samples: list[int] = []
    symbols: list[str] = []
    aux: list[str] = []
    t = 0
    i = 0
    n = len(words)
    while i < n:
        w = int(words[i])
        code, interval = w >> 10, w & 0x3FF
        i += 1
        if code == 0 and interval == 0:
            break
        if code == _SKIP:
            if i + 2 > n:
                raise RecordError(str(path), "truncated SKIP annotation")
            # A 32-bit interval stored as two 16-bit words, high word first (PDP-11 order).
            t += (int(words[i]) << 16 | int(words[i + 1])) - (1 << 32 if words[i] & 0x8000 else 0)
            i += 2
        elif code == _AUX:
            nbytes = interval
            start = 2 * i
            text = data[start : start + nbytes].split(b"\0", 1)[0].decode("latin-1")
            if aux:
                aux[-1] = text
            i += (nbytes + 1) // 2
        elif code in (_NUM, _SUB, _CHN):
            continue
        else:
            t += interval
            if code >= len(_CODES) or _CODES[code] == " ":
                raise RecordError(str(path), f"unknown annotation code {code} at sample {t}")
            samples.append(t)
            symbols.append(_CODES[code])
            aux.append("")
    return Annotations(np.asarray(samples, dtype=np.int64), tuple(symbols), tuple(aux))
