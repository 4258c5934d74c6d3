"""Ed25519 verification gives the same answer whichever library runs it.

``smfel.agent.keys`` verifies with libsodium (PyNaCl) or OpenSSL (``cryptography``) under one
strict rule set. These tests hold both to it on valid signatures and on invalid ones: every bit
of a signature flipped, bits of the message and of the key flipped, the wrong key, ``S + L``,
and the signatures that only the small-order rules refuse, which bare OpenSSL accepts (shown
here, so the added checks are seen to matter). The comparison runs when PyNaCl is installed;
the strict rules of the OpenSSL path are checked either way. Bare OpenSSL is ``cryptography``'s
own key class, used on purpose. libsodium is reached by its detached check where PyNaCl's library
exports it and by ``crypto_sign_open`` otherwise: every test runs with each.
"""

from __future__ import annotations

import base64
import hashlib
import random
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519 as openssl

from smfel.agent import keys
from smfel.agent.keys import (
    SMALL_ORDER_Y,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    public_key_from_raw,
    public_key_raw,
    verify_raw,
)
from smfel.agent.protocol import Reason, Rejected, parse_update
from tests.protocol.vectors import KEY, NOW, SEED, golden_update

pytestmark = pytest.mark.device

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
HAVE_SODIUM = "sodium" in keys.BACKENDS
needs_sodium = pytest.mark.skipif(not HAVE_SODIUM, reason="PyNaCl is not installed")
PUB = KEY.public_key()
A = public_key_raw(PUB)
IDENTITY = (1).to_bytes(32, "little")


@pytest.fixture(autouse=True, params=["verify_detached", "crypto_sign_open"])
def sodium_routine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs each test with libsodium's detached check and with the ``crypto_sign_open``
    fallback (the only routine where the detached one is not found)."""
    if request.param == "crypto_sign_open":
        monkeypatch.setattr(keys, "_verify_detached", None)
    elif keys._verify_detached is None:
        pytest.skip("libsodium's detached check is not found here (see test_the_detached_...)")
    routine: str = request.param
    return routine


def _secret_scalar(seed: bytes) -> int:
    """RFC 8032, section 5.1.5: the clamped scalar ``a`` with ``A = [a]B``."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _verdicts(key: Ed25519PublicKey, message: bytes, signature: bytes) -> set[bool]:
    return {verify_raw(key, message, signature, backend=b) for b in keys.BACKENDS}


