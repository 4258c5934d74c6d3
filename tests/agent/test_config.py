"""The typed configuration: board profile under the site file, every bad key on its own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from smfel.agent.daemon.boards import list_boards, read_board
from smfel.agent.daemon.config import (
    AgentConfig,
    ConfigError,
    NodeConfig,
    config_from_mapping,
    load_config,
)

pytestmark = pytest.mark.device

BOARDS = ("rpi4", "rpi5", "coral-devboard", "imx8mp", "qemu-aarch64", "x86-sim")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_every_shipped_board_profile_gives_a_valid_config() -> None:
    assert set(BOARDS) <= set(list_boards())
    for board in BOARDS:
        config = config_from_mapping({"board": board, "node": {"id": "n1"}})
        assert config.board == board
        profile = read_board(board)
        assert config.source.fs == profile["source"]["fs"]
        assert config.runtime.delegate == profile["runtime"]["delegate"]


def test_site_file_wins_over_the_board_profile_key_by_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
board = "coral-devboard"
[node]
id = "ward3-bed12"
[source]
url = "serial:///dev/ttyUSB1?baud=115200&format=ascii"
[runtime]
threads = 3
[state]
directory = "/srv/smfel"
""",
    )
    config = load_config(path)
    assert config.node.id == "ward3-bed12"
    assert config.source.url.startswith("serial:///dev/ttyUSB1")
    assert config.source.fs == 360  # from the profile
    assert config.runtime.threads == 3  # site
    assert config.runtime.delegate == "libedgetpu.so.1"  # profile, same section
    assert config.runtime.delegate_options == {"device": ":0"}
    assert config.model.variant == "int8"  # profile
    assert config.state.directory == "/srv/smfel"


def test_state_directory_from_systemd_unless_the_site_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/smfel-agent-x:/other")
    config = load_config(write(tmp_path, 'board = "rpi4"\n[node]\nid = "a"\n'))
    assert config.state.directory == "/var/lib/smfel-agent-x"
    named = write(tmp_path, '[node]\nid = "a"\n[state]\ndirectory = "/srv/s"\n')
    assert load_config(named).state.directory == "/srv/s"


def test_every_bad_key_is_reported_on_its_own_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
board = "rpi4"
colour = "blue"
[node]
id = "bad id/with slash"
[source]
fs = "fast"
[mqtt]
port = 70000
keepalive = true
[learning]
min_beats = 0
checkpoint_every_beats = 10
[model]
variant = "int4"
trusted_keys = "one.pub"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == sorted(
        [
            "colour",
            "node.id",
            "source.fs",
            "mqtt.port",
            "mqtt.keepalive",
            "learning.min_beats",
            "learning.checkpoint_every_beats",
            "model.variant",
            "model.trusted_keys",
        ]
    )
    assert all("expected" in p for p in problems)
    assert info.value.source == str(path)


def test_unknown_board_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"board": "pdp11", "node": {"id": "a"}})
    (line,) = info.value.problems
    assert line.startswith("board: unknown board profile 'pdp11'")
    assert "rpi4" in line


def test_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[node\nid=1"))


def test_config_built_in_code_validates_the_same_way() -> None:
    AgentConfig(node=NodeConfig(id="sim-101")).validate()
    with pytest.raises(ConfigError, match=r"node\.id"):
        AgentConfig().validate()


def test_a_board_profile_given_as_a_path(tmp_path: Path) -> None:
    board = tmp_path / "myboard.toml"
    board.write_text('description = "x"\n[source]\nfs = 250\n')
    config = config_from_mapping({"board": str(board), "node": {"id": "a"}})
    assert config.source.fs == 250
