"""The signed model bundle: the unit the aggregator issues and every device verifies before use.

A bundle is a directory::

    hidden.json          the exact float64 hidden layer (HiddenLayer.to_dict, canonical JSON)
    hidden.f32.tflite    x -> h in float32
    hidden.int8.tflite   x -> h, integer-only int8 with float I/O (only with calibration data)
    hidden.int16x8.tflite  the same with int16 activations (only with calibration data)
    manifest.json        schema, dimensions, activation, layer hash, SHA-256 of every file,
                         issuer key id, creation time, Ed25519 signature (RFC 8032)

The signature covers the canonical JSON of every other manifest field, and the manifest names the
SHA-256 (FIPS 180-4) of every file, so one verified signature vouches for every byte. The model's
identity in rounds (``model_hash``) is the SHA-256 of that signed body. Files are read into memory
once and verified there, so what runs is exactly what was checked.

For transport (MQTT), a bundle travels as one canonical JSON archive with base64 file contents;
unpacking writes files only, and :func:`load_bundle` then verifies them as usual.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from smfel.agent.codec import canonical_json
from smfel.agent.errors import LearnerError, SmfelError
from smfel.agent.hidden import ACTIVATIONS, HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id, sign_bytes, verify_bytes
from smfel.agent.state import atomic_write

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "ARCHIVE_SCHEMA",
    "SCHEMA",
    "BundleError",
    "Manifest",
    "ModelBundle",
    "Variant",
    "bundle_from_bytes",
    "bundle_to_bytes",
    "load_bundle",
    "write_bundle",
]

SCHEMA = "smfel.bundle/1"
ARCHIVE_SCHEMA = "smfel.bundle-archive/1"
MANIFEST_FILE = "manifest.json"
HIDDEN_FILE = "hidden.json"
MODEL_FILES: Mapping[str, str] = MappingProxyType(
    {
        "float32": "hidden.f32.tflite",
        "int8": "hidden.int8.tflite",
        "int16x8": "hidden.int16x8.tflite",
    }
)
_CONTENT_FILES = frozenset({HIDDEN_FILE, *MODEL_FILES.values()})
#: Largest single file accepted (a 1024 x 4096 float32 layer is 16 MiB).
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024
#: Largest archive accepted: every file at its limit, base64-expanded.
MAX_ARCHIVE_BYTES = 3 * MAX_FILE_BYTES * 4 // 3 + MAX_MANIFEST_BYTES * 2

Variant = Literal["float32", "int8", "int16x8"]

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_FIELDS = frozenset(
    {
        "schema",
        "n_features",
        "n_hidden",
        "activation",
        "hidden_hash",
        "files",
        "calibration_samples",
        "key_id",
        "created",
        "signature",
    }
)


class BundleError(SmfelError):
    """A bundle could not be written, read or trusted; ``path`` and ``reason`` say why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """The signed description of a bundle (``manifest.json``)."""

    n_features: int
    n_hidden: int
    activation: str
    hidden_hash: str
    files: Mapping[str, str]
    calibration_samples: int
    key_id: str
    created: str
    signature: str
    schema: str = SCHEMA

    def body(self) -> dict[str, Any]:
        """Every field but the signature: what the signature and ``model_hash`` cover."""
        return {
            "schema": self.schema,
            "n_features": self.n_features,
            "n_hidden": self.n_hidden,
            "activation": self.activation,
            "hidden_hash": self.hidden_hash,
            "files": dict(self.files),
            "calibration_samples": self.calibration_samples,
            "key_id": self.key_id,
            "created": self.created,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    @property
    def model_hash(self) -> str:
        """``sha256:<hex>`` of the signed body; rounds and updates refer to the model by it."""
        return _sha256(canonical_json(self.body()))

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(v for v, name in MODEL_FILES.items() if name in self.files)

    @classmethod
    def from_dict(cls, obj: object, path: str | Path = MANIFEST_FILE) -> Manifest:
        """Check every field's type and form; :class:`BundleError` names the first bad one."""
        if not isinstance(obj, dict):
            raise BundleError(path, "manifest must be a JSON object")
        missing = sorted(_FIELDS - obj.keys())
        extra = sorted(obj.keys() - _FIELDS)
        if missing or extra:
            raise BundleError(path, f"manifest fields missing {missing}, unexpected {extra}")
        if obj["schema"] != SCHEMA:
            raise BundleError(path, f"schema must be {SCHEMA!r}, got {obj['schema']!r}")
        for name in ("n_features", "n_hidden", "calibration_samples"):
            v = obj[name]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise BundleError(path, f"{name} must be a non-negative integer, got {v!r}")
        if obj["activation"] not in ACTIVATIONS:
            raise BundleError(path, f"activation must be one of {ACTIVATIONS}")
        for name in ("hidden_hash", "key_id", "created", "signature"):
            if not isinstance(obj[name], str):
                raise BundleError(path, f"{name} must be a string")
        try:
            datetime.strptime(obj["created"], _TIME)
        except ValueError as err:
            raise BundleError(
                path, f"created must be UTC time like 2026-01-31T12:00:00Z: {err}"
            ) from err
        files = obj["files"]
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _DIGEST.match(v) for k, v in files.items()
        ):
            raise BundleError(path, "files must map file names to 'sha256:<64 hex>'")
        unknown = sorted(set(files) - _CONTENT_FILES)
        if unknown:
            raise BundleError(path, f"files names unknown files {unknown}")
        for required in (HIDDEN_FILE, MODEL_FILES["float32"]):
            if required not in files:
                raise BundleError(path, f"files must list {required}")
        return cls(
            n_features=obj["n_features"],
            n_hidden=obj["n_hidden"],
            activation=obj["activation"],
            hidden_hash=obj["hidden_hash"],
            files=MappingProxyType(dict(files)),
            calibration_samples=obj["calibration_samples"],
            key_id=obj["key_id"],
            created=obj["created"],
            signature=obj["signature"],
        )


