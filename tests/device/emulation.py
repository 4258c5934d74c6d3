"""pytest plugin of the emulated device tier, loaded by ``cross_build/qemu/run`` with ``-p``.

Under QEMU user-mode emulation code runs ten to twenty times slower than natively, so
Hypothesis' per-example deadline (200 ms by default) would fail tests for the emulator's speed
rather than for their behaviour; the profile turns deadlines off for tests that set none.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("qemu-emulation", deadline=None)
settings.load_profile("qemu-emulation")
