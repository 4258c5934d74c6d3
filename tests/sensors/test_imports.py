"""What the device's code paths import, checked in a fresh interpreter each (child processes, so
not in the emulated tier, whose interpreter cannot start native children)."""

from __future__ import annotations

import pytest

from tests.support.child import run_python


@pytest.mark.parametrize(
    "module",
    ["smfel.sensors", "smfel.sensors.beats", "smfel.sensors.qrs", "smfel.sensors.sources"],
)
def test_the_device_signal_path_does_not_import_scipy(module: str) -> None:
    code = f"import sys, {module}; print([m for m in sys.modules if m.split('.')[0] == 'scipy'])"
    assert run_python(code).strip() == "[]"
