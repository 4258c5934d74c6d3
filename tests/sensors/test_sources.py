"""Synthetic and WFDB replay sources opened by URL, and streaming resampling."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from smfel.sensors import Chunk, Resampler, SourceError, open_source, read_annotations


def _all(url: str, **kw: float | None) -> tuple[list[Chunk], float]:
    with open_source(url, **kw) as src:
        return list(src), src.fs


@pytest.mark.device
def test_synthetic_ecg_is_labelled_deterministic_and_chunk_independent() -> None:
    url = "synthetic://?hr=75&pvc=0.1&apc=0.05&noise=0.02&seed=4&duration=120&speed=0"
    a, fs = _all(url + "&chunk=0.5")
    b, _ = _all(url + "&chunk=0.13")
    assert fs == 360.0
    xa = np.concatenate([c.samples for c in a])
    assert len(xa) == 120 * 360
    assert np.allclose(xa, np.concatenate([c.samples for c in b]), atol=1e-12)
    labels = [lab for c in a for lab in c.labels]
    assert labels == [lab for c in b for lab in c.labels]
    counts = Counter(sym for _, sym in labels)
    assert set(counts) == {"N", "V", "A"}
    assert 130 < sum(counts.values()) < 170  # about 75 per minute
    assert 0.05 < counts["V"] / sum(counts.values()) < 0.16
    # R peaks are where the labels say: the signal peaks within 30 ms of each label.
    for i, _ in labels[5:20]:
        seg = xa[i - 11 : i + 12]
        assert abs(int(np.argmax(np.abs(seg - np.median(seg)))) - 11) <= 11


@pytest.mark.device
def test_synthetic_resampled_from_a_250_hz_board() -> None:
    chunks, fs = _all("synthetic://?duration=20&speed=0&fs=250&seed=2")
    assert fs == 360.0
    assert all(c.fs == 360.0 for c in chunks)
    n = sum(len(c) for c in chunks)
    assert abs(n - 20 * 360) <= 36
    native, _ = _all("synthetic://?duration=20&speed=0&fs=250&seed=2", target_fs=None)
    assert native[0].fs == 250.0
    # Labels move with the signal: same beats, indices rescaled plus the filter delay.
    la = [i for c in native for i, _ in c.labels]
    lb = [i for c in chunks for i, _ in c.labels]
    assert len(la) == len(lb)
    assert all(abs(j - i * 360 / 250) < 20 for i, j in zip(la, lb, strict=True))


@pytest.mark.device
def test_resampler_is_chunk_invariant() -> None:
    x = np.random.default_rng(0).normal(size=5000)
    whole = Resampler(500.0, 360.0).push(Chunk(0, 500.0, x)).samples
    r = Resampler(500.0, 360.0)
    cuts = [0, 1, 2, 77, 1000, 1001, 4999, 5000]
    parts = [r.push(Chunk(a, 500.0, x[a:b])).samples for a, b in itertools.pairwise(cuts)]
    assert np.array_equal(whole, np.concatenate(parts))


@pytest.mark.device
def test_real_time_pacing() -> None:
    t0 = time.monotonic()
    chunks, _ = _all("synthetic://?duration=0.5&speed=2&chunk=0.1")
    assert sum(len(c) for c in chunks) == 180
    assert time.monotonic() - t0 >= 0.2  # half a second of signal at twice real time


@pytest.mark.device
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("synthetic://?hr=500", "hr must be in 20..250"),
        ("synthetic://?pvc=0.4&apc=0.3", "pvc \\+ apc"),
        ("synthetic://?seed=x", "seed must be a number"),
        ("synthetic://?noise=-1", "noise must be a finite number"),
        ("wfdb://", "expected wfdb://DIR/RECORD"),
        ("wfdb:///data/101?start=10&end=5", "end \\(5.0\\) must be after start"),
        ("wfdb:///data/101?speed=slow", "speed must be a number"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(url)


@pytest.mark.mitdb
def test_wfdb_replay_of_part_of_a_record(mitdb: Path) -> None:
    chunks, fs = _all(f"wfdb://{mitdb}/114?lead=MLII&speed=fast&start=60&end=120&chunk=0.7")
    assert fs == 360.0
    assert chunks[0].start == 60 * 360 and chunks[-1].end == 120 * 360
    assert sum(len(c) for c in chunks) == 60 * 360
    ann = read_annotations(mitdb, "114")
    expect = [
        (int(s), sym)
        for s, sym in zip(ann.samples, ann.symbols, strict=True)
        if 60 * 360 <= s < 120 * 360 and sym not in '+~|"x!'
    ]
    assert [lab for c in chunks for lab in c.labels] == expect
    # Lead chosen by name: MLII is the second column of record 114.
    from smfel.sensors import read_record

    rec = read_record(mitdb, "114")
    assert np.array_equal(chunks[0].samples, rec.mv("MLII")[60 * 360 : 60 * 360 + 252])
    # Chunks are stamped with wall-clock times one sample period apart.
    assert chunks[1].t0 - chunks[0].t0 == pytest.approx(252 / 360)
