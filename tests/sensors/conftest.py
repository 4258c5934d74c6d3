"""Fixtures of the sensors tests: the MIT-BIH folder (a missing folder fails, never skips)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mitdb() -> Path:
    path = Path(os.environ.get("SMFEL_MITDB", REPO.parent / "shared" / "data" / "mitdb"))
    if not (path / "101.hea").is_file():
        pytest.fail(f"MIT-BIH records not found at {path} (set SMFEL_MITDB)")
    return path
