"""Shared pytest fixtures (each helper adds its own, small and independent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker import MosquittoBroker


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A real Mosquitto on a free port: plain TCP, anonymous clients allowed, persistence on.

    Use ``mosquitto.host`` / ``mosquitto.port``; ``mosquitto.restart()`` keeps port and data.
    For TLS, passwords or an ACL build a ``MosquittoBroker`` yourself (see tests/support/broker.py).
    """
    with MosquittoBroker(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker
