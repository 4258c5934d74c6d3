"""The learner's maths does not depend on the platform (run natively and under QEMU).

Under ``cross_build/qemu/run`` the reference comes from the x86_64 host (``SMFEL_HOST_REFERENCE``,
computed natively by the same code) and the emulated ARM run must reach the same weights within
1e-9. In a plain native run the reference is the closed-form ridge solution of the same data.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import pytest

from tests.device.reference import (
    Reference,
    Stream,
    batch_reference,
    fixed_stream,
    learn_blocks,
    learn_stream,
    load_reference,
)

pytestmark = pytest.mark.device

TOL = 1e-9


@pytest.fixture(scope="module")
def stream() -> Stream:
    return fixed_stream()


@pytest.fixture(scope="module")
def reference(stream: Stream) -> Reference:
    path = os.environ.get("SMFEL_HOST_REFERENCE")
    emulated = os.environ.get("SMFEL_EMULATED")
    if path:
        if not Path(path).is_file():
            pytest.fail(f"SMFEL_HOST_REFERENCE={path} does not exist")
        ref = load_reference(Path(path))
        if emulated:
            # The point of the test: the reference was computed on a different machine.
            assert platform.machine() == emulated
            assert ref.machine != platform.machine()
        return ref
    if emulated:
        pytest.fail(
            "emulated run without SMFEL_HOST_REFERENCE: cross_build/qemu/run computes it natively"
        )
    return batch_reference(stream)


def test_beat_by_beat_weights_match_reference(stream: Stream, reference: Reference) -> None:
    beta = learn_stream(stream).beta_
    np.testing.assert_allclose(beta, reference.beta, rtol=0, atol=TOL)
    assert np.abs(reference.beta).max() > 0.01  # the stream taught something


def test_block_weights_match_reference(stream: Stream, reference: Reference) -> None:
    beta = learn_blocks(stream).beta_
    np.testing.assert_allclose(beta, reference.beta, rtol=0, atol=TOL)


def test_probe_scores_match_reference(stream: Stream, reference: Reference) -> None:
    scores = learn_stream(stream).predict_many(stream.probe)
    np.testing.assert_allclose(scores, reference.scores, rtol=0, atol=TOL)
    assert reference.scores.shape == (len(stream.probe), 4)
