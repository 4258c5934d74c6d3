"""The agent's subcommands in-process: exit 78 with one line per bad key, keys, enrolment, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smfel._cli import EX_CONFIG
from smfel.agent.cli import main
from smfel.agent.keystore import Enrolment

pytestmark = pytest.mark.device


def site(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""board = "rpi4"
[node]
id = "ward3-bed12"
[state]
directory = "{tmp_path / "state"}"
{extra}"""
    )
    return path


def test_check_config_ok_and_merged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = site(tmp_path)
    assert main(["check-config", "--config", str(path), "--show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["board"] == "rpi4"
    assert shown["source"]["url"].startswith("serial:///dev/ttyACM0")
    assert shown["node"]["id"] == "ward3-bed12"


def test_bad_config_exits_78_with_one_line_per_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path, "[mqtt]\nport = 0\nhots = 'x'\n[alerts]\nv_run = 1\n")
    for command in ("run", "check-config", "enroll", "keygen", "status", "selftest"):
        assert main([command, "--config", str(path)]) == EX_CONFIG
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 3, lines
        assert {line.split(": ")[2].split(":")[0] for line in lines} == {
            "mqtt.port",
            "mqtt.hots",
            "alerts.v_run",
        }


def test_a_bad_source_url_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path, '[source]\nurl = "carrier-pigeon://loft"\n')
    assert main(["check-config", "--config", str(path)]) == EX_CONFIG
    assert "source.url" in capsys.readouterr().err


def test_keygen_then_enroll_prints_a_valid_enrolment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path)
    assert main(["keygen", "--config", str(path)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"] == "generated"
    key_file = tmp_path / "state" / "node.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert main(["keygen", "--config", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {**made, "key": "existing"}
    assert main(["enroll", "--config", str(path)]) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["node_id"] == "ward3-bed12" and request["board"] == "rpi4"
    assert Enrolment.from_dict(request).key_id == made["key_id"]
    assert "PRIVATE" not in json.dumps(request)


def test_status_without_a_service_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config", str(site(tmp_path))]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["service"] is None and out["checkpoint"] is None


def test_run_without_the_aggregator_key_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(
        tmp_path,
        f'[model]\ntrusted_keys = ["{tmp_path / "missing.pub"}"]\n[mqtt]\nenabled = false\n',
    )
    assert main(["run", "--config", str(path)]) == EX_CONFIG
    assert "model.trusted_keys" in capsys.readouterr().err
