"""``smfel-sim qrs``: sensitivity and positive predictivity of the streaming QRS detector.

Beat-by-beat comparison in the manner of ANSI/AAMI EC57 (WFDB ``bxb``): every reference beat
annotation of the record is compared with the detector's R peaks on one lead (MLII by default)
with a 150 ms match window, over the whole record. Detections and reference beats inside
ventricular flutter episodes (between ``[`` and ``]`` annotations, record 207 of MIT-BIH) are
left out, as EC57 excludes ventricular fibrillation and flutter from QRS detection statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.sensors import (
    Chunk,
    QRSDetector,
    is_beat,
    match_beats,
    missing_records,
    read_annotations,
    read_record,
)
from smfel.sensors.errors import RecordError

__all__ = ["MATCH_WINDOW", "detect_record", "format_qrs_table", "qrs_evaluation"]

MATCH_WINDOW = 0.150  # seconds


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _outside(samples: NDArray[np.int64], episodes: list[tuple[int, int]]) -> NDArray[np.int64]:
    keep = np.ones(len(samples), dtype=bool)
    for lo, hi in episodes:
        keep &= ~((samples >= lo) & (samples <= hi))
    return samples[keep]


def detect_record(data_dir: str | Path, record: str, lead: str = "MLII") -> NDArray[np.int64]:
    """R peaks of a whole record found by the streaming detector (one chunk, then flush)."""
    rec = read_record(data_dir, record)
    det = QRSDetector(rec.fs)
    chunk = Chunk(0, rec.fs, rec.mv(lead))
    _, peaks = det.push(chunk.samples)
    peaks += det.flush()
    return np.asarray(sorted(peaks), dtype=np.int64)


def _record_counts(data_dir: str | Path, record: str, lead: str) -> dict[str, Any]:
    rec_fs = read_record(data_dir, record).fs
    ann = read_annotations(data_dir, record)
    episodes: list[tuple[int, int]] = []
    onset: int | None = None
    for s, sym in zip(ann.samples.tolist(), ann.symbols, strict=True):
        if sym == "[":
            onset = s
        elif sym == "]" and onset is not None:
            episodes.append((onset, s))
            onset = None
    if onset is not None:
        episodes.append((onset, 1 << 62))
    ref = np.array(
        [s for s, sym in zip(ann.samples.tolist(), ann.symbols, strict=True) if is_beat(sym)],
        dtype=np.int64,
    )
    det = detect_record(data_dir, record, lead)
    m = match_beats(_outside(ref, episodes), _outside(det, episodes), round(MATCH_WINDOW * rec_fs))
    return {"se": _ratio(m.tp, m.tp + m.fn), "ppv": _ratio(m.tp, m.tp + m.fp),
            "tp": m.tp, "fp": m.fp, "fn": m.fn}  # fmt: skip


def qrs_evaluation(
    data_dir: str | Path, records: Sequence[str], lead: str = "MLII"
) -> dict[str, Any]:
    """``{"records": {R: {se, ppv, tp, fp, fn}}, "total": {...}}`` over ``records``."""
    missing = missing_records(data_dir, records)
    if missing:
        raise RecordError(str(data_dir), f"records not found: {', '.join(missing)}")
    per = {r: _record_counts(data_dir, r, lead) for r in records}
    tp = sum(v["tp"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    total = {"se": _ratio(tp, tp + fn), "ppv": _ratio(tp, tp + fp), "tp": tp, "fp": fp, "fn": fn}
    return {"records": per, "total": total}


def format_qrs_table(result: dict[str, Any]) -> str:
    """The per-record table the command prints."""

    def pct(v: float | None) -> str:
        return "    -  " if v is None else f"{100 * v:7.2f}"

    lines = ["record      TP     FP     FN    Se%     +P%"]
    rows = [*result["records"].items(), ("total", result["total"])]
    for name, v in rows:
        lines.append(
            f"{name:6s} {v['tp']:7d} {v['fp']:6d} {v['fn']:6d} {pct(v['se'])} {pct(v['ppv'])}"
        )
    lines.append("(150 ms match window; ventricular flutter episodes excluded, as in EC57)")
    return "\n".join(lines)
