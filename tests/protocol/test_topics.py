"""Topic names of DESIGN.md and their guard against ids that would address other nodes."""

from __future__ import annotations

import pytest
from paho.mqtt.client import topic_matches_sub

from smfel.agent import topics

pytestmark = pytest.mark.device


def test_topics_follow_the_design() -> None:
    assert topics.status("n1") == "smfel/v1/nodes/n1/status"
    assert topics.telemetry("n1") == "smfel/v1/nodes/n1/telemetry"
    assert topics.events("n1") == "smfel/v1/nodes/n1/events"
    assert topics.labels("n1") == "smfel/v1/nodes/n1/labels"
    assert topics.keys("n1") == "smfel/v1/nodes/n1/keys"
    assert topics.update("n1") == "smfel/v1/fl/updates/n1"
    assert topics.ROUND == "smfel/v1/fl/round"
    assert topics.GLOBAL == "smfel/v1/fl/global"
    assert topics.BUNDLE == "smfel/v1/fl/bundle"
    assert topics.CHECKPOINT == "smfel/v1/ledger/checkpoint"
    assert topics.UPDATES_SHARED == "$share/aggregators/smfel/v1/fl/updates/+"
    assert topic_matches_sub(topics.UPDATES_ALL, topics.update("ward3-bed12"))


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "a+", "x" * 65, "-lead"])
def test_node_ids_that_are_not_one_topic_level_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="node id"):
        topics.update(bad)


def test_node_from_topic() -> None:
    assert topics.node_from_topic(topics.update("n-1")) == "n-1"
    assert topics.node_from_topic(topics.status("n.2")) == "n.2"
    assert topics.node_from_topic(topics.ROUND) is None
    assert topics.node_from_topic("other/v1/fl/updates/n1") is None
