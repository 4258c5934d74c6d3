"""Beats of whole WFDB records, computed by exactly the streaming code a device runs.

:func:`load_record_beats` replays a record through :class:`~smfel.sensors.beats.BeatExtractor`
in one chunk; since the extractor gives identical beats for any chunking, the features the
evaluation measures are the ones a device computes from the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.aami import is_beat
from smfel.sensors.beats import N_FEATURES, BeatExtractor
from smfel.sensors.chunk import Chunk
from smfel.sensors.errors import RecordError
from smfel.sensors.wfdbio import read_annotations, read_record

__all__ = ["RecordBeats", "load_record_beats", "missing_records"]


@dataclass(frozen=True, slots=True, eq=False)
class RecordBeats:
    """Labelled beats of one record.

    ``X`` (n, N_FEATURES) features, ``labels`` AAMI letters (N, S, V, F, Q), ``samples`` R peak
    indices, ``symbols`` the reference WFDB symbols. In ``detected`` mode only detected beats
    matched to a reference beat are kept; ``missed`` counts reference beats no detection
    matched and ``extra`` detections that matched no reference beat (both 0 when annotated).
    """

    record: str
    beats: str
    X: NDArray[np.float64]
    labels: NDArray[np.str_]
    samples: NDArray[np.int64]
    symbols: tuple[str, ...]
    missed: int
    extra: int

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, classes: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Features and class indices of the beats whose label is in ``classes``."""
        mask = np.isin(self.labels, list(classes))
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[c] for c in self.labels[mask]], dtype=np.intp)
        return self.X[mask], y


def missing_records(data_dir: str | Path, records: Sequence[str]) -> list[str]:
    """The records of ``records`` without a header, signal or annotation file in ``data_dir``."""
    d = Path(data_dir)
    return [
        r for r in records if not all((d / f"{r}.{ext}").is_file() for ext in ("hea", "dat", "atr"))
    ]


def load_record_beats(
    data_dir: str | Path,
    record: str,
    *,
    beats: Literal["annotated", "detected"] = "annotated",
    lead: str = "MLII",
) -> RecordBeats:
    """Features and AAMI labels of every beat of a record, on the given lead."""
    if beats not in ("annotated", "detected"):
        raise ValueError(f"beats must be 'annotated' or 'detected', got {beats!r}")
    rec = read_record(data_dir, record)
    if abs(rec.fs - 360.0) > 1e-9:
        raise RecordError(record, f"records must be sampled at 360 Hz, this one is at {rec.fs}")
    ann = read_annotations(data_dir, record)
    labels = tuple(
        (int(s), sym) for s, sym in zip(ann.samples, ann.symbols, strict=True) if is_beat(sym)
    )
    ex = BeatExtractor(rec.fs, peaks="labels" if beats == "annotated" else "detected")
    out = ex.push(Chunk(0, rec.fs, rec.mv(lead), labels))
    out += ex.flush()
    kept = [b for b in out if b.label is not None]
    extra = sum(1 for b in out if b.symbol is None)
    # Reference beats no detection matched. (The first beat of the record has no previous RR
    # interval: it is never emitted, and is neither kept nor counted as missed.)
    missed = ex.unmatched_labels if beats == "detected" else 0
    X = np.array([b.features for b in kept], dtype=np.float64).reshape(-1, N_FEATURES)
    return RecordBeats(
        record=record,
        beats=beats,
        X=X,
        labels=np.array([b.label for b in kept], dtype="<U1"),
        samples=np.array([b.sample for b in kept], dtype=np.int64),
        symbols=tuple(b.symbol or "" for b in kept),
        missed=missed,
        extra=extra if beats == "detected" else 0,
    )
