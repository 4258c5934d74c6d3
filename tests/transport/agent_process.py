"""A minimal agent process for the fault tests: publishes signed updates through the durable
outbox, printing one line per update stored, then waits until the broker acknowledged all.

    python -m tests.transport.agent_process --port P --outbox FILE --start 0 --count 300
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from smfel.agent import topics
from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.protocol import Update
from smfel.agent.transport import MqttConfig, MqttTransport, StatusMessage

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NODE = "dev-7"


def update(i: int) -> bytes:
    """Update number ``i`` (its round is ``i``), the same bytes on every run but the nonce."""
    return Update.create(
        KEY,
        node_id=NODE,
        round=i,
        kind="beta",
        arrays={"beta": np.full((16, 4), float(i))},
        n_samples=60,
        local_accuracy=0.5,
        model_hash="sha256:" + "0" * 64,
    ).to_bytes()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outbox", required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--linger", action="store_true")
    a = p.parse_args(argv)
    cfg = MqttConfig("127.0.0.1", a.port, NODE, backoff_min=0.05, backoff_max=0.5)
    status = topics.status(NODE)
    transport = MqttTransport(
        cfg,
        outbox_path=a.outbox,
        birth=StatusMessage(status, b"online"),
        will=StatusMessage(status, b"offline"),
    )
    with transport:
        print(f"replaying {transport.counters['outbox_replayed']}", flush=True)
        for i in range(a.start, a.start + a.count):
            transport.publish(topics.update(NODE), update(i), durable=True)
            print(f"queued {i}", flush=True)
            if a.pause:
                time.sleep(a.pause)
        transport.wait_connected(30)
        print("connected", flush=True)
        if not transport.wait_for_outbox_empty(60):
            print("outbox not drained", flush=True)
            return 1
        print("drained", flush=True)
        while a.linger:
            time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
