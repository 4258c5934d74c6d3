"""Fixtures of the agent tests: MIT-BIH location, an aggregator key and a signed model bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smfel.agent.bundle import ModelBundle, load_bundle, write_bundle
from smfel.agent.daemon.keyfiles import public_key_pem, write_private_key
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.sensors.beats import N_FEATURES
from smfel.sensors.records import load_record_beats


@pytest.fixture(scope="session")
def hidden_layer(mitdb: Path) -> HiddenLayer:
    """A 128-unit layer with feature scaling from record 201's beats (not a record we replay)."""
    beats = load_record_beats(mitdb, "201")
    mean, std = beats.X.mean(axis=0), beats.X.std(axis=0)
    std[std < 1e-6] = 1.0
    return HiddenLayer.generate(N_FEATURES, 128, seed=7).with_scaling(mean, std)


class Issuer:
    """The aggregator side of a test: its key, public key file, and a bundle it signed."""

    def __init__(self, directory: Path, hidden: HiddenLayer) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.key_id = key_id(self.key)
        directory.mkdir(parents=True, exist_ok=True)
        self.key_file = directory / "aggregator.key"
        write_private_key(self.key_file, self.key)
        self.pub_file = directory / "aggregator.pub"
        self.pub_file.write_text(public_key_pem(self.key))
        self.bundle_dir = directory / "bundle"
        write_bundle(self.bundle_dir, hidden, signing_key=self.key)
        self.bundle: ModelBundle = load_bundle(
            self.bundle_dir, {self.key_id: self.key.public_key()}
        )

    @property
    def trusted(self) -> dict[str, object]:
        return {self.key_id: self.key.public_key()}


@pytest.fixture
def issuer(tmp_path: Path, hidden_layer: HiddenLayer) -> Issuer:
    return Issuer(tmp_path / "issuer", hidden_layer)


def labelled_stats(beats: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(beats, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}
