"""Home Assistant MQTT discovery for the agent's telemetry.

Home Assistant creates entities from retained JSON configs published on
``{discovery_prefix}/{component}/{object_id}/config`` (the "MQTT Discovery" protocol of its MQTT
integration). Each sensor reads one key of the flat telemetry record with a value template; the
node's retained status topic drives availability. Nothing is published about the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smfel import __version__

__all__ = ["DiscoverySensor", "discovery_messages"]


@dataclass(frozen=True, slots=True)
class DiscoverySensor:
    key: str
    name: str
    unit: str | None
    icon: str
    state_class: str | None = "measurement"


SENSORS = (
    DiscoverySensor("hr_bpm", "Heart rate", "bpm", "mdi:heart-pulse"),
    DiscoverySensor("n_per_min", "Normal beats per minute", "beats/min", "mdi:heart"),
    DiscoverySensor(
        "s_per_min", "Supraventricular beats per minute", "beats/min", "mdi:heart-flash"
    ),
    DiscoverySensor("v_per_min", "Ventricular beats per minute", "beats/min", "mdi:heart-broken"),
    DiscoverySensor("f_per_min", "Fusion beats per minute", "beats/min", "mdi:heart-half-full"),
    DiscoverySensor("model_round", "Model round", None, "mdi:counter", None),
    DiscoverySensor("state", "Agent status", None, "mdi:state-machine", None),
)


def discovery_messages(
    node_id: str,
    *,
    telemetry_topic: str,
    status_topic: str,
    discovery_prefix: str = "homeassistant",
    board: str = "",
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) pairs to publish retained, one per sensor."""
    device = {
        "identifiers": [f"smfel_{node_id}"],
        "name": f"smfel {node_id}",
        "manufacturer": "smfel",
        "model": board or "smfel-agent",
        "sw_version": __version__,
    }
    out = []
    for s in SENSORS:
        object_id = f"smfel_{node_id}_{s.key}".replace(".", "_").replace("-", "_")
        payload: dict[str, Any] = {
            "name": s.name,
            "unique_id": object_id,
            "object_id": object_id,
            "state_topic": telemetry_topic,
            "value_template": f"{{{{ value_json.{s.key} }}}}",
            "icon": s.icon,
            "device": device,
            "availability_topic": status_topic,
            # The birth record is JSON with a "state" field; the Last Will is the same shape.
            "availability_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
            "expire_after": 600,
        }
        if s.unit is not None:
            payload["unit_of_measurement"] = s.unit
        if s.state_class is not None:
            payload["state_class"] = s.state_class
        out.append((f"{discovery_prefix}/sensor/{object_id}/config", payload))
    return out
