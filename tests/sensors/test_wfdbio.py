"""The WFDB reader against the published facts of the MIT-BIH files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from smfel.sensors import (
    DS1,
    RecordError,
    aami_class,
    is_beat,
    read_annotations,
    read_record,
)
from smfel.sensors.wfdbio import SignalFile, read_header

pytestmark = pytest.mark.mitdb


def test_record_shape_rate_and_names(mitdb: Path) -> None:
    rec = read_record(mitdb, "101")
    assert rec.fs == 360.0
    assert rec.digital.shape == (650000, 2)
    assert rec.names == ("MLII", "V1")
    # 11-bit samples around the ADC zero of 1024.
    assert rec.digital.min() >= 0 and rec.digital.max() <= 2047
    mv = rec.mv("MLII")
    assert mv[0] == pytest.approx((955 - 1024) / 200)


def test_record_114_has_its_leads_swapped(mitdb: Path) -> None:
    rec = read_record(mitdb, "114")
    assert rec.names == ("V5", "MLII")
    assert rec.lead_index("MLII") == 1
    assert rec.mv("MLII")[0] == pytest.approx((1027 - 1024) / 200)
    with pytest.raises(RecordError, match="no signal named 'V1'"):
        rec.mv("V1")


def test_annotation_counts_match_the_database_totals(mitdb: Path) -> None:
    per_class: Counter[str] = Counter()
    raw: Counter[str] = Counter()
    for r in DS1:
        ann = read_annotations(mitdb, r)
        assert (np.diff(ann.samples) >= 0).all()
        beats = [s for s in ann.symbols if is_beat(s)]
        raw.update(beats)
        per_class.update(c for s in beats if (c := aami_class(s)) is not None)
    # The DS1 totals of de Chazal et al. (2004) and the folder's README.
    assert per_class == {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8}
    assert raw["A"] == 810 and raw["a"] == 100 and raw["E"] == 105 and raw["j"] == 16


def test_record_207_marks_its_flutter_episodes(mitdb: Path) -> None:
    ann = read_annotations(mitdb, "207")
    assert ann.symbols.count("[") == ann.symbols.count("]") > 0
    assert "(VFL" in ann.aux


def test_a_corrupted_signal_file_is_refused(mitdb: Path, tmp_path: Path) -> None:
    for ext in ("hea", "atr"):
        (tmp_path / f"101.{ext}").write_bytes((mitdb / f"101.{ext}").read_bytes())
    data = bytearray((mitdb / "101.dat").read_bytes())
    data[3000] ^= 0x01
    (tmp_path / "101.dat").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="checksum"):
        read_record(tmp_path, "101")
    (tmp_path / "101.dat").write_bytes(bytes(data[:1000]))
    with pytest.raises(RecordError, match="bytes"):
        read_record(tmp_path, "101")


def test_signal_file_reads_any_span_as_the_whole_record(mitdb: Path) -> None:
    rec = read_record(mitdb, "114")
    with SignalFile(mitdb, "114") as f:
        assert len(f) == len(rec.digital)
        # Odd and even starts and ends cut format 212's three-byte pairs everywhere.
        for a, b in [(0, 1), (1, 2), (7, 300), (299, 301), (649_990, 650_000), (10, 10)]:
            np.testing.assert_array_equal(f.frames(a, b), rec.digital[a:b])
            np.testing.assert_array_equal(f.mv("MLII", a, b), rec.mv("MLII")[a:b])
        assert f.frames(649_999, 700_000).shape == (1, 2)
        with pytest.raises(RecordError, match="no signal named 'V1'"):
            f.mv("V1", 0, 1)
    with pytest.raises(RecordError, match="closed"):
        f.frames(0, 1)


def test_signal_file_checks_the_whole_file_on_opening(mitdb: Path, tmp_path: Path) -> None:
    (tmp_path / "101.hea").write_bytes((mitdb / "101.hea").read_bytes())
    data = bytearray((mitdb / "101.dat").read_bytes())
    data[-3000] ^= 0x01  # near the end: past the first verification block
    (tmp_path / "101.dat").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="checksum"):
        SignalFile(tmp_path, "101")
    f = SignalFile(tmp_path, "101", verify=False)
    f.close()


@pytest.mark.device
def test_header_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "x.hea").write_text("x 2 360 10\nx.dat 212 200 11 1024\n", encoding="ascii")
    with pytest.raises(RecordError, match="header names 2 signals"):
        read_header(tmp_path, "x")
    with pytest.raises(RecordError, match="cannot read header"):
        read_header(tmp_path, "missing")
