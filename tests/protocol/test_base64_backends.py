"""Base64 gives the same answer whichever codec runs it.

``smfel.agent.codec`` decodes with pybase64 when it is installed and with ``binascii`` otherwise.
Both must accept the same strings, give the same bytes and make the parser refuse an array's
``data`` for the same reason; the parser must accept exactly ``b64encode(raw)`` of the right
length. The comparison with pybase64 runs when it is installed; the rules run either way.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import Callable, Iterator

import pytest

from smfel.agent import codec
from smfel.agent.protocol import DEFAULT_LIMITS, Rejected
from smfel.agent.protocol._fields import get_arrays

pytestmark = pytest.mark.device

Decode = Callable[[str], bytes]
CODECS: dict[str, tuple[Decode, Callable[[bytes], str]]] = {
    "binascii": (codec._binascii_decode, codec._binascii_encode)
}
if codec.BASE64_BACKEND == "pybase64":
    CODECS["pybase64"] = (codec._b64decode, codec._b64encode)


@pytest.fixture(params=sorted(CODECS))
def use_codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    decode, encode = CODECS[request.param]
    monkeypatch.setattr(codec, "_b64decode", decode)
    monkeypatch.setattr(codec, "_b64encode", encode)
    return str(request.param)


def _outcome(text: str) -> bytes | str:
    try:
        return codec.b64decode_strict(text)
    except ValueError:
        return "refused"


def _texts() -> Iterator[str]:
    # Every string of up to 8 characters over a few letters, padding, a space and non-ASCII.
    for n in range(7):
        for chars in itertools.product("A/=+ \u00e9", repeat=n):
            yield "".join(chars)
    rng = random.Random(5)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for _ in range(20_000):
        n = rng.choice([4, 8, 12, 16])
        text = [rng.choice(alphabet) for _ in range(n)]
        for _ in range(rng.randint(0, 3)):
            text[rng.randrange(n)] = rng.choice("==\n -_*\x00\u00e9")
        yield "".join(text)
    for tail in ("=", "==", "===", "===="):  # surplus padding, which binascii alone ignores
        yield "AAAA" + tail
        yield "AAAAAAAA" + tail


def test_the_codecs_accept_the_same_strings_and_give_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = list(_texts())
    outcomes: dict[str, list[bytes | str]] = {}
    for name, (decode, _) in CODECS.items():
        monkeypatch.setattr(codec, "_b64decode", decode)
        outcomes[name] = [_outcome(text) for text in texts]
    reference = outcomes["binascii"]
    assert all(o == reference for o in outcomes.values())
    # Strict: only whole groups, padding only where some bytes need it.
    accepted = {t for t, r in zip(texts, reference, strict=True) if r != "refused"}
    assert {"AAAA", "AA==", "AAA="} <= accepted
    assert not {"AAAA=", "AAAA====", "A===", "AA=A", " AAA"} & accepted
    for text in accepted:
        raw = base64.b64decode(text, validate=True)
        assert len(text) == 4 * -(-len(raw) // 3)


def test_b64decode_strict_refuses_what_either_codec_would(use_codec: str) -> None:
    for text in ("AAAA=", "AAAA====", "AA=A", "A===", "=AAA", "AA==AA==", " AAA", "AA\u00e9="):
        assert _outcome(text) == "refused", (use_codec, text)
    assert _outcome("AAAA") == b"\0\0\0"
    assert _outcome("") == b""


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 100])
def test_b64encode_is_the_standard_encoding(use_codec: str, size: int) -> None:
    raw = random.Random(size).randbytes(size)
    assert codec.b64encode(raw) == base64.b64encode(raw).decode("ascii")
    assert codec.b64decode_strict(codec.b64encode(raw)) == raw


def _reason(data: str, nbytes: int) -> str:
    obj = {"arrays": {"a": {"dtype": "|u1", "shape": [nbytes], "data": data}}}
    try:
        return get_arrays(obj, DEFAULT_LIMITS)["a"].tobytes().hex()
    except Rejected as err:
        return err.reason.value


def _canonical_bytes(text: str, nbytes: int) -> str | None:
    """The hex of the ``nbytes`` bytes that ``text`` is the standard encoding of, else None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == nbytes and base64.b64encode(raw).decode() == text else None


def test_the_parser_takes_exactly_the_canonical_spelling_with_either_codec(
    use_codec: str,
) -> None:
    rng = random.Random(3)
    for nbytes in range(8):
        raw = rng.randbytes(nbytes)
        good = base64.b64encode(raw).decode("ascii")
        assert _reason(good, nbytes) == raw.hex()
        variants = {good + "=", good + "====", good.rstrip("=")}
        for i in range(len(good)):
            for c in "A=/ \n-\u00e9":
                variants.add(good[:i] + c + good[i + 1 :])
        for text in variants:
            got = _reason(text, nbytes)
            if _canonical_bytes(text, nbytes) is None:
                assert got in ("malformed", "bad_shape"), (use_codec, text, got)
            else:
                assert got == _canonical_bytes(text, nbytes), (use_codec, text)


def test_the_parser_gives_the_same_reasons_with_either_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(9)
    cases: list[tuple[str, int]] = []
    for nbytes in range(7):
        good = base64.b64encode(rng.randbytes(nbytes)).decode("ascii")
        for i in range(len(good) + 1):
            for c in "=B/+ \u00e9":
                cases.append((good[:i] + c + good[i + 1 :], nbytes))
                cases.append((good[:i] + c + good[i:], nbytes))
    reasons: dict[str, list[str]] = {}
    for name, (decode, encode) in CODECS.items():
        monkeypatch.setattr(codec, "_b64decode", decode)
        monkeypatch.setattr(codec, "_b64encode", encode)
        reasons[name] = [_reason(text, n) for text, n in cases]
    assert all(r == reasons["binascii"] for r in reasons.values())
