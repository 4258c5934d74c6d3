"""The SQLite outbox: order, persistence across reopen, bounds and the dropped counter."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from smfel.agent.transport import Backoff, Outbox, OutboxLimits, TransportError

pytestmark = pytest.mark.device


def test_messages_come_back_in_order_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    with Outbox(path) as box:
        ids = [box.put(f"t/{i}", bytes([i]) * 10, retain=i == 3) for i in range(5)]
        assert ids == sorted(ids)
        assert box.ack(ids[1])
        assert not box.ack(ids[1])
    with Outbox(path) as box:
        rows = box.pending()
        assert [r.topic for r in rows] == ["t/0", "t/2", "t/3", "t/4"]
        assert rows[2].retain and rows[2].payload == b"\x03" * 10
        assert [r.id for r in box.pending(after=rows[1].id, limit=1)] == [rows[2].id]
        assert len(box) == 4 and box.size_bytes == 40
        # ids never go back, even after the newest row was deleted
        box.ack(rows[-1].id)
        assert box.put("t/5", b"x") > rows[-1].id


def test_bounds_drop_the_oldest_and_count_them_for_good(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, OutboxLimits(max_messages=3, max_bytes=100)) as box:
        for i in range(5):
            box.put("t", bytes([i]) * 10)
        assert [r.payload[0] for r in box.pending()] == [2, 3, 4]
        box.put("t", b"y" * 95)  # over max_bytes: the older ones go, the new one stays
        assert [len(r.payload) for r in box.pending()] == [95]
        assert box.dropped == 5
        with pytest.raises(TransportError, match="exceeds"):
            box.put("t", b"z" * 101)
    with Outbox(path, OutboxLimits(max_messages=3, max_bytes=100)) as box:
        assert box.dropped == 5


def test_expire_drops_old_messages(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(
        tmp_path / "o.sqlite", OutboxLimits(max_age=dt.timedelta(seconds=60)), clock=lambda: now[0]
    )
    with box:
        box.put("t", b"old")
        now[0] += 50
        box.put("t", b"new")
        assert box.oldest_age() == dt.timedelta(seconds=50)
        now[0] += 20
        assert box.expire() == 1
        assert [r.payload for r in box.pending()] == [b"new"]
        assert box.dropped == 1


def test_a_closed_outbox_says_so(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="not open"):
        Outbox(tmp_path / "o.sqlite").put("t", b"x")


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap() -> None:
    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next() for _ in range(10)]
    caps = [min(8.0, 0.5 * 2**k) for k in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jitter: capped delays differ
    b.reset()
    assert 0.25 <= b.next() <= 0.5
