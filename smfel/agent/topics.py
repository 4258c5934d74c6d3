"""MQTT topic names of smfel (DESIGN.md, "Wire protocol"), all under ``smfel/v1/``.

Node ids are one topic level, so they may not contain ``/``, ``+``, ``#`` or NUL; the functions
here refuse such ids rather than build a topic that would address other nodes.
"""

from __future__ import annotations

import re

__all__ = [
    "BUNDLE",
    "CHECKPOINT",
    "GLOBAL",
    "PREFIX",
    "ROUND",
    "STATUS_ALL",
    "UPDATES_ALL",
    "UPDATES_SHARED",
    "events",
    "keys",
    "labels",
    "node_from_topic",
    "status",
    "telemetry",
    "update",
]

PREFIX = "smfel/v1"
#: retained: the signed round announcement.
ROUND = f"{PREFIX}/fl/round"
#: retained: the signed global model of the last closed round.
GLOBAL = f"{PREFIX}/fl/global"
#: retained: the model bundle archive (hidden layer, scaling, metadata) devices train on.
BUNDLE = f"{PREFIX}/fl/bundle"
#: retained: the signed ledger checkpoint.
CHECKPOINT = f"{PREFIX}/ledger/checkpoint"
#: every node's updates (one aggregator).
UPDATES_ALL = f"{PREFIX}/fl/updates/+"
#: every node's status record (dashboards).
STATUS_ALL = f"{PREFIX}/nodes/+/status"
#: MQTT 5 shared subscription: updates spread across the aggregator workers.
UPDATES_SHARED = f"$share/aggregators/{UPDATES_ALL}"

_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _node(node_id: str) -> str:
    if not _NODE.fullmatch(node_id):
        raise ValueError(f"node id must be 1-64 of [A-Za-z0-9._-], got {node_id!r}")
    return node_id


def status(node_id: str) -> str:
    """Retained birth record (``online``) / Last Will (``offline``)."""
    return f"{PREFIX}/nodes/{_node(node_id)}/status"


def telemetry(node_id: str) -> str:
    return f"{PREFIX}/nodes/{_node(node_id)}/telemetry"


def events(node_id: str) -> str:
    return f"{PREFIX}/nodes/{_node(node_id)}/events"


def labels(node_id: str) -> str:
    """Label feedback to the device (a clinician confirms a beat)."""
    return f"{PREFIX}/nodes/{_node(node_id)}/labels"


def keys(node_id: str) -> str:
    """Where ``node_id`` sends its signed key rotation statements."""
    return f"{PREFIX}/nodes/{_node(node_id)}/keys"


def update(node_id: str) -> str:
    """Where ``node_id`` publishes its signed update envelopes."""
    return f"{PREFIX}/fl/updates/{_node(node_id)}"


def node_from_topic(topic: str) -> str | None:
    """The node id of a ``nodes/{node}/...`` or ``fl/updates/{node}`` topic, else ``None``."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/") or len(parts) < 4:
        return None
    if parts[2] == "nodes" and len(parts) == 5:
        node = parts[3]
    elif parts[2:4] == ["fl", "updates"] and len(parts) == 5:
        node = parts[4]
    else:
        return None
    return node if _NODE.fullmatch(node) else None
