"""The binary frame and ASCII decoders: round trips, corruption, resynchronisation, counters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smfel.sensors import AsciiDecoder, FrameDecoder, SensorError, crc16_ccitt, encode_frame

pytestmark = pytest.mark.device


def _feed(dec: FrameDecoder, data: bytes, step: int) -> list[tuple[int, list[int], object]]:
    out: list[tuple[int, list[int], object]] = []
    for i in range(0, len(data), step):
        out += [(f.seq, f.samples.tolist(), f.label) for f in dec.feed(data[i : i + step])]
    return out


def test_crc_is_ccitt_false() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1


def test_frame_layout() -> None:
    frame = encode_frame(0x0102, [1, -2], "V", 1)
    assert frame[:2] == b"\xa5\x5a"
    assert frame[2:4] == b"\x02\x01"  # sequence, little-endian
    assert frame[4] == 2 and frame[5] == 1  # count, flags
    assert frame[6:10] == b"\x01\x00\xfe\xff"  # int16 samples
    assert frame[10:12] == b"\x01V"  # label position and symbol
    assert int.from_bytes(frame[12:], "big") == crc16_ccitt(frame[2:12])


@given(
    st.lists(st.lists(st.integers(-32768, 32767), min_size=1, max_size=40), min_size=1, max_size=8),
    st.integers(1, 64),
)
@example([[0], [0], [-195, 15252, -195]], 1)  # the last frame's CRC ends with a first sync byte
@settings(max_examples=30, deadline=None)
def test_round_trip_in_any_pieces(frames: list[list[int]], step: int) -> None:
    data = b"".join(encode_frame(i, s, "N" if i % 2 else None) for i, s in enumerate(frames))
    dec = FrameDecoder()
    got = _feed(dec, data, step)
    assert [g[1] for g in got] == frames
    assert [g[2] for g in got] == [(0, "N") if i % 2 else None for i in range(len(frames))]
    c = dec.counters
    assert (c.frames, c.crc_errors, c.garbage_bytes, c.partial_frames, c.gaps) == (
        len(frames), 0, 0, 0, 0,
    )  # fmt: skip


@pytest.mark.parametrize("step", [1, 5, 1000])
def test_garbage_crc_errors_partial_frames_and_gaps_are_counted(step: int) -> None:
    bad = bytearray(encode_frame(3, [7, 7, 7]))
    bad[7] ^= 0x10  # one flipped bit in a sample
    data = (
        b"noise!"
        + encode_frame(0, [1, 2, 3], "V", 1)
        + encode_frame(1, [4, 5])[:-3]  # cut short by the next frame
        + encode_frame(2, np.arange(10))
        + bytes(bad)
        + encode_frame(6, [9])  # frames 3 (corrupt), 4 and 5 never arrive intact
        + b"\xa5"  # a lone first sync byte at the end waits for more
    )
    dec = FrameDecoder()
    got = _feed(dec, data, step)
    assert [g[0] for g in got] == [0, 2, 6]
    c = dec.counters
    assert c.garbage_bytes == len(b"noise!")
    assert c.partial_frames == 1
    assert c.crc_errors == 1
    assert c.gaps == 2 and c.lost_frames == 1 + 3
    assert c.frames == 3 and c.samples == 14


def test_frame_lost_count_is_on_the_frame() -> None:
    dec = FrameDecoder()
    frames = dec.feed(encode_frame(65535, [1]) + encode_frame(0, [2]) + encode_frame(5, [3]))
    assert [f.lost for f in frames] == [0, 0, 4]


def test_reset_counts_an_unfinished_frame_as_partial() -> None:
    dec = FrameDecoder()
    assert dec.feed(encode_frame(0, [1, 2, 3])[:-4]) == []
    dec.reset()
    assert dec.counters.partial_frames == 1
    assert [f.seq for f in dec.feed(encode_frame(9, [1]))] == [9]
    assert dec.counters.gaps == 0  # a device restarting its sequence after a reopen


@pytest.mark.parametrize(
    ("samples", "label", "message"),
    [([], None, "1..255"), (list(range(256)), None, "1..255"), ([1.5], None, "integer"),
     ([40000], None, "int16"), ([1], "VV", "one ASCII symbol")],
)  # fmt: skip
def test_encode_frame_refuses_bad_input(
    samples: list[float], label: str | None, message: str
) -> None:
    with pytest.raises(SensorError, match=message):
        encode_frame(0, samples, label)


def test_ascii_lines_with_garbage() -> None:
    dec = AsciiDecoder()
    out = dec.feed(b"512\r\n51")
    out += dec.feed(b"3\nhello\n\n-7\n" + b"9" * 40)
    out += dec.feed(b"\n600\n")
    assert out == [512, 513, -7, 600]
    assert dec.counters.bad_lines == 2
    assert dec.counters.garbage_bytes == len(b"hello\n") + 40
