"""Our MQTT topic filter matching agrees with paho's (used here only as an independent oracle)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from smfel.agent.transport import topic_matches

pytestmark = pytest.mark.device

levels = st.sampled_from(["a", "b", "smfel", "", "$SYS", "x1"])
topics_ = st.lists(levels, min_size=1, max_size=5).map("/".join)


@st.composite
def filters(draw: st.DrawFn) -> str:
    parts = draw(st.lists(levels | st.just("+"), min_size=1, max_size=5))
    if draw(st.booleans()):
        parts.append("#")
    return "/".join(parts)


@settings(max_examples=500, deadline=None)
@given(filters(), topics_)
def test_agrees_with_paho(topic_filter: str, topic: str) -> None:
    assert topic_matches(topic_filter, topic) == topic_matches_sub(topic_filter, topic)


def test_shared_subscriptions_match_like_their_filter() -> None:
    assert topic_matches("$share/aggregators/smfel/v1/fl/updates/+", "smfel/v1/fl/updates/n1")
    assert not topic_matches("$share/aggregators/smfel/v1/fl/updates/+", "smfel/v1/fl/round")
    assert topic_matches("a/#", "a")
    assert not topic_matches("#", "$SYS/x")
