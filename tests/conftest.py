"""Shared pytest fixtures (each helper adds its own, small and independent)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smfel.sensors import DS1, missing_records
from tests.support.broker import MosquittoBroker

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mitdb() -> Path:
    """The MIT-BIH folder: ``SMFEL_MITDB``, by default ``../shared/data/mitdb`` beside the
    repository. A test that needs it fails (never skips) when a DS1 record is missing."""
    path = Path(os.environ.get("SMFEL_MITDB", REPO.parent / "shared" / "data" / "mitdb"))
    missing = missing_records(path, DS1)
    if missing:
        pytest.fail(f"MIT-BIH DS1 records {missing} not found in {path} (set SMFEL_MITDB)")
    return path


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A real Mosquitto on a free port: plain TCP, anonymous clients allowed, persistence on.

    Use ``mosquitto.host`` / ``mosquitto.port``; ``mosquitto.restart()`` keeps port and data.
    For TLS, passwords or an ACL build a ``MosquittoBroker`` yourself (see tests/support/broker.py).
    """
    with MosquittoBroker(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker
