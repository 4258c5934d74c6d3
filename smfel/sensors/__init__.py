"""ECG sources, filtering, streaming QRS detection and beat features (knows nothing of learning).

Data flow on a device: ``open_source(url)`` yields :class:`Chunk` objects at :data:`MODEL_FS`;
:class:`BeatExtractor` filters them, detects R peaks and turns every beat into a
:class:`Beat` with a feature vector of length :data:`N_FEATURES` and, when the stream carries
reference labels, its WFDB symbol and AAMI class.
"""

from smfel.sensors.aami import AAMI_CLASSES, BEAT_SYMBOLS, DS1, DS2, aami_class, is_beat
from smfel.sensors.beats import FEATURE_NAMES, N_FEATURES, Beat, BeatExtractor
from smfel.sensors.chunk import MODEL_FS, Chunk
from smfel.sensors.errors import RecordError, SensorError, SourceError
from smfel.sensors.framing import (
    AsciiDecoder,
    Frame,
    FrameDecoder,
    SourceCounters,
    crc16_ccitt,
    encode_frame,
)
from smfel.sensors.match import Match, match_beats
from smfel.sensors.qrs import QRSDetector
from smfel.sensors.records import RecordBeats, load_record_beats, missing_records
from smfel.sensors.resample import Resampler
from smfel.sensors.source import Source
from smfel.sensors.sources import SCHEMES, open_source
from smfel.sensors.wfdbio import Annotations, Record, read_annotations, read_record

__all__ = [
    "AAMI_CLASSES",
    "BEAT_SYMBOLS",
    "DS1",
    "DS2",
    "FEATURE_NAMES",
    "MODEL_FS",
    "N_FEATURES",
    "SCHEMES",
    "Annotations",
    "AsciiDecoder",
    "Beat",
    "BeatExtractor",
    "Chunk",
    "Frame",
    "FrameDecoder",
    "Match",
    "QRSDetector",
    "Record",
    "RecordBeats",
    "RecordError",
    "Resampler",
    "SensorError",
    "Source",
    "SourceCounters",
    "SourceError",
    "aami_class",
    "crc16_ccitt",
    "encode_frame",
    "is_beat",
    "load_record_beats",
    "match_beats",
    "missing_records",
    "open_source",
    "read_annotations",
    "read_record",
]
