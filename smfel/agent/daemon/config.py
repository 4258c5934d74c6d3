"""The agent's typed configuration: a board profile merged under the site file, checked up front.

A configuration is built in three layers, later ones winning key by key inside each section:
the defaults written below, the board profile named by the site file's ``board`` key (one of
``board_configs/*.toml`` or a path to such a file), and the site file itself (normally
``/etc/smfel/agent.toml``). Every key is checked for its type and range before the agent opens
a port, a file or a socket; every bad key is reported on its own line (``section.key: what was
expected``), and the command line exits with ``EX_CONFIG`` (78, sysexits.h), which systemd
treats as a configuration failure.

The same objects are built in code (``AgentConfig(node=NodeConfig(id="a"), ...)``) by the
fleet simulation, so nothing here needs a file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smfel._config import build_sections, section_problems
from smfel.agent.daemon.boards import BoardNotFound, read_board
from smfel.agent.errors import SmfelError

__all__ = [
    "AgentConfig",
    "AlertsConfig",
    "ConfigError",
    "LearningConfig",
    "ModelConfig",
    "MqttConfig",
    "NodeConfig",
    "RuntimeConfig",
    "SourceConfig",
    "StateConfig",
    "TelemetryConfig",
    "WatchdogConfig",
    "config_from_mapping",
    "load_config",
]

DEFAULT_BOARD = "x86-sim"
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(SmfelError):
    """The configuration is unusable; ``problems`` holds one line per bad key."""

    def __init__(self, problems: list[str], source: str = "<config>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


# Every section is a frozen dataclass: its field types drive the checks in _coerce, its
# defaults are the built-in layer, and ``_check`` adds the range checks a type cannot express.


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: str = ""
    site: str = ""

    def _check(self) -> list[str]:
        if not _NODE_ID.match(self.id):
            return [
                "id: expected 1-64 characters of letters, digits, '.', '_' or '-' "
                f"(it becomes part of MQTT topics), got {self.id!r}"
            ]
        return []


@dataclass(frozen=True, slots=True)
class SourceConfig:
    url: str = "synthetic://?hr=72&pvc=0.05&apc=0.02&seed=1"
    fs: int = 360
    lead: str = "MLII"

    def _check(self) -> list[str]:
        out = []
        if "://" not in self.url:
            out.append(
                f"url: expected a source URL such as serial:///dev/ttyACM0, got {self.url!r}"
            )
        if not 50 <= self.fs <= 10_000:
            out.append(f"fs: expected a sampling rate in Hz between 50 and 10000, got {self.fs}")
        if not self.lead:
            out.append("lead: expected a signal name such as MLII")
        return out


@dataclass(frozen=True, slots=True)
class ModelConfig:
    bundle: str = ""
    variant: Literal["float32", "int8", "int16x8"] = "float32"
    trusted_keys: tuple[str, ...] = ()
    bundle_topic: bool = True


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    backend: Literal["auto", "litert", "tflite_runtime", "numpy"] = "auto"
    delegate: str = ""
    delegate_options: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1

    def _check(self) -> list[str]:
        if not 1 <= self.threads <= 64:
            return [f"threads: expected 1..64, got {self.threads}"]
        return []


@dataclass(frozen=True, slots=True)
class LearningConfig:
    enabled: bool = True
    min_beats: int = 50
    checkpoint_every: int = 500
    C: float = 0.0
    class_weight: tuple[float, ...] = ()

    def _check(self) -> list[str]:
        out = []
        if self.min_beats < 1:
            out.append(f"min_beats: expected a positive number of beats, got {self.min_beats}")
        if self.checkpoint_every < 1:
            out.append(
                f"checkpoint_every: expected a positive number of beats, got {self.checkpoint_every}"
            )
        if self.class_weight and (
            len(self.class_weight) != 4 or not all(w > 0 for w in self.class_weight)
        ):
            out.append(
                "class_weight: expected four positive weights for N, S, V, F (or none), "
                f"got {list(self.class_weight)}"
            )
        if self.C < 0:
            out.append(
                f"C: expected a positive ridge parameter (0 = the model default), got {self.C}"
            )
        return out


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    keepalive: int = 30

    def _check(self) -> list[str]:
        out = []
        if not self.host:
            out.append("host: expected a broker host name or address")
        if not 1 <= self.port <= 65535:
            out.append(f"port: expected 1..65535, got {self.port}")
        if not 5 <= self.keepalive <= 3600:
            out.append(f"keepalive: expected 5..3600 seconds, got {self.keepalive}")
        if bool(self.cert_file) != bool(self.key_file):
            out.append("cert_file: a client certificate needs key_file too (and the reverse)")
        return out


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    interval: float = 10.0
    home_assistant: bool = False
    discovery_prefix: str = "homeassistant"

    def _check(self) -> list[str]:
        if not 0.05 <= self.interval <= 3600:
            return [f"interval: expected 0.05..3600 seconds, got {self.interval}"]
        return []


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    v_run: int = 3
    v_per_minute: float = 10.0
    window: float = 60.0
    cooldown: float = 30.0

    def _check(self) -> list[str]:
        out = []
        if self.v_run < 2:
            out.append(f"v_run: expected at least 2 consecutive beats, got {self.v_run}")
        if self.v_per_minute <= 0:
            out.append(f"v_per_minute: expected a positive rate, got {self.v_per_minute}")
        if not 5 <= self.window <= 3600:
            out.append(f"window: expected 5..3600 seconds, got {self.window}")
        if self.cooldown < 0:
            out.append(f"cooldown: expected seconds >= 0, got {self.cooldown}")
        return out


@dataclass(frozen=True, slots=True)
class StateConfig:
    directory: str = "/var/lib/smfel-agent"

    def _check(self) -> list[str]:
        return [] if self.directory else ["directory: expected a directory path"]

    def path(self, name: str) -> Path:
        """``name`` inside the state directory (absolute names are kept)."""
        return Path(self.directory) / name


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    stall_seconds: float = 10.0

    def _check(self) -> list[str]:
        if not 0.1 <= self.stall_seconds <= 3600:
            return [f"stall_seconds: expected 0.1..3600 seconds, got {self.stall_seconds}"]
        return []


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole configuration; every section has working defaults except ``node.id``."""

    node: NodeConfig = field(default_factory=NodeConfig)
    board: str = DEFAULT_BOARD
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)

    def validate(self) -> AgentConfig:
        """Raise :class:`ConfigError` listing every out-of-range value; return ``self``."""
        problems = section_problems(self)
        if problems:
            raise ConfigError(problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML-shaped), e.g. for ``check-config`` output."""
        out = dataclasses.asdict(self)
        out["model"]["trusted_keys"] = list(self.model.trusted_keys)
        return out


_SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(AgentConfig)[f.name]
    for f in dataclasses.fields(AgentConfig)
    if f.name != "board"
}


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    board_dirs: tuple[Path, ...] = (),
) -> AgentConfig:
    """Build and validate a config from TOML-shaped data (site layer), with its board profile.

    Reads the board profile (a small TOML file) but nothing else. Every problem found is
    collected and raised together as one :class:`ConfigError`.
    """
    problems: list[str] = []
    board = data.get("board", DEFAULT_BOARD)
    layers: dict[str, Any] = {}
    if not isinstance(board, str) or not board:
        problems.append(f"board: expected a board profile name or path, got {board!r}")
    else:
        try:
            profile = read_board(board, extra_dirs=board_dirs)
        except BoardNotFound as err:
            problems.append(f"board: {err}")
        else:
            layers = _merge(layers, {k: v for k, v in profile.items() if k != "description"})
    layers = _merge(layers, data)
    kwargs, section_problems = build_sections(layers, _SECTIONS, skip=("board",))
    problems += section_problems
    kwargs["board"] = board if isinstance(board, str) else DEFAULT_BOARD
    config = AgentConfig(**kwargs)
    try:
        config.validate()
    except ConfigError as err:
        problems += err.problems
    if problems:
        raise ConfigError(problems, source)
    return config


def load_config(path: str | os.PathLike[str], *, board_dirs: tuple[Path, ...] = ()) -> AgentConfig:
    """Read a site TOML file and its board profile into a validated :class:`AgentConfig`.

    The state directory defaults to ``$STATE_DIRECTORY`` when systemd sets it
    (``StateDirectory=``) and the files do not name one.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise ConfigError([f"cannot read the file: {err.strerror}"], name) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"not valid TOML: {err}"], name) from err
    config = config_from_mapping(data, source=name, board_dirs=board_dirs)
    state_env = os.environ.get("STATE_DIRECTORY")
    named = isinstance(data.get("state"), dict) and "directory" in data["state"]
    if state_env and not named:
        # systemd may pass several colon-separated directories; ours is the first.
        config = dataclasses.replace(
            config, state=dataclasses.replace(config.state, directory=state_env.split(":")[0])
        )
    return config
