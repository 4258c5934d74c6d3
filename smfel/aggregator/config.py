"""The aggregation service's typed configuration, from TOML, checked before any I/O.

Sections (every key has a working default except the model bundle)::

    [service]  state_dir, key_file, ledger (URL; default sqlite in state_dir), registry
    [model]    bundle (directory written by ``model init``), classes, C, class_weight
    [rounds]   strategy, quorum, duration (seconds to the deadline), max_rounds, min_beats,
               max_payload (bytes), max_clock_skew, max_age (seconds), seed
    [mqtt]     host, port, tls, ca_file, cert_file, key_file, username, password_file,
               topic_prefix, share_group, client_id

Bad keys are reported together, one line each (``section.key: what was expected``); the command
line exits with ``EX_CONFIG`` (78). The simulation builds the same objects in code.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smfel._config import build_sections, section_problems
from smfel.agent.model_defaults import DEFAULT_C, DEFAULT_CLASSES
from smfel.aggregator.errors import AggregatorConfigError
from smfel.aggregator.strategies import STRATEGIES

__all__ = [
    "AggregatorConfig",
    "ModelSection",
    "MqttSection",
    "RoundsSection",
    "ServiceSection",
    "config_from_mapping",
    "load_config",
]


@dataclass(frozen=True, slots=True)
class ServiceSection:
    state_dir: str = "/var/lib/smfel-aggregator"
    key_file: str = "aggregator.key"
    ledger: str = ""
    registry: str = "registry.sqlite"

    def path(self, name: str) -> Path:
        return Path(self.state_dir) / name

    def ledger_url(self) -> str:
        return self.ledger or f"sqlite:///{self.path('ledger.sqlite')}"

    def _check(self) -> list[str]:
        return [] if self.state_dir else ["state_dir: expected a directory path"]


@dataclass(frozen=True, slots=True)
class ModelSection:
    bundle: str = ""
    classes: tuple[str, ...] = DEFAULT_CLASSES
    C: float = DEFAULT_C
    class_weight: tuple[float, ...] = ()

    def _check(self) -> list[str]:
        out = []
        if not self.bundle:
            out.append("bundle: expected the model bundle directory (smfel-aggregator model init)")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            out.append(f"classes: expected at least two distinct names, got {list(self.classes)}")
        if not self.C > 0:
            out.append(f"C: expected a positive ridge parameter, got {self.C}")
        if self.class_weight and (
            len(self.class_weight) != len(self.classes) or min(self.class_weight) <= 0
        ):
            out.append(f"class_weight: expected {len(self.classes)} positive numbers or nothing")
        return out

    def weights(self) -> tuple[float, ...]:
        return self.class_weight or tuple(1.0 for _ in self.classes)


@dataclass(frozen=True, slots=True)
class RoundsSection:
    strategy: str = "exact"
    quorum: int = 1
    duration: float = 60.0
    max_rounds: int = 0
    min_beats: int = 50
    max_payload: int = 4 * 1024 * 1024
    max_clock_skew: float = 300.0
    max_age: float = 3600.0
    seed: int = 0
    close_when_all_reported: bool = True

    def _check(self) -> list[str]:
        out = []
        if self.strategy not in STRATEGIES:
            out.append(f"strategy: expected one of {sorted(STRATEGIES)}, got {self.strategy!r}")
        if self.quorum < 1:
            out.append(f"quorum: expected at least 1 update, got {self.quorum}")
        if not 0.01 <= self.duration <= 7 * 86400:
            out.append(f"duration: expected 0.01 s .. 7 days, got {self.duration}")
        if self.max_rounds < 0:
            out.append(f"max_rounds: expected >= 0 (0 = no limit), got {self.max_rounds}")
        if self.min_beats < 1:
            out.append(f"min_beats: expected a positive number of beats, got {self.min_beats}")
        if self.max_payload < 1024:
            out.append(f"max_payload: expected at least 1024 bytes, got {self.max_payload}")
        if self.max_clock_skew < 0 or self.max_age <= 0:
            out.append("max_clock_skew/max_age: expected non-negative / positive seconds")
        return out


@dataclass(frozen=True, slots=True)
class MqttSection:
    host: str = "localhost"
    port: int = 1883
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    topic_prefix: str = "smfel/v1"
    share_group: str = "aggregators"
    client_id: str = ""

    def _check(self) -> list[str]:
        out = []
        if not self.host:
            out.append("host: expected a broker host name or address")
        if not 1 <= self.port <= 65535:
            out.append(f"port: expected 1..65535, got {self.port}")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#"):
            out.append("topic_prefix: expected a topic prefix such as smfel/v1")
        if bool(self.cert_file) != bool(self.key_file):
            out.append("cert_file: a client certificate needs key_file too (and the reverse)")
        return out


@dataclass(frozen=True, slots=True)
class AggregatorConfig:
    service: ServiceSection = field(default_factory=ServiceSection)
    model: ModelSection = field(default_factory=ModelSection)
    rounds: RoundsSection = field(default_factory=RoundsSection)
    mqtt: MqttSection = field(default_factory=MqttSection)

    def validate(self) -> AggregatorConfig:
        problems = section_problems(self)
        if problems:
            raise AggregatorConfigError(problems)
        return self


_SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(AggregatorConfig)[f.name]
    for f in dataclasses.fields(AggregatorConfig)
}


def config_from_mapping(data: Mapping[str, Any], *, source: str = "<config>") -> AggregatorConfig:
    """Build and validate a config from TOML-shaped data; all problems raised together."""
    kwargs, problems = build_sections(data, _SECTIONS)
    config = AggregatorConfig(**kwargs)
    try:
        config.validate()
    except AggregatorConfigError as err:
        problems += err.problems
    if problems:
        raise AggregatorConfigError(problems, source)
    return config


def load_config(path: str | os.PathLike[str]) -> AggregatorConfig:
    """Read and validate a TOML file; relative paths in it are taken from its directory."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise AggregatorConfigError([f"cannot read the file: {err.strerror}"], name) from err
    except tomllib.TOMLDecodeError as err:
        raise AggregatorConfigError([f"not valid TOML: {err}"], name) from err
    config = config_from_mapping(data, source=name)
    base = Path(name).resolve().parent
    service = config.service
    model = config.model
    return dataclasses.replace(
        config,
        service=dataclasses.replace(service, state_dir=str(base / service.state_dir)),
        model=dataclasses.replace(model, bundle=str(base / model.bundle)),
    )
