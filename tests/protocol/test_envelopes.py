"""Envelopes: golden vectors, round trips, the parser's checks in order, typed rejections."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from smfel.agent.codec import canonical_json
from smfel.agent.protocol import (
    Limits,
    Reason,
    Rejected,
    SignedEnvelope,
    Update,
    parse_checkpoint,
    parse_envelope,
    parse_global,
    parse_rotation,
    parse_round,
    parse_update,
    verify_signature,
)
from tests.protocol.vectors import (
    BETA,
    KEY,
    MODEL,
    NOW,
    OTHER_KEY,
    golden_checkpoint,
    golden_global,
    golden_rotation,
    golden_round,
    golden_update,
    stats_update,
)

pytestmark = pytest.mark.device
PUB = KEY.public_key()

GOLDEN_UPDATE = (
    b'{"arrays":{"beta":{"data":"AAAAAAAA4D8AAAAAAAD0vwAAAAAAAABAAAAAAAAAAAA=","dtype":"<f8",'
    b'"shape":[2,2]},"class_counts":{"data":"KAAAAAAAAAAUAAAAAAAAAA==","dtype":"<i8","shape":[2]}},'
    b'"key_id":"ed25519:56475aa75463474c0285df5dbf2bcab7","kind":"beta","local_accuracy":0.9375,'
    b'"model_hash":"sha256:abababababababababababababababababababababababababababababababab",'
    b'"n_samples":60,"node_id":"ward3-bed12","nonce":"00112233445566778899aabbccddeeff","round":7,'
    b'"schema":"smfel.update/1","signature":"5fkMtj1lOwMVTdS7uulXEdMbdvUPWQe+/2mr4x1PdBXhl57ZyMf/bB'
    b'tLdx5qz2iOkJ68m/L2HASooyREBp2zDw==","timestamp":"2026-01-31T12:00:00.123Z",'
    b'"weights_hash":"sha256:37f5694b61f294bfc0b38b655a53c75e3ab38ed623e06af52ac73d0511d993d9"}'
)

GOLDEN_IDS: list[tuple[Callable[[], SignedEnvelope], str]] = [
    (golden_update, "sha256:275a7135eacf6ec36a24c13e7b2d240f6586b22416cb7e7dfdd608fb4d13bbf8"),
    (golden_round, "sha256:714d9c3ec6403cad95ca2ce9ba84e191616883131954697337da3977c94a0565"),
    (golden_global, "sha256:5f632081717afa62ff75a02a79bd23b71d20685f4c2b400f07f6bc6401ee3625"),
    (golden_checkpoint, "sha256:233e425e99a20c4a7d0c257b88b1ee65f8949451859928e3811c2992e627bcdd"),
    (golden_rotation, "sha256:0a4886c37c1fc79b0c65ac55ab2787ab467544b93f6b3b6ce26c197d18e29c67"),
]
PARSERS: dict[str, Callable[..., SignedEnvelope]] = {
    "smfel.update/1": parse_update,
    "smfel.round/1": parse_round,
    "smfel.global/1": parse_global,
    "smfel.checkpoint/1": parse_checkpoint,
    "smfel.rotation/1": parse_rotation,
}


def test_golden_update_bytes_are_stable() -> None:
    assert golden_update().to_bytes() == GOLDEN_UPDATE


@pytest.mark.parametrize(
    ("build", "expected"), GOLDEN_IDS, ids=lambda v: getattr(v, "__name__", "")
)
def test_golden_envelope_ids_and_round_trip(
    build: Callable[[], SignedEnvelope], expected: str
) -> None:
    env = build()
    assert env.envelope_id == expected
    assert env.verify(PUB)
    assert not env.verify(OTHER_KEY.public_key())
    parsed = PARSERS[env.SCHEMA](env.to_bytes(), now=NOW, public_key=PUB)
    assert parsed == env
    assert parsed.to_bytes() == env.to_bytes()
    assert type(parse_envelope(env.to_bytes(), now=NOW, public_key=PUB)) is type(env)


def test_stats_update_round_trip_keeps_arrays_exactly() -> None:
    u = stats_update(L=32, K=4, n=100)
    p = parse_update(u.to_bytes(), now=NOW, public_key=PUB, n_hidden=32, n_classes=4)
    for name in ("U", "V", "class_counts"):
        np.testing.assert_array_equal(p.arrays[name], u.arrays[name])
        assert not p.arrays[name].flags.writeable
    s = p.statistics()
    assert s.n == 100 and s.U.shape == (32, 32)


def test_arrays_are_copied_and_read_only() -> None:
    beta = np.ones((3, 2))
    u = Update.create(
        KEY,
        node_id="n1",
        round=0,
        kind="beta",
        arrays={"beta": beta},
        n_samples=60,
        local_accuracy=None,
        model_hash="sha256:" + "0" * 64,
        now=NOW,
    )
    beta[0, 0] = 5.0
    assert u.arrays["beta"][0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        u.arrays["beta"][0, 0] = 2.0
    with pytest.raises(TypeError):
        u.arrays["x"] = beta  # type: ignore[index]


def _reject(data: bytes, reason: Reason, **kw: Any) -> Rejected:
    kw.setdefault("now", NOW)
    with pytest.raises(Rejected) as info:
        parse_update(data, **kw)
    assert info.value.reason is reason, info.value
    return info.value


def _mutated(mutate: Callable[[dict[str, Any]], None], resign: bool = False) -> bytes:
    obj = json.loads(GOLDEN_UPDATE)
    mutate(obj)
    if resign:
        body = {k: v for k, v in obj.items() if k != "signature"}
        import base64

        obj["signature"] = base64.b64encode(KEY.sign(canonical_json(body))).decode()
    return canonical_json(obj)


def test_each_check_names_its_reason() -> None:
    _reject(GOLDEN_UPDATE, Reason.OVERSIZE, limits=Limits(max_payload_bytes=100))
    _reject(b"\xff", Reason.MALFORMED)
    _reject(b"[1]", Reason.MALFORMED)
    _reject(b'{"a":1,"a":2}', Reason.MALFORMED)
    _reject(GOLDEN_UPDATE.replace(b"0.9375", b"NaN"), Reason.MALFORMED)
    _reject(GOLDEN_UPDATE.replace(b"update/1", b"update/2"), Reason.BAD_SCHEMA)
    _reject(_mutated(lambda o: o.pop("nonce")), Reason.BAD_SCHEMA)
    _reject(_mutated(lambda o: o.update(extra=1)), Reason.BAD_SCHEMA)
    _reject(_mutated(lambda o: o.update(round="7")), Reason.MALFORMED)
    _reject(_mutated(lambda o: o.update(round=True)), Reason.MALFORMED)
    _reject(_mutated(lambda o: o.update(local_accuracy=1)), Reason.MALFORMED)
    _reject(_mutated(lambda o: o.update(timestamp="2026-01-31 12:00:00")), Reason.MALFORMED)
    _reject(_mutated(lambda o: o.update(node_id="a/b")), Reason.MALFORMED)
    _reject(GOLDEN_UPDATE.replace(b'"round":7', b'"round": 7'), Reason.MALFORMED)  # not canonical
    _reject(GOLDEN_UPDATE, Reason.UNKNOWN_KEY, public_key=OTHER_KEY.public_key())
    _reject(_mutated(lambda o: o.update(round=8)), Reason.BAD_SIGNATURE, public_key=PUB)
    _reject(_mutated(lambda o: o["arrays"]["beta"].update(dtype="<c16")), Reason.BAD_SHAPE)
    _reject(_mutated(lambda o: o["arrays"]["beta"].update(shape=[4, 1])), Reason.BAD_SHAPE)
    _reject(_mutated(lambda o: o["arrays"]["beta"].update(shape=[1, 2, 2])), Reason.BAD_SHAPE)
    _reject(_mutated(lambda o: o["arrays"].update(gamma=o["arrays"]["beta"])), Reason.BAD_SHAPE)
    _reject(GOLDEN_UPDATE, Reason.OVERSIZE, limits=Limits(max_elements=5))
    _reject(GOLDEN_UPDATE, Reason.OVERSIZE, limits=Limits(max_arrays=1))
    _reject(GOLDEN_UPDATE, Reason.STALE_TIMESTAMP, now=NOW + dt.timedelta(days=2))
    _reject(GOLDEN_UPDATE, Reason.FUTURE_TIMESTAMP, now=NOW - dt.timedelta(hours=1))
    _reject(GOLDEN_UPDATE, Reason.TOO_FEW_BEATS, limits=Limits(min_beats=61))
    err = _reject(
        _mutated(lambda o: o.update(local_accuracy=1.5), resign=True), Reason.OUT_OF_BOUNDS
    )
    assert (err.node_id, err.round) == ("ward3-bed12", 7)
    _reject(_mutated(lambda o: o.update(n_samples=50), resign=True), Reason.OUT_OF_BOUNDS)
    _reject(
        _mutated(lambda o: o.update(weights_hash="sha256:" + "0" * 64), resign=True),
        Reason.HASH_MISMATCH,
        public_key=PUB,
    )
    with pytest.raises(Rejected) as info:
        parse_update(GOLDEN_UPDATE, now=NOW, n_hidden=3, n_classes=2)
    assert info.value.reason is Reason.BAD_SHAPE


def test_nan_in_a_signed_update_is_not_finite() -> None:
    bad = dataclasses.replace(golden_update(), signature="A" * 86 + "==")
    arrays = {"beta": np.array([[np.nan, 1.0], [0.0, 0.0]]), "class_counts": np.array([40, 20])}
    u = Update.create(
        KEY,
        node_id=bad.node_id,
        round=1,
        kind="beta",
        arrays=arrays,
        n_samples=60,
        local_accuracy=0.5,
        model_hash=bad.model_hash,
        now=NOW,
    )
    _reject(u.to_bytes(), Reason.NOT_FINITE, public_key=PUB)


def test_class_counts_that_wrap_in_int64_are_out_of_bounds() -> None:
    # Two counts of 2^62 add up to 2^63, which is -2^63 in int64: the sum must not wrap.
    for c in ([2**62, 2**62], [2**63 - 1, 2**63 - 1]):
        u = Update.create(
            KEY,
            node_id="ward3-bed12",
            round=1,
            kind="beta",
            arrays={"beta": BETA, "class_counts": np.array(c, dtype=np.int64)},
            n_samples=60,
            local_accuracy=0.5,
            model_hash=MODEL,
            now=NOW,
        )
        assert int(np.asarray(u.arrays["class_counts"]).sum()) <= 60  # what int64 makes of it
        _reject(u.to_bytes(), Reason.OUT_OF_BOUNDS, public_key=PUB)


def test_non_canonical_base64_is_refused() -> None:
    # "FA==" and "FB==" decode to the same byte; only the canonical spelling is accepted.
    data = GOLDEN_UPDATE.replace(b"UAAAAAAAAAA==", b"UAAAAAAAAAB==")
    assert data != GOLDEN_UPDATE
    _reject(data, Reason.MALFORMED, limits=Limits(require_canonical=False))


def test_verify_signature_helper() -> None:
    u = golden_update()
    verify_signature(u, PUB)
    with pytest.raises(Rejected) as info:
        verify_signature(u, OTHER_KEY.public_key())
    assert info.value.reason is Reason.UNKNOWN_KEY
    forged = dataclasses.replace(u, round=8)
    with pytest.raises(Rejected) as info:
        verify_signature(forged, PUB)
    assert info.value.reason is Reason.BAD_SIGNATURE


def test_envelopes_of_one_type_parse_only_as_that_type() -> None:
    with pytest.raises(Rejected) as info:
        parse_update(golden_global().to_bytes(), now=NOW)
    assert info.value.reason is Reason.BAD_SCHEMA
    with pytest.raises(Rejected) as info:
        parse_envelope(b'{"schema":"smfel.other/1"}', now=NOW)
    assert info.value.reason is Reason.BAD_SCHEMA


def test_retained_envelopes_have_no_age_limit_but_a_future_limit() -> None:
    later = NOW + dt.timedelta(days=400)
    assert parse_global(golden_global().to_bytes(), now=later).round == 7
    with pytest.raises(Rejected) as info:
        parse_round(golden_round().to_bytes(), now=NOW - dt.timedelta(hours=1))
    assert info.value.reason is Reason.FUTURE_TIMESTAMP


def test_construction_validates_fields() -> None:
    with pytest.raises(Rejected, match="node_id"):
        Update.create(
            KEY,
            node_id="bad id",
            round=0,
            kind="beta",
            arrays={"beta": np.ones((2, 2))},
            n_samples=60,
            local_accuracy=None,
            model_hash="sha256:" + "0" * 64,
        )
    with pytest.raises(Rejected) as info:
        Update.create(
            KEY,
            node_id="n",
            round=0,
            kind="stats",
            arrays={"beta": np.ones((2, 2))},
            n_samples=60,
            local_accuracy=None,
            model_hash="sha256:" + "0" * 64,
        )
    assert info.value.reason is Reason.BAD_SHAPE


def test_rotation_statement_names_a_key_it_carries() -> None:
    r = golden_rotation()
    assert r.new_key_id == golden_rotation().new_key_id
    obj = json.loads(r.to_bytes())
    obj["new_key_id"] = "ed25519:" + "0" * 32
    with pytest.raises(Rejected) as info:
        parse_rotation(canonical_json(obj), now=NOW)
    assert info.value.reason is Reason.MALFORMED