def _sqrt(a: int) -> int | None:
    """A square root modulo p (p = 5 mod 8), or ``None``."""
    x = pow(a, (P + 3) // 8, P)
    for r in (x, x * pow(2, (P - 1) // 4, P) % P):
        if (r * r - a) % P == 0:
            return r
    return None


def test_the_small_order_block_list_is_the_torsion_of_the_curve() -> None:
    # Points of order 8 double to (+-sqrt(-1), 0): x^2 = -y^2 on -x^2 + y^2 = 1 + d x^2 y^2
    # gives d y^4 + 2 y^2 - 1 = 0. With the orders 1, 2, 4 (y = 1, -1, 0) and the
    # non-canonical spellings of 0 and 1, that is libsodium's list.
    root = _sqrt(1 + D)
    assert root is not None
    order8: set[int] = set()
    for r in (root, P - root):
        y = _sqrt((r - 1) * pow(D, P - 2, P) % P)
        if y is not None:
            order8 |= {y, P - y}
    assert len(order8) == 2
    assert {0, 1, P - 1, P, P + 1} | order8 == SMALL_ORDER_Y


@pytest.mark.parametrize("size", [0, 1, 11_500, keys.SODIUM_MAX_MESSAGE + 1])
def test_valid_signatures_verify_with_every_backend(size: int) -> None:
    message = random.Random(size).randbytes(size)
    signature = KEY.sign(message)
    assert _verdicts(PUB, message, signature) == {True}
    assert verify_raw(PUB, message, signature)
    # Other bytes-like objects are taken as before (the detached check is given bytes).
    assert verify_raw(PUB, memoryview(message), bytearray(signature))  # type: ignore[arg-type]
    assert verify_raw(PUB, bytearray(message), memoryview(signature))  # type: ignore[arg-type]


@needs_sodium
def test_backends_agree_on_every_flipped_signature_bit() -> None:
    message = b"smfel update"
    signature = KEY.sign(message)
    for bit in range(512):
        assert _verdicts(PUB, message, _flip(signature, bit)) == {False}, bit


@needs_sodium
def test_backends_agree_on_flipped_message_bits_keys_and_wrong_keys() -> None:
    rng = random.Random(7)
    message = rng.randbytes(300)
    signature = KEY.sign(message)
    for bit in rng.sample(range(len(message) * 8), 64):
        assert _verdicts(PUB, _flip(message, bit), signature) == {False}, bit
    for bit in range(255):  # bit 255 is the sign of x: flipping it may give no valid point
        try:
            flipped = Ed25519PublicKey.from_public_bytes(_flip(A, bit))
        except ValueError:
            continue
        assert _verdicts(flipped, message, signature) == {False}, bit
    other = Ed25519PrivateKey.generate().public_key()
    assert _verdicts(other, message, signature) == {False}


@needs_sodium
def test_backends_agree_on_random_signatures() -> None:
    rng = random.Random(11)
    for _ in range(200):
        assert _verdicts(PUB, b"m", rng.randbytes(64)) == {False}


def test_s_plus_l_is_refused() -> None:
    message = b"m"
    good = KEY.sign(message)
    s = int.from_bytes(good[32:], "little")
    bad = good[:32] + (s + L).to_bytes(32, "little")
    assert _verdicts(PUB, message, bad) == {False}


def test_a_small_order_public_key_signs_nothing_though_openssl_alone_accepts() -> None:
    # Under the identity as public key [h]A vanishes, so R = [s]B, s verifies every message.
    key = Ed25519PublicKey.from_public_bytes(IDENTITY)
    forged = A + (_secret_scalar(SEED) % L).to_bytes(32, "little")
    for message in (b"", b"any message at all"):
        openssl.Ed25519PublicKey.from_public_bytes(IDENTITY).verify(forged, message)  # accepted
        assert _verdicts(key, message, forged) == {False}
    with pytest.raises(ValueError, match="small-order"):
        public_key_from_raw(IDENTITY)


def test_a_small_order_r_is_refused_though_openssl_alone_accepts() -> None:
    # R = identity and s = h a: [s]B - [h]A is the identity, so the bytes of R match.
    message = b"round 7"
    h = int.from_bytes(hashlib.sha512(IDENTITY + A + message).digest(), "little") % L
    forged = IDENTITY + (h * _secret_scalar(SEED) % L).to_bytes(32, "little")
    openssl.Ed25519PublicKey.from_public_bytes(A).verify(forged, message)  # bare: accepted
    assert _verdicts(PUB, message, forged) == {False}
    with pytest.raises(keys.InvalidSignature):
        PUB.verify(forged, message)


def test_public_keys_must_be_canonical_and_not_of_small_order() -> None:
    for y in sorted(SMALL_ORDER_Y):
        for sign in (0, 1 << 255):
            with pytest.raises(ValueError, match="small-order"):
                public_key_from_raw((y | sign).to_bytes(32, "little"))
    for y in range(P + 2, 2**255):  # the other non-canonical encodings: y - p in [2, 18]
        with pytest.raises(ValueError, match="non-canonical"):
            public_key_from_raw(y.to_bytes(32, "little"))
    assert public_key_raw(public_key_from_raw(A)) == A


def test_a_forced_backend_must_be_installed() -> None:
    signature = KEY.sign(b"m")
    if HAVE_SODIUM:
        assert verify_raw(PUB, b"m", signature, backend="sodium")
    else:
        with pytest.raises(ValueError, match="PyNaCl"):
            verify_raw(PUB, b"m", signature, backend="sodium")
    with pytest.raises(ValueError, match="backend"):
        verify_raw(PUB, b"m", signature, backend="gpu")  # type: ignore[arg-type]


def test_the_parser_refuses_a_small_order_r_as_a_bad_signature() -> None:
    update = golden_update()
    body = update.signed_bytes()
    h = int.from_bytes(hashlib.sha512(IDENTITY + A + body).digest(), "little") % L
    forged = IDENTITY + (h * _secret_scalar(SEED) % L).to_bytes(32, "little")
    openssl.Ed25519PublicKey.from_public_bytes(A).verify(forged, body)  # bare OpenSSL takes it
    wire = update.to_bytes().replace(update.signature.encode(), base64.b64encode(forged), 1)
    with pytest.raises(Rejected) as info:
        parse_update(wire, public_key=PUB, now=NOW)
    assert info.value.reason is Reason.BAD_SIGNATURE


@needs_sodium
def test_the_detached_check_is_found_where_pynacl_exports_it() -> None:
    # The manylinux wheels of PyNaCl export libsodium's symbols; elsewhere the fallback runs.
    if sys.platform == "linux":
        assert keys._LOADED_VERIFY_DETACHED is not None


def _sodium_verdicts(key: bytes, message: bytes, signature: bytes) -> tuple[bool, bool]:
    """(detached check, ``crypto_sign_open``) on raw bytes, without the checks done here."""
    from nacl.bindings import crypto_sign_open
    from nacl.exceptions import BadSignatureError

    detached = keys._LOADED_VERIFY_DETACHED(signature, message, len(message), key) == 0
    try:
        crypto_sign_open(signature + message, key)
    except BadSignatureError:
        return detached, False
    return detached, True


@pytest.mark.skipif(
    not HAVE_SODIUM or keys._LOADED_VERIFY_DETACHED is None,
    reason="libsodium's detached check is not found here",
)
def test_libsodium_checks_the_same_rules_detached_and_in_crypto_sign_open() -> None:
    """Without the checks ``verify_raw`` adds in front (S < L, small orders, canonical key),
    both libsodium routines refuse the same signatures: they run one check."""
    rng = random.Random(5)
    message = rng.randbytes(200)
    good = KEY.sign(message)
    s = int.from_bytes(good[32:], "little")
    h = int.from_bytes(hashlib.sha512(IDENTITY + A + message).digest(), "little") % L
    cases = [
        (A, message, good, True),
        (A, message + b"x", good, False),
        (A, message, good[:32] + (s + L).to_bytes(32, "little"), False),
        (A, message, IDENTITY + (h * _secret_scalar(SEED) % L).to_bytes(32, "little"), False),
        (IDENTITY, message, A + (_secret_scalar(SEED) % L).to_bytes(32, "little"), False),
    ]
    cases += [(A, message, _flip(good, bit), False) for bit in range(0, 512, 7)]
    cases += [(_flip(A, bit), message, good, False) for bit in range(0, 256, 9)]
    cases += [(y.to_bytes(32, "little"), message, good, False) for y in range(P, P + 19)]
    cases += [(A, message, rng.randbytes(64), False) for _ in range(50)]
    for key, m, signature, valid in cases:
        assert _sodium_verdicts(key, m, signature) == (valid, valid)
