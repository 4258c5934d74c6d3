"""The signed model bundle: round trip, every tampered byte refused, archive transport."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from smfel.agent.bundle import (
    ARCHIVE_SCHEMA,
    SCHEMA,
    BundleError,
    bundle_from_bytes,
    bundle_to_bytes,
    load_bundle,
    write_bundle,
)
from smfel.agent.codec import canonical_json
from smfel.agent.errors import SmfelError
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    key_id,
    sign_bytes,
    verify_bytes,
)
from tests.inference.conftest import raw_features

pytestmark = pytest.mark.device

FILES = (
    "hidden.json",
    "hidden.f32.tflite",
    "hidden.int8.tflite",
    "hidden.int16x8.tflite",
    "manifest.json",
)
WHEN = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


@pytest.fixture
def tiny(tmp_path: Path, issuer: Ed25519PrivateKey) -> Path:
    """A bundle small enough (4 -> 6) to alter every byte of every file."""
    X = raw_features(50, 4, seed=4)
    layer = HiddenLayer.generate(4, 6, seed=3).with_scaling(X.mean(axis=0), X.std(axis=0))
    write_bundle(tmp_path / "b", layer, signing_key=issuer, calibration=X, created=WHEN)
    return tmp_path / "b"


def test_round_trip(
    tmp_path: Path,
    scaled_layer: HiddenLayer,
    issuer: Ed25519PrivateKey,
    trusted: dict[str, Ed25519PublicKey],
) -> None:
    X = raw_features(200, 24, seed=8)
    m = write_bundle(
        tmp_path / "new" / "bundle", scaled_layer, signing_key=issuer, calibration=X, created=WHEN
    )
    assert sorted(p.name for p in (tmp_path / "new" / "bundle").iterdir()) == sorted(FILES)
    b = load_bundle(tmp_path / "new" / "bundle", trusted)
    assert b.manifest == m
    assert b.hidden == scaled_layer
    assert np.array_equal(b.hidden.W, scaled_layer.W)  # exact float64, bit for bit
    assert b.model_hash == m.model_hash
    assert m.model_hash.startswith("sha256:")
    assert b.model_bytes("float32")[4:8] == b"TFL3"
    assert b.model_bytes("int8")[4:8] == b"TFL3"
    assert b.model_bytes("int16x8")[4:8] == b"TFL3"
    assert len({b.model_bytes(v) for v in ("float32", "int8", "int16x8")}) == 3
    assert m.variants == ("float32", "int8", "int16x8")
    body = m.to_dict()
    assert body["schema"] == SCHEMA
    assert (body["n_features"], body["n_hidden"], body["activation"]) == (24, 64, "sigmoid")
    assert body["hidden_hash"] == scaled_layer.content_hash
    assert body["key_id"] == key_id(issuer)
    assert body["created"] == "2026-03-01T12:30:05Z"
    assert body["calibration_samples"] == 200
    # The signature covers exactly the canonical JSON of every other field.
    del body["signature"]
    assert verify_bytes(issuer.public_key(), canonical_json(body), m.signature)


def test_time_is_written_in_utc(
    tmp_path: Path, scaled_layer: HiddenLayer, issuer: Ed25519PrivateKey
) -> None:
    east = datetime(2026, 3, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    m = write_bundle(tmp_path, scaled_layer, signing_key=issuer, created=east)
    assert m.created == "2026-03-01T12:30:05Z"
    with pytest.raises(BundleError, match="timezone-aware"):
        write_bundle(tmp_path, scaled_layer, signing_key=issuer, created=datetime(2026, 3, 1))


def test_without_calibration_there_is_no_int8_model(
    tmp_path: Path,
    scaled_layer: HiddenLayer,
    issuer: Ed25519PrivateKey,
    trusted: dict[str, Ed25519PublicKey],
) -> None:
    m = write_bundle(tmp_path, scaled_layer, signing_key=issuer)
    assert m.variants == ("float32",)
    assert not (tmp_path / "hidden.int8.tflite").exists()
    assert not (tmp_path / "hidden.int16x8.tflite").exists()
    b = load_bundle(tmp_path, trusted)
    with pytest.raises(BundleError, match="no int8 model") as err:
        b.model_bytes("int8")
    assert err.value.path.endswith("hidden.int8.tflite")


def test_model_hash_changes_with_the_layer(
    tmp_path: Path, issuer: Ed25519PrivateKey, trusted: dict[str, Ed25519PublicKey]
) -> None:
    a = write_bundle(tmp_path / "a", HiddenLayer.generate(4, 6, seed=1), signing_key=issuer)
    b = write_bundle(tmp_path / "b", HiddenLayer.generate(4, 6, seed=2), signing_key=issuer)
    assert a.model_hash != b.model_hash
    assert load_bundle(tmp_path / "a", trusted).model_hash == a.model_hash


@pytest.mark.parametrize("name", FILES)
def test_every_changed_byte_is_refused(
    tiny: Path, name: str, trusted: dict[str, Ed25519PublicKey]
) -> None:
    path = tiny / name
    original = path.read_bytes()
    assert len(original) > 100
    reasons = set()
    # Every byte of the JSON files; every 4th byte (and the last) of the models, which are
    # protected by the same SHA-256 check, to keep the test quick.
    stride = 4 if name.endswith(".tflite") else 1
    positions = [*range(FILES.index(name) % stride, len(original), stride), len(original) - 1]
    for i in positions:
        data = bytearray(original)
        data[i] ^= 0x01 if i % 2 else 0x80
        path.write_bytes(bytes(data))
        with pytest.raises(BundleError) as err:
            load_bundle(tiny, trusted)
        assert err.value.path.endswith(name), (i, err.value)
        assert str(err.value).startswith(err.value.path)
        reasons.add(err.value.reason.split(":")[0])
    path.write_bytes(original)
    load_bundle(tiny, trusted)  # restored: loads again
    if name != "manifest.json":
        assert reasons == {"SHA-256 mismatch"}
    else:
        assert "bad signature (issuer ed25519" in {r[:30] for r in reasons}


def test_missing_unknown_and_forged(
    tiny: Path, tmp_path: Path, issuer: Ed25519PrivateKey, trusted: dict[str, Ed25519PublicKey]
) -> None:
    with pytest.raises(BundleError, match="is not trusted"):
        load_bundle(tiny, {})
    other = Ed25519PrivateKey.generate()
    # A trusted mapping that files a different key under the issuer's id.
    with pytest.raises(BundleError, match="has another id"):
        load_bundle(tiny, {key_id(issuer): other.public_key()})
    # A manifest re-signed by another (untrusted) key, claiming the issuer's id.
    obj = json.loads((tiny / "manifest.json").read_bytes())
    body = {k: v for k, v in obj.items() if k != "signature"}
    body["n_hidden"] = 7
    forged = dict(body, signature=sign_bytes(other, canonical_json(body)))
    (tiny / "manifest.json").write_bytes(canonical_json(forged) + b"\n")
    with pytest.raises(BundleError, match="bad signature"):
        load_bundle(tiny, trusted)
    shutil.rmtree(tiny)
    with pytest.raises(BundleError, match="missing file") as err:
        load_bundle(tiny, trusted)
    assert err.value.path.endswith("manifest.json")


@pytest.mark.parametrize("name", FILES[:4])
def test_missing_file(tiny: Path, name: str, trusted: dict[str, Ed25519PublicKey]) -> None:
    (tiny / name).unlink()
    with pytest.raises(BundleError, match="missing file") as err:
        load_bundle(tiny, trusted)
    assert err.value.path == str(tiny / name)
    assert isinstance(err.value, SmfelError)


def test_manifest_must_be_canonical(tiny: Path, trusted: dict[str, Ed25519PublicKey]) -> None:
    obj = json.loads((tiny / "manifest.json").read_bytes())
    (tiny / "manifest.json").write_text(json.dumps(obj, indent=1))
    with pytest.raises(BundleError, match="canonical form"):
        load_bundle(tiny, trusted)
    (tiny / "manifest.json").write_bytes(canonical_json({**obj, "extra": 1}) + b"\n")
    with pytest.raises(BundleError, match=r"unexpected \['extra'\]"):
        load_bundle(tiny, trusted)


def test_archive_round_trip(
    tiny: Path, tmp_path: Path, trusted: dict[str, Ed25519PublicKey]
) -> None:
    data = bundle_to_bytes(tiny)
    assert json.loads(data)["schema"] == ARCHIVE_SCHEMA
    assert data == canonical_json(json.loads(data))
    bundle_from_bytes(data, tmp_path / "unpacked")
    for name in FILES:
        assert (tmp_path / "unpacked" / name).read_bytes() == (tiny / name).read_bytes()
    assert (
        load_bundle(tmp_path / "unpacked", trusted).model_hash
        == load_bundle(tiny, trusted).model_hash
    )


def test_bad_archives_are_refused(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    obj = json.loads(bundle_to_bytes(tiny))
    cases = {
        b"\xff\xfe": "not valid UTF-8 JSON",
        b"[]": "not a bundle archive",
        canonical_json({"schema": ARCHIVE_SCHEMA, "files": {}}): "holding manifest.json",
        canonical_json(
            {**obj, "files": {**obj["files"], "../evil.py": "AAAA"}}
        ): "unexpected file name '../evil.py'",
        canonical_json(
            {**obj, "files": {**obj["files"], "hidden.json": "not base64!"}}
        ): "hidden.json is not valid base64",
    }
    for data, message in cases.items():
        with pytest.raises(BundleError, match=message.replace(".", r"\.")):
            bundle_from_bytes(data, out)
    assert not out.exists()


def test_archive_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import smfel.agent.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_BYTES", 1000)
    with pytest.raises(BundleError, match="larger than the limit of 1000 bytes"):
        bundle_from_bytes(b" " * 1001, tmp_path)


def test_altered_archive_unpacks_but_does_not_load(
    tiny: Path, tmp_path: Path, trusted: dict[str, Ed25519PublicKey]
) -> None:
    obj = json.loads(bundle_to_bytes(tiny))
    layer = json.loads((tiny / "hidden.json").read_bytes())
    layer["activation"] = "tanh"
    obj["files"]["hidden.json"] = base64.b64encode(canonical_json(layer)).decode()
    bundle_from_bytes(canonical_json(obj), tmp_path / "x")
    with pytest.raises(BundleError, match="SHA-256 mismatch") as err:
        load_bundle(tmp_path / "x", trusted)
    assert err.value.path.endswith("hidden.json")
