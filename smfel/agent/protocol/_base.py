"""What every signed envelope shares: canonical bytes, signature, id, equality (internal).

The signature is Ed25519 (RFC 8032) over ``canonical_json`` of the envelope's JSON object
without its ``signature`` member; the wire bytes are ``canonical_json`` of the whole object.
Both are written by ``_canonical.canonical_bytes``, the same bytes without the escape scan of
the arrays' base64 (a quarter of what signing an update cost).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id, sign_bytes, verify_bytes
from smfel.agent.protocol import _fields as f
from smfel.agent.protocol._canonical import canonical_bytes, json_string
from smfel.agent.protocol.limits import Limits
from smfel.agent.protocol.reasons import Reason, Rejected

__all__ = ["SignedEnvelope"]


class SignedEnvelope:
    """Mixin of the envelope dataclasses; subclasses define ``SCHEMA``, ``FIELDS``, ``body``."""

    __slots__ = ()
    SCHEMA: ClassVar[str]
    #: every JSON member of the envelope, ``schema`` and ``signature`` included.
    FIELDS: ClassVar[frozenset[str]]
    key_id: str
    nonce: str
    signature: str
    timestamp: str

    def body(self) -> dict[str, Any]:
        """The JSON object without ``signature``: exactly what is signed."""
        raise NotImplementedError

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], limits: Limits) -> SignedEnvelope:
        """Build from a decoded JSON object whose schema and field set were checked."""
        raise NotImplementedError

    def array_payload(self) -> tuple[str, Mapping[str, NDArray[Any]]] | None:
        """(weights_hash, arrays) for envelopes that carry arrays, else ``None``."""
        return None

    def check_values(self, limits: Limits) -> None:
        """Checks of values beyond their format (bounds, beat counts); none by default."""

    def to_dict(self) -> dict[str, Any]:
        d = self.body()
        d["signature"] = self.signature
        return d

    def signed_bytes(self) -> bytes:
        return canonical_bytes(self.body(), arrays_checked=True)

    def to_bytes(self) -> bytes:
        """The wire encoding: canonical JSON of the whole envelope."""
        return canonical_bytes(self.to_dict(), arrays_checked=True)

    @property
    def envelope_id(self) -> str:
        """``sha256:<hex>`` of the wire bytes: the id receivers deduplicate by."""
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def time(self) -> dt.datetime:
        return f.parse_time(self.timestamp)

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        """True when ``public_key`` is the key named by ``key_id`` and the signature holds."""
        return key_id(public_key) == self.key_id and verify_bytes(
            public_key, self.signed_bytes(), self.signature
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, SignedEnvelope)
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())


def sign_body(key: Ed25519PrivateKey, body: dict[str, Any]) -> str:
    """Signature of ``body`` (which must already carry the signer's ``key_id``)."""
    if body.get("key_id") != key_id(key):
        raise ValueError("the body's key_id is not the signing key's id")
    return sign_bytes(key, canonical_bytes(body, arrays_checked=True))


_E = TypeVar("_E", bound=SignedEnvelope)

#: A well-formed signature that signs nothing: the unsigned envelope is built with it so that
#: its ``body()`` (which leaves the signature out) can be signed.
_PLACEHOLDER_SIGNATURE = "A" * 86 + "=="


def signed(cls: type[_E], key: Ed25519PrivateKey, fields: dict[str, Any]) -> _E:
    """A new envelope of ``cls`` with ``fields``, signed by ``key``."""
    make: Any = cls  # the envelope dataclasses take their fields as keywords
    unsigned: _E = make(**fields, signature=_PLACEHOLDER_SIGNATURE)
    result: _E = make(**fields, signature=sign_body(key, unsigned.body()))
    return result


def stamp(now: dt.datetime | None, nonce: str | None) -> tuple[str, str]:
    """(timestamp, nonce) for a new envelope."""
    ts = f.format_time(f.now_utc(now))
    n = (
        f.new_nonce()
        if nonce is None
        else f.check_pattern(nonce, f.NONCE, "32 hex digits", "nonce")
    )
    return ts, n


#: (header bytes, the little-endian dtype of each array in name order) of one layout.
_Header = tuple[bytes, tuple[np.dtype[Any], ...]]
#: Headers by layout, (name, dtype, shape) of every array in name order: a receiver hashes
#: arrays of the same few layouts all day. Shapes come from the network, so the table is
#: emptied when it reaches :data:`_MAX_HEADERS` entries.
_HEADERS: dict[tuple[tuple[str, np.dtype[Any], tuple[int, ...]], ...], _Header] = {}
_MAX_HEADERS = 256


def _header(layout: tuple[tuple[str, np.dtype[Any], tuple[int, ...]], ...]) -> _Header:
    """The header as ``canonical_json`` writes ``{name: {"dtype", "shape"}}``, without building
    an encoder, and each array's little-endian dtype (``"|"`` dtypes keep ``"|"``)."""
    parts: list[str] = []
    wire: list[np.dtype[Any]] = []
    for name, dtype, shape in layout:
        le = dtype.newbyteorder("<")
        dims = ",".join([int.__repr__(s) for s in shape])
        parts.append(f'{json_string(name)}:{{"dtype":{json_string(le.str)},"shape":[{dims}]}}')
        wire.append(le)
    return ("{" + ",".join(parts) + "}").encode("utf-8"), tuple(wire)


def digest(arrays: Mapping[str, NDArray[Any]]) -> str:
    """:func:`~smfel.agent.codec.arrays_digest`, hashing each array's buffer in place: the
    arrays the parser decodes are already little-endian and C-ordered, so the copy
    ``le_bytes`` makes is skipped (512 KB for one 256 x 256 ``U``). The header is written once
    per layout of the arrays (:data:`_HEADERS`)."""
    values: list[NDArray[Any]] = []
    layout: list[tuple[str, np.dtype[Any], tuple[int, ...]]] = []
    for n in sorted(arrays):
        a = arrays[n]
        values.append(a)
        layout.append((n, a.dtype, a.shape))
    key = tuple(layout)
    header = _HEADERS.get(key)
    if header is None:
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()
        header = _HEADERS[key] = _header(key)
    text, wire_dtypes = header
    h = hashlib.sha256(text)
    for a, le in zip(values, wire_dtypes):  # noqa: B905 (one dtype per array by construction)
        h.update(
            (a if a.dtype == le and a.flags.c_contiguous else np.ascontiguousarray(a, le)).data
        )
    return "sha256:" + h.hexdigest()


def check_hash(weights_hash: str, arrays: Mapping[str, NDArray[Any]]) -> None:
    got = digest(arrays)
    if got != weights_hash:
        raise Rejected(
            Reason.HASH_MISMATCH, f"weights_hash is {weights_hash}, the arrays hash to {got}"
        )
