"""What the device's code paths import, checked in a fresh interpreter each (child processes, so
not in the emulated tier, whose interpreter cannot start native children)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["smfel.sensors", "smfel.sensors.beats", "smfel.sensors.qrs", "smfel.sensors.sources"],
)
def test_the_device_signal_path_does_not_import_scipy(module: str) -> None:
    code = f"import sys, {module}; print([m for m in sys.modules if m.split('.')[0] == 'scipy'])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
