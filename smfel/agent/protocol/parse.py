"""The strict parser: bytes from the network -> a typed envelope, or a typed rejection.

Checks run in a fixed order (docs/protocol.md lists it), and the first one that fails decides
the :class:`Reason`:

1. size of the payload (``oversize``);
2. UTF-8 JSON object without duplicate keys or NaN/Infinity (``malformed``);
3. ``schema`` names the expected envelope and version, the member set is exact (``bad_schema``);
4. every member's type and format, array count/elements/dtypes/dims (``malformed``,
   ``oversize``, ``bad_shape``);
5. the bytes are exactly the canonical encoding (``malformed``), unless the limits allow
   otherwise;
6. ``weights_hash`` is the digest of the arrays (``hash_mismatch``);
7. with a public key: ``key_id`` names it (``unknown_key``) and the signature holds
   (``bad_signature``);
8. the timestamp is within the window (``stale_timestamp``, ``future_timestamp``);
9. values: finite arrays (``not_finite``), bounds (``out_of_bounds``), beats (``too_few_beats``).

Checks that need a registry (revoked keys, wrong round, duplicates, replayed nonces, statistics
bounds against the model) are the aggregator's; :mod:`smfel.agent.protocol.checks` has the pieces.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from smfel.agent.keys import Ed25519PublicKey, key_id, verify_bytes
from smfel.agent.protocol import _fields as f
from smfel.agent.protocol._base import SignedEnvelope, check_hash
from smfel.agent.protocol._canonical import envelope_bytes, signed_bytes_if_canonical
from smfel.agent.protocol.control import GlobalModel, LedgerCheckpoint, RoundAnnouncement
from smfel.agent.protocol.limits import DEFAULT_LIMITS, RETAINED_LIMITS, Limits
from smfel.agent.protocol.reasons import Reason, Rejected
from smfel.agent.protocol.rotation import KeyRotation
from smfel.agent.protocol.update import Update

__all__ = [
    "ENVELOPE_TYPES",
    "check_timestamp",
    "load_json",
    "parse_checkpoint",
    "parse_envelope",
    "parse_global",
    "parse_rotation",
    "parse_round",
    "parse_update",
    "verify_signature",
]

E = TypeVar("E", bound=SignedEnvelope)

ENVELOPE_TYPES: dict[str, type[SignedEnvelope]] = {
    cls.SCHEMA: cls
    for cls in (Update, RoundAnnouncement, GlobalModel, LedgerCheckpoint, KeyRotation)
}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    # A literal beyond the double range (``1e400``) reads as infinity, which JSON does not have.
    v = float(text)
    if math.isinf(v):
        raise ValueError(f"the number {text[:40]} is out of the range of a double")
    return v


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"member {k[:40]!r} appears twice")
            seen.add(k)
    return out


#: Built once: ``json.loads`` with hooks builds a decoder per call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float
)


def load_json(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Steps 1-2: a JSON object from at most ``limits.max_payload_bytes`` of UTF-8."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise Rejected(Reason.MALFORMED, f"expected bytes, got {type(data).__name__}")
    if len(data) > limits.max_payload_bytes:
        raise Rejected(
            Reason.OVERSIZE, f"{len(data)} bytes, the limit is {limits.max_payload_bytes}"
        )
    try:
        text = str(data, "utf-8")
        if text.startswith("\ufeff"):  # as json.loads: a byte order mark is not JSON
            raise ValueError("unexpected UTF-8 byte order mark")
        obj = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise Rejected(Reason.MALFORMED, f"not a UTF-8 JSON document: {err}"[:300]) from None
    if not isinstance(obj, dict):
        raise Rejected(Reason.MALFORMED, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _check_members(obj: Mapping[str, Any], cls: type[SignedEnvelope]) -> None:
    schema = obj.get("schema")
    if schema != cls.SCHEMA:
        raise Rejected(Reason.BAD_SCHEMA, f"schema must be {cls.SCHEMA!r}, got {schema!r:.60}")
    missing, unknown = cls.FIELDS - obj.keys(), obj.keys() - cls.FIELDS
    if missing or unknown:
        raise Rejected(
            Reason.BAD_SCHEMA,
            f"{cls.SCHEMA} members: missing {sorted(missing)}, unknown {sorted(unknown)[:8]}",
        )


def check_timestamp(
    envelope: SignedEnvelope, limits: Limits, now: dt.datetime | None = None
) -> None:
    """``future_timestamp`` beyond ``limits.max_skew``; ``stale_timestamp`` beyond ``max_age``."""
    t, current = envelope.time, f.now_utc(now)
    if t - current > limits.max_skew:
        raise Rejected(
            Reason.FUTURE_TIMESTAMP, f"timestamp {envelope.timestamp} is ahead of {current}"
        )
    if limits.max_age is not None and current - t > limits.max_age:
        raise Rejected(
            Reason.STALE_TIMESTAMP,
            f"timestamp {envelope.timestamp} is older than {limits.max_age} at {current}",
        )


def verify_signature(envelope: SignedEnvelope, public_key: Ed25519PublicKey) -> None:
    """``unknown_key`` unless ``key_id`` names ``public_key``; ``bad_signature`` unless valid."""
    if key_id(public_key) != envelope.key_id:
        raise Rejected(Reason.UNKNOWN_KEY, f"signed by {envelope.key_id}, not by the given key")
    if not verify_bytes(public_key, envelope.signed_bytes(), envelope.signature):
        raise Rejected(Reason.BAD_SIGNATURE, "the Ed25519 signature does not verify")


_DATA_MEMBER = b'"data":"'


def _cut_data_strings(data: bytes) -> tuple[list[memoryview], list[str], int] | None:
    """``data`` split around its arrays' ``data`` strings: the pieces between them (each up to
    and with the opening quote, so joined they spell ``"data":""``), the strings, and their
    total length; ``None`` when a string is unterminated or not ASCII."""
    view = memoryview(data)
    pieces: list[memoryview] = []
    strings: list[str] = []
    start = cut = 0
    while (i := data.find(_DATA_MEMBER, start)) >= 0:
        begin = i + len(_DATA_MEMBER)
        end = data.find(b'"', begin)
        if end < 0:
            return None
        try:
            strings.append(str(view[begin:end], "ascii"))
        except UnicodeDecodeError:
            return None
        pieces.append(view[start:begin])
        cut += end - begin
        start = end
    pieces.append(view[start:])
    return pieces, strings, cut


def _load_without_data(data: bytes, limits: Limits) -> dict[str, Any] | None:
    """The JSON object of a canonical payload whose arrays' ``data`` strings are cut out
    before the JSON scan and put back after it (the scan costs about as much per character as
    the rest of the parse put together); ``None`` when the payload is not of that shape.

    Nothing here is trusted on its own: the caller uses the object only once the canonical
    check has found ``canonical_json(obj) == data``, which makes it exactly the object
    ``load_json(data)`` gives (a canonical encoding reads back to its object), and otherwise
    parses ``data`` in full, so every refusal keeps the reason and order of the full parse.
    """
    if len(data) > limits.max_payload_bytes or (cut := _cut_data_strings(data)) is None:
        return None
    pieces, strings, _ = cut
    if not strings:
        return None
    try:
        obj = load_json(b"".join(pieces), limits)
    except Rejected:
        return None
    arrays = obj.get("arrays")
    if type(arrays) is not dict or len(arrays) != len(strings):
        return None
    for spec, text in zip(arrays.values(), strings, strict=True):
        if type(spec) is not dict or spec.get("data") != "":
            return None
        spec["data"] = text
    return obj


#: The canonical encoding of an update with its arrays' ``data`` strings cut out: every member
#: in sorted order, each value in the one spelling ``canonical_json`` writes and in the format
#: its reader accepts (strings whose characters JSON never escapes, integers without sign or
#: leading zeros and at most 16 digits, ``null`` or a number for the accuracy). Anything else,
#: including every spelling the full parse would refuse, does not match.
_INT = r"(?:0|[1-9][0-9]{0,15})"
_ARRAY = (
    r'"(?P<name>[A-Za-z_][A-Za-z0-9_]{0,31})":\{"data":"",'
    r'"dtype":"(?P<dtype><f8|<f4|<i8|<i4|\|i1|\|u1)",'
    r'"shape":\[(?P<shape>(?:' + _INT + r"(?:," + _INT + r")*)?)\]\}"
)
_ARRAY_RE = re.compile(_ARRAY)
_UNNAMED_ARRAY = re.sub(r"\(\?P<[a-z]+>", "(?:", _ARRAY)
# ``[0-9]`` and the other classes are ASCII only (unlike ``\d`` in a text pattern).
_UPDATE_SKELETON = re.compile(
    r'\{"arrays":\{(?P<arrays>' + _UNNAMED_ARRAY + r"(?:," + _UNNAMED_ARRAY + r")*)\},"
    r'"key_id":"(?P<key_id>ed25519:[0-9a-f]{32})",'
    r'"kind":"(?P<kind>beta|stats)",'
    r'"local_accuracy":(?P<local_accuracy>null|-?(?:0|[1-9][0-9]{0,24})'
    r"(?:\.[0-9]{1,24})?(?:e[+-][0-9]{1,3})?),"
    r'"model_hash":"(?P<model_hash>sha256:[0-9a-f]{64})",'
    r'"n_samples":(?P<n_samples>' + _INT + r"),"
    r'"node_id":"(?P<node_id>[A-Za-z0-9][A-Za-z0-9._-]{0,63})",'
    r'"nonce":"(?P<nonce>[0-9a-f]{32})",'
    r'"round":(?P<round>' + _INT + r"),"
    r'"schema":"smfel\.update/1"'
    r'(?P<signature_member>,"signature":"(?P<signature>[A-Za-z0-9+/]{86}==)"),'
    r'"timestamp":"(?P<timestamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}'
    r'(?:\.[0-9]{1,9})?Z)",'
    r'"weights_hash":"(?P<weights_hash>sha256:[0-9a-f]{64})"\}'
)
#: The members the skeleton spells out, in their order; the template is used only while they
#: are exactly the update's member set (a new member turns it off rather than letting it lie).
_SKELETON_MEMBERS = (
    "arrays",
    "key_id",
    "kind",
    "local_accuracy",
    "model_hash",
    "n_samples",
    "node_id",
    "nonce",
    "round",
    "schema",
    "signature",
    "timestamp",
    "weights_hash",
)
_TEMPLATE_FITS = Update.SCHEMA == "smfel.update/1" and frozenset(_SKELETON_MEMBERS) == Update.FIELDS


def _update_from_template(data: bytes, limits: Limits) -> tuple[Update, bytes] | None:
    """Steps 3-5 for an update whose bytes have the canonical layout, read without a JSON scan
    or a re-encoding; ``None`` when they do not have it (the full parse then decides).

    The arrays' ``data`` strings are cut out (as :func:`_load_without_data` does) and the rest
    must match :data:`_UPDATE_SKELETON`, which admits only the canonical spelling of each member
    in sorted order. Putting the strings back therefore gives ``canonical_json`` of the object
    built here, provided the strings themselves need no escape, which the strict base64 decoding
    of ``get_arrays`` guarantees (it refuses every character outside the alphabet). The shortest
    float spelling of the accuracy is checked against ``repr``, array names must be strictly
    increasing (sorted, no repeats), and the envelope is built by the same readers
    (``Update.from_obj``) as in the full parse; any refusal there goes back to the full parse,
    which gives the reason in the documented order. The signed bytes are the received bytes
    without the ``signature`` member, cut out where the skeleton found it.
    """
    if len(data) > limits.max_payload_bytes or (parts := _cut_data_strings(data)) is None:
        return None
    pieces, strings, cut = parts
    try:
        skeleton = str(b"".join(pieces), "ascii")
    except UnicodeDecodeError:
        return None
    m = _UPDATE_SKELETON.fullmatch(skeleton)
    if m is None:
        return None
    specs = list(_ARRAY_RE.finditer(m["arrays"]))
    if len(specs) != len(strings):
        return None
    arrays: dict[str, dict[str, Any]] = {}
    previous = ""
    for a, text in zip(specs, strings, strict=True):
        name, dtype, shape = a.group("name", "dtype", "shape")
        if name <= previous:
            return None  # not sorted, or repeated: the full parse tells which
        previous = name
        arrays[name] = {
            "data": text,
            "dtype": dtype,
            "shape": [int(s) for s in shape.split(",")] if shape else [],
        }
    key, kind, acc, model, n, node, nonce, rnd, sig, ts, wh = m.group(
        "key_id",
        "kind",
        "local_accuracy",
        "model_hash",
        "n_samples",
        "node_id",
        "nonce",
        "round",
        "signature",
        "timestamp",
        "weights_hash",
    )
    accuracy: float | None = None
    if acc != "null":
        accuracy = float(acc)
        if float.__repr__(accuracy) != acc:
            return None
    obj: dict[str, Any] = {
        "arrays": arrays,
        "key_id": key,
        "kind": kind,
        "local_accuracy": accuracy,
        "model_hash": model,
        "n_samples": int(n),
        "node_id": node,
        "nonce": nonce,
        "round": int(rnd),
        "schema": Update.SCHEMA,
        "signature": sig,
        "timestamp": ts,
        "weights_hash": wh,
    }
    try:
        env = Update.from_obj(obj, limits)
    except Rejected:
        return None
    # The signature member follows every data string, so its offset in ``data`` is its offset
    # in the skeleton plus the length of the strings cut out before it.
    sig_start, sig_end = m.start("signature_member") + cut, m.end("signature_member") + cut
    view = memoryview(data)
    return env, b"".join((view[:sig_start], view[sig_end:]))


def _read(cls: type[E], data: bytes, obj: dict[str, Any], limits: Limits) -> tuple[E, bytes]:
    """Steps 3-5: the member set, every member's format, the canonical form; the envelope and
    the bytes its signature covers."""
    _check_members(obj, cls)
    env = cls.from_obj(obj, limits)
    assert isinstance(env, cls)
    # The canonical form is checked against the received bytes piece by piece, and the signed
    # bytes are built from the same pieces. Every envelope with an ``arrays`` member reads it
    # with ``_fields.get_arrays`` in ``from_obj``, which has just succeeded, so the arrays may
    # be written without the escape scan.
    arrays_checked = "arrays" in cls.FIELDS
    try:
        if limits.require_canonical:
            signed = signed_bytes_if_canonical(data, obj, arrays_checked=arrays_checked)
        else:
            signed = envelope_bytes(obj, arrays_checked=arrays_checked)[1]
    except ValueError as err:
        signed = None
        detail = f"no canonical encoding: {err}"[:300]
    else:
        detail = "not the canonical encoding (sorted keys, no spaces, UTF-8, shortest numbers)"
    if signed is None:
        raise Rejected(
            Reason.MALFORMED,
            detail,
            node_id=getattr(env, "node_id", None),
            round=getattr(env, "round", None),
        )
    return env, signed


def _parse(
    cls: type[E],
    payload: bytes | bytearray | memoryview,
    limits: Limits,
    now: dt.datetime | None,
    public_key: Ed25519PublicKey | None,
    obj: dict[str, Any] | None = None,
) -> E:
    # Another type is refused by ``load_json`` below, with its reason.
    data = bytes(payload) if isinstance(payload, bytearray | memoryview) else payload
    read: tuple[E, bytes] | None = None
    # Updates, the envelopes a receiver sees thousands of a second, are read by their layout
    # first; the JSON scan below decides whatever the layout does not fit.
    if obj is None and cls is Update and _TEMPLATE_FITS and limits.require_canonical:
        template = _update_from_template(data, limits) if type(data) is bytes else None
        read = cast("tuple[E, bytes] | None", template)
    if read is None and obj is None and limits.require_canonical and "arrays" in cls.FIELDS:
        quick = _load_without_data(data, limits) if type(data) is bytes else None
        if quick is not None:
            try:
                read = _read(cls, data, quick, limits)
            except Rejected:
                pass  # parsed in full below, for the reason of the first failing check
    if read is None:
        if obj is None:
            obj = load_json(data, limits)
        read = _read(cls, data, obj, limits)
    env, signed = read
    try:
        carried = env.array_payload()
        if carried is not None:
            check_hash(*carried)
        if public_key is not None:
            if key_id(public_key) != env.key_id:
                raise Rejected(Reason.UNKNOWN_KEY, f"signed by {env.key_id}, not the given key")
            if not verify_bytes(public_key, signed, env.signature):
                raise Rejected(Reason.BAD_SIGNATURE, "the Ed25519 signature does not verify")
        check_timestamp(env, limits, now)
        if carried is not None:
            f.check_finite(carried[1])
        env.check_values(limits)
    except Rejected as err:
        err.node_id, err.round = getattr(env, "node_id", None), getattr(env, "round", None)
        raise
    return env


def parse_update(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: dt.datetime | None = None,
    public_key: Ed25519PublicKey | None = None,
    n_hidden: int | None = None,
    n_classes: int | None = None,
) -> Update:
    """Parse and check an update; with ``n_hidden``/``n_classes`` also the array shapes."""
    u = _parse(Update, data, limits, now, public_key)
    if n_hidden is not None and n_classes is not None:
        try:
            u.check_dims(n_hidden, n_classes)
        except Rejected as err:
            err.node_id, err.round = u.node_id, u.round
            raise
    return u


def parse_round(
    data: bytes,
    *,
    limits: Limits = RETAINED_LIMITS,
    now: dt.datetime | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> RoundAnnouncement:
    return _parse(RoundAnnouncement, data, limits, now, public_key)


def parse_global(
    data: bytes,
    *,
    limits: Limits = RETAINED_LIMITS,
    now: dt.datetime | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> GlobalModel:
    return _parse(GlobalModel, data, limits, now, public_key)


def parse_checkpoint(
    data: bytes,
    *,
    limits: Limits = RETAINED_LIMITS,
    now: dt.datetime | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> LedgerCheckpoint:
    return _parse(LedgerCheckpoint, data, limits, now, public_key)


def parse_rotation(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: dt.datetime | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> KeyRotation:
    return _parse(KeyRotation, data, limits, now, public_key)


def parse_envelope(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: dt.datetime | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> SignedEnvelope:
    """Any envelope, chosen by its ``schema`` member (``bad_schema`` for an unknown one)."""
    obj = load_json(data, limits)
    schema = obj.get("schema")
    cls = ENVELOPE_TYPES.get(schema) if isinstance(schema, str) else None
    if cls is None:
        raise Rejected(
            Reason.BAD_SCHEMA, f"schema {schema!r:.60} is not one of {sorted(ENVELOPE_TYPES)}"
        )
    return _parse(cls, data, limits, now, public_key, obj)
