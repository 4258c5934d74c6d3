"""Serial sources over a real pseudo-terminal pair and over pyserial's ``loop://``.

The pty tests open the device through a symlink, the way udev names boards
(/dev/serial/by-id/...): unplugging closes both ends of the pty, and plugging back in creates a
new pty and points the symlink at it, so the source must reopen the same path.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from smfel.sensors import Chunk, SourceError, encode_frame, open_source
from smfel.sensors.serialport import SerialSource

pytestmark = pytest.mark.device


class Pty:
    """A pty whose slave is reachable through a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view[:512])
            view = view[n:]


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def _collect(src: SerialSource) -> list[Chunk]:
    chunks: list[Chunk] = []
    for c in src:
        chunks.append(c)
    return chunks


def _frames(seqs: range, n: int = 10) -> tuple[bytes, list[int]]:
    data = b""
    values: list[int] = []
    for s in seqs:
        v = [(s * n + i) % 2000 for i in range(n)]
        values += v
        data += encode_frame(s & 0xFFFF, v, "N" if s % 4 == 0 else None, 3)
    return data, values


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "ttyECG")
    yield p
    for fd in (p.master, p.slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_pty_frames_survive_corruption_gaps_and_unplug(pty: Pty) -> None:
    url = f"serial://{pty.link}?baud=921600&gain=100&baseline=1000&idle=2.5&chunk=0.05&backoff=0.02"
    src = open_source(url, target_fs=None)
    assert isinstance(src, SerialSource)
    first, v1 = _frames(range(0, 40))
    bad = bytearray(encode_frame(40, [1] * 10))
    bad[9] ^= 0xFF
    second, v2 = _frames(range(43, 60))  # 40 corrupt, 41 and 42 lost: one gap of 3 frames
    tail, v3 = _frames(range(500, 520))  # after the replug the device restarts its numbering
    result: list[Chunk] = []

    def consume() -> None:
        result.extend(_collect(src))

    with src:
        reader = threading.Thread(target=consume, name="reader")
        reader.start()
        pty.write(first + b"\x00garbage\xff" + bytes(bad) + second + encode_frame(60, [5] * 10)[:9])
        _wait(lambda: src.counters.frames == 57)
        time.sleep(0.3)  # let the reader take the unfinished frame too
        pty.unplug()
        _wait(lambda: src.counters.read_errors >= 1)
        time.sleep(0.1)  # a few reopen attempts fail while nothing is plugged in
        pty.plug()
        _wait(lambda: src.counters.reopens == 1)
        pty.write(tail)
        reader.join(timeout=20)
        assert not reader.is_alive()
    c = src.counters
    assert c.frames == 40 + 17 + 20
    assert c.crc_errors == 1
    assert c.garbage_bytes == len(b"\x00garbage\xff")
    assert c.gaps == 1 and c.lost_frames == 3
    assert c.partial_frames == 1
    assert c.reopens == 1 and c.read_errors >= 1
    # Samples in mV at their absolute positions; the gap of 3 frames is skipped, not closed up.
    got = {c.start + i: v for c in result for i, v in enumerate(c.samples)}
    expect_idx = list(range(400)) + list(range(430, 600))
    assert [got[i] for i in expect_idx] == pytest.approx([(v - 1000) / 100 for v in v1 + v2])
    after = sorted(i for i in got if i >= 600)
    assert len(after) == 200
    assert [got[i] for i in after] == pytest.approx([(v - 1000) / 100 for v in v3])
    labels = [lab for c in result for lab in c.labels]
    assert labels[:3] == [(3, "N"), (43, "N"), (83, "N")]
    assert all(c.fs == 360.0 for c in result)


def test_pty_ascii_lines(pty: Pty) -> None:
    url = f"serial://{pty.link}?format=ascii&gain=200&baseline=512&fs=250&idle=2&chunk=0.1"
    src = open_source(url)  # resampled to the model's 360 Hz
    values = (512 + 200 * np.sin(2 * np.pi * 2 * np.arange(1000) / 250)).round().astype(int)
    text = (
        "".join(f"{v}\r\n" for v in values[:500])
        + "oops\n"
        + "".join(f"{v}\n" for v in values[500:])
    )
    out: list[Chunk] = []
    with src:
        reader = threading.Thread(target=lambda: out.extend(src), name="reader")
        reader.start()
        pty.write(text.encode())
        reader.join(timeout=20)
    assert src.counters.bad_lines == 1
    assert src.counters.samples == 1000
    y = np.concatenate([c.samples for c in out])
    assert out[0].fs == 360.0
    assert abs(len(y) - 1000 * 360 / 250) < 40
    # A 2 Hz sine of 1 mV survives the resampling.
    assert np.max(np.abs(y[100:-100])) == pytest.approx(1.0, abs=0.02)


def test_loop_frames_with_corruption() -> None:
    src = open_source("loop://?idle=0.3&chunk=0.02", target_fs=None)
    assert isinstance(src, SerialSource)
    frames = [_frames(range(s, s + 1))[0] for s in range(20)]
    flipped = bytearray(frames[12])
    flipped[8] ^= 0x04
    stream = (
        b"".join(frames[:3])
        + b"\x13\x37"  # garbage between frames
        + b"".join(frames[3:5])  # frame 5 is lost: a gap
        + b"".join(frames[6:8])
        + frames[8][:15]  # frame 8 is cut short
        + b"".join(frames[9:12])
        + bytes(flipped)  # frame 12 fails its CRC
        + b"".join(frames[13:])
    )
    with src:
        src.write(stream)
        chunks = list(src)
    c = src.counters
    assert (c.frames, c.garbage_bytes, c.partial_frames, c.crc_errors) == (17, 2, 1, 1)
    assert (c.gaps, c.lost_frames) == (3, 3)
    got = {ch.start + i: round(v * 200) for ch in chunks for i, v in enumerate(ch.samples)}
    assert sorted(got) == [i for i in range(200) if i // 10 not in (5, 8, 12)]
    assert all(got[i] == i % 2000 for i in got)
    assert [lab for ch in chunks for lab in ch.labels] == [(3, "N"), (43, "N"), (163, "N")]


def test_loop_unplug_is_survived() -> None:
    src = open_source("loop://?idle=0.5&backoff=0.01", target_fs=None)
    assert isinstance(src, SerialSource)
    out: list[Chunk] = []
    with src:
        it = iter(src)
        src.write(encode_frame(0, [1, 2, 3]))
        out.append(next(it))
        src._port.close()  # the port disappears under the reader
        ch = next(it, None)
        assert ch is None  # nothing more arrives on the fresh loop port: idle ends the stream
    assert src.counters.read_errors == 1 and src.counters.reopens == 1
    assert out[0].samples.tolist() == pytest.approx([0.005, 0.01, 0.015])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("serial:///dev/x?format=hex", "format must be one of"),
        ("serial:///dev/x?speed=2", "unknown parameter"),
        ("serial:///dev/x?baud=fast", "baud must be a number"),
        ("serial:///dev/x?gain=0", "gain must not be zero"),
        ("serial://", "expected serial:///dev/DEVICE"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(url)


@pytest.mark.mitdb
def test_a_real_record_over_a_pty_gives_the_beats_of_the_record(pty: Pty, mitdb: Path) -> None:
    from smfel.sensors import BeatExtractor, is_beat, read_annotations, read_record

    rec = read_record(mitdb, "119")
    col = rec.lead_index("MLII")
    n = 360 * 40
    digital = rec.digital[:n, col]
    ann = read_annotations(mitdb, "119")
    beats_at = {
        int(s): sym
        for s, sym in zip(ann.samples, ann.symbols, strict=True)
        if s < n and is_beat(sym)
    }
    data = b""
    for seq, a in enumerate(range(0, n, 18)):
        lab = next(((s - a, beats_at[s]) for s in range(a, a + 18) if s in beats_at), None)
        data += encode_frame(seq & 0xFFFF, digital[a : a + 18], *(lab[::-1] if lab else (None,)))
    url = f"serial://{pty.link}?baud=921600&gain=200&baseline=1024&idle=2&chunk=0.2"
    ex = BeatExtractor()
    beats = []
    with open_source(url) as src:
        writer = threading.Thread(target=pty.write, args=(data,), name="writer")
        writer.start()
        for chunk in src:
            beats += ex.push(chunk)
        writer.join()
    beats += ex.flush()
    direct = BeatExtractor()
    labels = tuple(sorted(beats_at.items()))
    expect = direct.push(Chunk(0, 360.0, rec.mv("MLII")[:n], labels)) + direct.flush()
    assert src.counters.frames == n // 18 and src.counters.crc_errors == 0
    assert [b.sample for b in beats] == [b.sample for b in expect]
    assert [b.symbol for b in beats] == [b.symbol for b in expect]
    assert np.array_equal(np.array([b.features for b in beats]), [b.features for b in expect])
