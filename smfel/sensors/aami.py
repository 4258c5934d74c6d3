"""AAMI heartbeat classes (ANSI/AAMI EC57) and the de Chazal inter-patient record split.

de Chazal, O'Dwyer and Reilly, "Automatic classification of heartbeats using ECG morphology and
heartbeat interval features", IEEE Trans. Biomed. Eng. 51(7):1196-1206 (2004): DS1 is the
training set and DS2 the test set; the four paced records (102, 104, 107, 217) are in neither.
"""

from __future__ import annotations

__all__ = ["AAMI_CLASSES", "BEAT_SYMBOLS", "DS1", "DS2", "aami_class", "is_beat"]

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

_MAP: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}

# Every WFDB annotation symbol that marks a QRS complex (the beat labels of the MIT format);
# "B", "r", "n" and "?" never occur in MIT-BIH but are beats in other databases.
BEAT_SYMBOLS: frozenset[str] = frozenset("NLRBAaJSVrFejnE/fQ?")

DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip


def aami_class(symbol: str | None) -> str | None:
    """The AAMI class of a WFDB beat symbol, or ``None`` for a non-beat annotation."""
    if symbol is None:
        return None
    return _MAP.get(symbol)


def is_beat(symbol: str) -> bool:
    """Whether a WFDB annotation symbol marks a QRS complex."""
    return symbol in BEAT_SYMBOLS
