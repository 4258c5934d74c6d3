"""Filter, QRS detector and beat extractor: identical beats for any chunking, bounded state."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smfel.sensors import (
    N_FEATURES,
    Beat,
    BeatExtractor,
    Chunk,
    match_beats,
    open_source,
    read_annotations,
    read_record,
)

_SYN = "synthetic://?hr=80&pvc=0.08&apc=0.05&noise=0.03&seed=7&duration=90&speed=0&chunk=1000"


def _signal(url: str) -> tuple[np.ndarray, tuple[tuple[int, str], ...]]:
    with open_source(url) as src:
        chunks = list(src)
    x = np.concatenate([c.samples for c in chunks])
    return x, tuple(lab for c in chunks for lab in c.labels)


_X, _LABELS = _signal(_SYN)


def _run(
    x: np.ndarray, labels: tuple[tuple[int, str], ...], cuts: list[int], **kw: str
) -> list[Beat]:
    ex = BeatExtractor(**kw)  # type: ignore[arg-type]
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(x))), len(x)]
    out: list[Beat] = []
    for a, b in itertools.pairwise(bounds):
        lab = tuple(lv for lv in labels if a <= lv[0] < b)
        out += ex.push(Chunk(a, 360.0, x[a:b], lab, 1000.0 + a / 360.0))
    return out + ex.flush()


def _same(a: list[Beat], b: list[Beat]) -> None:
    assert [x.sample for x in a] == [y.sample for y in b]
    assert [x.symbol for x in a] == [y.symbol for y in b]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.features, y.features)
        assert (x.rr_prev, x.rr_next, x.time, x.label) == (y.rr_prev, y.rr_next, y.time, y.label)


_WHOLE = _run(_X, _LABELS, [])


@pytest.mark.device
def test_synthetic_beats_are_found_and_labelled() -> None:
    beats = _WHOLE
    assert all(b.features.shape == (N_FEATURES,) and np.isfinite(b.features).all() for b in beats)
    ref = np.array([i for i, _ in _LABELS])
    m = match_beats(ref, [b.sample for b in beats], 54)
    assert m.fn <= 1 and m.fp == 0  # the first beat has no previous RR and is not emitted
    assert {b.label for b in beats} == {"N", "S", "V"}
    assert all(b.symbol is not None for b in beats)
    v = [b for b in beats if b.label == "V"]
    n = [b for b in beats if b.label == "N"]
    # Premature beats come early: their previous RR is shorter than the normal beats'.
    assert np.mean([b.rr_prev for b in v]) < 0.8 * np.mean([b.rr_prev for b in n])
    assert beats[0].time == pytest.approx(1000.0 + beats[0].sample / 360.0)


@pytest.mark.device
@given(st.lists(st.integers(1, len(_X) - 1), max_size=40), st.integers(1, 2000))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_chunking_gives_identical_beats(cuts: list[int], step: int) -> None:
    cuts = cuts + list(range(step * 7, step * 40, step))
    _same(_run(_X, _LABELS, cuts), _WHOLE)


@pytest.mark.device
def test_one_sample_at_a_time_and_bounded_state() -> None:
    x, labels = _X[: 360 * 12], tuple(lab for lab in _LABELS if lab[0] < 360 * 12)
    ex = BeatExtractor()
    beats: list[Beat] = []
    sizes = []
    for i in range(len(x)):
        lab = tuple(lv for lv in labels if lv[0] == i)
        beats += ex.push(Chunk(i, 360.0, x[i : i + 1], lab, 1000.0 + i / 360.0))
        sizes.append(len(ex._buf) + len(ex._det._m) if ex._det is not None else 0)
    beats += ex.flush()
    _same(beats, _run(x, labels, []))
    # Buffers stay within a few seconds of signal, however long the stream.
    assert max(sizes) < 8 * 360


@pytest.mark.device
def test_annotated_mode_uses_the_labels_as_r_peaks() -> None:
    beats = _run(_X, _LABELS, [1234, 5000], peaks="labels")
    assert [b.sample for b in beats] == [i for i, _ in _LABELS][1:]
    _same(beats, _run(_X, _LABELS, [], peaks="labels"))


@pytest.mark.device
def test_a_gap_restarts_the_stream() -> None:
    ex = BeatExtractor()
    first = ex.push(Chunk(0, 360.0, _X[:7200]))
    before = first + ex.push(Chunk(20_000, 360.0, _X[7200:14400]))
    after = ex.flush()
    samples = [b.sample for b in before + after]
    assert samples == sorted(samples)
    assert any(s < 7200 for s in samples) and any(s >= 20_000 for s in samples)
    with pytest.raises(ValueError, match="before"):
        ex.push(Chunk(0, 360.0, _X[:10]))


@pytest.mark.mitdb
@given(st.lists(st.integers(1, 360 * 120 - 1), min_size=1, max_size=30))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_chunking_invariance_on_a_hard_record(mitdb: Path, cuts: list[int]) -> None:
    # Record 208: frequent PVCs, couplets and fusion beats.
    rec = read_record(mitdb, "208")
    ann = read_annotations(mitdb, "208")
    x = rec.mv("MLII")[: 360 * 120]
    labels = tuple(
        (int(s), sym) for s, sym in zip(ann.samples, ann.symbols, strict=True) if s < len(x)
        and sym in "NVFAQ"
    )  # fmt: skip
    _same(_run(x, labels, cuts), _run(x, labels, []))
