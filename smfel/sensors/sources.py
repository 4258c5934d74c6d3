"""``open_source(url)``: one way to open any ECG source, through an explicit scheme registry.

=============================================  ==========================================
URL                                            source
=============================================  ==========================================
``serial:///dev/ttyACM0?baud=115200&format=``  a serial device (pyserial); ``frame`` or
``frame|ascii&fs=360&gain=200&baseline=0``     ``ascii`` (see :mod:`smfel.sensors.framing`)
``loop://?...``, ``socket://HOST:PORT?...``    the same through pyserial's URL handlers
``wfdb://DIR/RECORD?lead=MLII&speed=1``        WFDB replay with reference labels;
``&start=S&end=S``                             ``speed=0`` or ``fast``: as fast as possible
``synthetic://?hr=72&pvc=0.05&apc=0.02``       labelled synthetic ECG (the demo default)
``&noise=0.05&seed=1&duration=S&speed=1``
=============================================  ==========================================

Every source also takes ``chunk=SECONDS``. Serial sources take ``idle=SECONDS`` (end the stream
after that long without a byte; default never), ``backoff`` and ``backoff_max`` (reopen
delays). Chunks come out at ``target_fs`` (the model's rate by default): a source whose rate
differs is resampled on the way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from smfel.sensors.chunk import MODEL_FS
from smfel.sensors.errors import SourceError
from smfel.sensors.replay import WfdbSource
from smfel.sensors.serialport import SerialSource
from smfel.sensors.source import Resampled, Source
from smfel.sensors.synthetic import SyntheticSource

__all__ = ["SCHEMES", "open_source"]


class _Params:
    """Typed access to a URL's query, refusing unknown or malformed parameters."""

    def __init__(self, url: str, query: str, allowed: set[str]) -> None:
        self.url = url
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as err:
            raise SourceError(url, f"malformed query: {err}") from err
        self.values = dict(pairs)
        unknown = sorted(set(self.values) - allowed)
        if unknown:
            raise SourceError(
                url, f"unknown parameter(s) {unknown}; expected some of {sorted(allowed)}"
            )

    def num(self, name: str, default: float | None, *, minimum: float = 0.0) -> float | None:
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            v = float(raw)
        except ValueError:
            raise SourceError(self.url, f"{name} must be a number, got {raw!r}") from None
        if not (math.isfinite(v) and v >= minimum):
            raise SourceError(self.url, f"{name} must be a finite number >= {minimum}, got {raw!r}")
        return v

    def req(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        v = self.num(name, default, minimum=minimum)
        assert v is not None
        return v

    def speed(self) -> float:
        raw = self.values.get("speed", "1")
        if raw in ("fast", "max"):
            return 0.0
        return self.req("speed", 1.0)

    def text(self, name: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        v = self.values.get(name, default)
        if choices is not None and v not in choices:
            raise SourceError(self.url, f"{name} must be one of {list(choices)}, got {v!r}")
        return v


_SERIAL_KEYS = {
    "baud",
    "format",
    "fs",
    "gain",
    "baseline",
    "chunk",
    "idle",
    "backoff",
    "backoff_max",
}


def _serial(url: str, port_url: str, p: _Params) -> Source:
    fmt = p.text("format", "frame", ("frame", "ascii"))
    gain = p.req("gain", 200.0)
    if gain == 0:
        raise SourceError(url, "gain must not be zero")
    return SerialSource(
        url,
        port_url,
        baud=int(p.req("baud", 115200, minimum=1)),
        fmt="ascii" if fmt == "ascii" else "frame",
        fs=p.req("fs", 360.0, minimum=1.0),
        gain=gain,
        baseline=p.req("baseline", 0.0, minimum=float("-inf")),
        chunk_seconds=p.req("chunk", 0.1, minimum=0.001),
        idle=p.num("idle", None),
        backoff=p.req("backoff", 0.05, minimum=0.001),
        backoff_max=p.req("backoff_max", 5.0, minimum=0.001),
    )


def _open_serial(url: str) -> Source:
    parts = urlsplit(url)
    p = _Params(url, parts.query, _SERIAL_KEYS)
    if parts.scheme == "serial":
        if not parts.path:
            raise SourceError(url, "expected serial:///dev/DEVICE")
        return _serial(url, parts.path, p)
    return _serial(url, f"{parts.scheme}://{parts.netloc}{parts.path}", p)


def _open_wfdb(url: str) -> Source:
    parts = urlsplit(url)
    p = _Params(url, parts.query, {"lead", "speed", "start", "end", "chunk"})
    path = parts.netloc + parts.path
    if not path or path.endswith("/"):
        raise SourceError(url, "expected wfdb://DIR/RECORD")
    start = p.req("start", 0.0)
    end = p.num("end", None)
    if end is not None and end <= start:
        raise SourceError(url, f"end ({end}) must be after start ({start})")
    return WfdbSource(
        url,
        path,
        lead=p.text("lead", "MLII"),
        speed=p.speed(),
        start=start,
        end=end,
        chunk_seconds=p.req("chunk", 0.5, minimum=0.001),
    )


def _open_synthetic(url: str) -> Source:
    parts = urlsplit(url)
    keys = {"hr", "pvc", "apc", "noise", "seed", "duration", "speed", "fs", "chunk"}
    p = _Params(url, parts.query, keys)
    hr = p.req("hr", 72.0, minimum=20.0)
    if hr > 250:
        raise SourceError(url, f"hr must be in 20..250 beats per minute, got {hr}")
    pvc, apc = p.req("pvc", 0.05), p.req("apc", 0.02)
    if pvc + apc > 0.5:
        raise SourceError(url, "pvc + apc must be at most 0.5")
    return SyntheticSource(
        url,
        hr=hr,
        pvc=pvc,
        apc=apc,
        noise=p.req("noise", 0.05),
        seed=int(p.req("seed", 1.0)),
        duration=p.num("duration", None),
        speed=p.speed(),
        fs=p.req("fs", 360.0, minimum=50.0),
        chunk_seconds=p.req("chunk", 0.5, minimum=0.001),
    )


SCHEMES: dict[str, Callable[[str], Source]] = {
    "serial": _open_serial,
    "loop": _open_serial,
    "socket": _open_serial,
    "wfdb": _open_wfdb,
    "synthetic": _open_synthetic,
}


def open_source(url: str, *, target_fs: float | None = MODEL_FS) -> Source:
    """The source a URL names, unopened (use it as a context manager or iterate it).

    ``target_fs`` is the rate the chunks come out at (resampled when the source's own rate
    differs); ``None`` keeps the source's own rate.
    """
    scheme = urlsplit(url).scheme
    factory = SCHEMES.get(scheme)
    if factory is None:
        raise SourceError(url, f"unknown scheme {scheme!r}; expected one of {sorted(SCHEMES)}")
    src = factory(url)
    return src if target_fs is None else Resampled(src, target_fs)