@dataclass(frozen=True, slots=True, eq=False)
class ModelBundle:
    """A verified bundle held in memory: the exact layer and the model files' bytes."""

    directory: Path
    manifest: Manifest
    hidden: HiddenLayer
    models: Mapping[str, bytes]

    @property
    def model_hash(self) -> str:
        return self.manifest.model_hash

    def model_bytes(self, variant: Variant) -> bytes:
        """The verified ``.tflite`` bytes of ``variant`` ("float32", "int8" or "int16x8")."""
        name = MODEL_FILES.get(variant)
        if name is None:
            raise BundleError(self.directory, f"variant must be one of {sorted(MODEL_FILES)}")
        if name not in self.models:
            raise BundleError(
                self.directory / name,
                f"this bundle has no {variant} model (written without calibration data)",
            )
        return self.models[name]


def write_bundle(
    directory: str | Path,
    hidden: HiddenLayer,
    *,
    signing_key: Ed25519PrivateKey,
    calibration: ArrayLike | None = None,
    replicas: int | None = None,
    created: datetime | None = None,
) -> Manifest:
    """Write the bundle of ``hidden`` into ``directory`` and return its signed manifest.

    ``calibration`` (n, d) feature vectors calibrate the integer models' activation ranges;
    without them no integer model is written. ``replicas`` sets the int8 model's offset copies
    (default :data:`smfel.agent.quantise.DEFAULT_REPLICAS`). ``created`` must be
    timezone-aware (default: now).
    """
    # The writer and the flatbuffer schema package are needed only here: a device that only
    # loads and verifies bundles does not import them.
    from smfel.agent.quantise import DEFAULT_REPLICAS
    from smfel.agent.tflite_writer import calibrate, float_model, int8_model, int16x8_model

    out = Path(directory)
    when = datetime.now(UTC) if created is None else created
    if when.tzinfo is None:
        raise BundleError(out, "created must be a timezone-aware datetime")
    contents: dict[str, bytes] = {
        HIDDEN_FILE: canonical_json(hidden.to_dict()),
        MODEL_FILES["float32"]: float_model(hidden),
    }
    n_cal = 0
    if calibration is not None:
        k = DEFAULT_REPLICAS if replicas is None else replicas
        cal = calibrate(hidden, calibration, replicas=k)
        contents[MODEL_FILES["int8"]] = int8_model(hidden, cal)
        contents[MODEL_FILES["int16x8"]] = int16x8_model(hidden, cal)
        n_cal = cal.n_samples
    body = {
        "schema": SCHEMA,
        "n_features": hidden.n_features,
        "n_hidden": hidden.n_hidden,
        "activation": hidden.activation,
        "hidden_hash": hidden.content_hash,
        "files": {name: _sha256(data) for name, data in contents.items()},
        "calibration_samples": n_cal,
        "key_id": key_id(signing_key),
        "created": when.astimezone(UTC).strftime(_TIME),
    }
    manifest = Manifest.from_dict(
        {**body, "signature": sign_bytes(signing_key, canonical_json(body))}, out / MANIFEST_FILE
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        atomic_write(out / name, data, 0o644)
    # The manifest goes last: a reader never sees a manifest whose files are not yet there.
    atomic_write(out / MANIFEST_FILE, canonical_json(manifest.to_dict()) + b"\n", 0o644)
    return manifest


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError as err:
        raise BundleError(path, "missing file") from err
    except OSError as err:
        raise BundleError(path, f"cannot read: {err.strerror or err}") from err
    if len(data) > limit:
        raise BundleError(path, f"larger than the limit of {limit} bytes")
    return data


def _parse_manifest(path: Path, raw: bytes) -> Manifest:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise BundleError(path, f"not valid UTF-8 JSON: {err}") from err
    manifest = Manifest.from_dict(obj, path)
    if raw != canonical_json(obj) + b"\n":
        raise BundleError(path, "not in canonical form (sorted keys, no spaces, one final newline)")
    return manifest


def load_bundle(directory: str | Path, trusted_keys: Mapping[str, Ed25519PublicKey]) -> ModelBundle:
    """Read and verify a bundle; :class:`BundleError` names the file and what failed.

    ``trusted_keys`` maps issuer key ids (:func:`smfel.agent.keys.key_id`) to public keys.
    """
    root = Path(directory)
    mpath = root / MANIFEST_FILE
    manifest = _parse_manifest(mpath, _read(mpath, MAX_MANIFEST_BYTES))
    key = trusted_keys.get(manifest.key_id)
    if key is None:
        raise BundleError(mpath, f"issuer key {manifest.key_id} is not trusted")
    if key_id(key) != manifest.key_id:
        raise BundleError(mpath, f"trusted key stored under {manifest.key_id} has another id")
    if not verify_bytes(key, canonical_json(manifest.body()), manifest.signature):
        raise BundleError(mpath, f"bad signature (issuer {manifest.key_id})")
    files: dict[str, bytes] = {}
    for name, digest in manifest.files.items():
        data = _read(root / name, MAX_FILE_BYTES)
        actual = _sha256(data)
        if actual != digest:
            raise BundleError(
                root / name, f"SHA-256 mismatch: manifest says {digest}, file is {actual}"
            )
        files[name] = data
    hpath = root / HIDDEN_FILE
    try:
        hidden = HiddenLayer.from_dict(json.loads(files[HIDDEN_FILE].decode("utf-8")))
    except (UnicodeDecodeError, ValueError, LearnerError) as err:
        raise BundleError(hpath, f"not a hidden layer: {err}") from err
    if hidden.content_hash != manifest.hidden_hash:
        raise BundleError(hpath, "hidden layer hash differs from the manifest's hidden_hash")
    if (hidden.n_features, hidden.n_hidden, hidden.activation) != (
        manifest.n_features,
        manifest.n_hidden,
        manifest.activation,
    ):
        raise BundleError(hpath, "hidden layer dimensions or activation differ from the manifest")
    models = {n: files[n] for n in MODEL_FILES.values() if n in files}
    return ModelBundle(root, manifest, hidden, MappingProxyType(models))


def bundle_to_bytes(directory: str | Path) -> bytes:
    """One canonical JSON archive of the bundle's files (manifest included), for publishing."""
    root = Path(directory)
    mpath = root / MANIFEST_FILE
    raw = _read(mpath, MAX_MANIFEST_BYTES)
    manifest = _parse_manifest(mpath, raw)
    files = {MANIFEST_FILE: raw}
    for name in manifest.files:
        files[name] = _read(root / name, MAX_FILE_BYTES)
    return canonical_json(
        {
            "schema": ARCHIVE_SCHEMA,
            "files": {n: base64.b64encode(d).decode("ascii") for n, d in files.items()},
        }
    )


def bundle_from_bytes(data: bytes, directory: str | Path) -> None:
    """Unpack an archive from :func:`bundle_to_bytes` into ``directory`` (files only).

    Nothing is trusted here: only known file names are written, within size limits, and
    :func:`load_bundle` must verify the result before use. Unpack into a fresh directory so a
    bad archive never replaces a good bundle.
    """
    where = "<archive>"
    if len(data) > MAX_ARCHIVE_BYTES:
        raise BundleError(where, f"archive larger than the limit of {MAX_ARCHIVE_BYTES} bytes")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise BundleError(where, f"not valid UTF-8 JSON: {err}") from err
    if not isinstance(obj, dict) or obj.get("schema") != ARCHIVE_SCHEMA:
        raise BundleError(where, f"not a bundle archive (schema must be {ARCHIVE_SCHEMA!r})")
    files = obj.get("files")
    if not isinstance(files, dict) or MANIFEST_FILE not in files:
        raise BundleError(where, f"files must be an object holding {MANIFEST_FILE}")
    decoded: dict[str, bytes] = {}
    for name, text in files.items():
        if name != MANIFEST_FILE and name not in _CONTENT_FILES:
            raise BundleError(where, f"unexpected file name {name!r}")
        if not isinstance(text, str):
            raise BundleError(where, f"{name} must be a base64 string")
        try:
            content = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as err:
            raise BundleError(where, f"{name} is not valid base64: {err}") from err
        limit = MAX_MANIFEST_BYTES if name == MANIFEST_FILE else MAX_FILE_BYTES
        if len(content) > limit:
            raise BundleError(where, f"{name} larger than the limit of {limit} bytes")
        decoded[name] = content
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    manifest = decoded.pop(MANIFEST_FILE)
    for name, content in decoded.items():
        atomic_write(root / name, content, 0o644)
    atomic_write(root / MANIFEST_FILE, manifest, 0o644)
