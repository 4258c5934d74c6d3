"""The shipped unit passes systemd's own checks: verify prints nothing, exposure <= 4.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "cross_build" / "systemd" / "smfel-agent.service"
INSTALLER = UNIT.parents[1] / "install.sh"


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is needed (apt-get install systemd; scripts/test installs it)"
    return tool


def runnable_copy(tmp_path: Path) -> Path:
    # verify refuses an ExecStart binary that does not exist on this machine.
    text = re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text())
    copy = tmp_path / "smfel-agent.service"
    copy.write_text(text)
    return copy


def test_unit_verifies_with_empty_output(tmp_path: Path) -> None:
    proc = subprocess.run(
        [analyze(), "verify", str(runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout + proc.stderr == ""


def test_unit_exposure_is_at_most_4(tmp_path: Path) -> None:
    proc = subprocess.run(
        [analyze(), "security", "--offline=true", "--threshold=40", str(runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert score is not None, proc.stdout
    assert float(score.group(1)) <= 4.0


def test_unit_has_the_service_contract() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "DynamicUser=yes",
        "SupplementaryGroups=dialout",
        "StateDirectory=smfel-agent",
        "ConfigurationDirectory=smfel",
        "ExecStart=/opt/smfel/venv/bin/smfel-agent run --config /etc/smfel/agent.toml",
        "RestartPreventExitStatus=78",
    ):
        assert re.search(rf"(?m)^{re.escape(line)}$", text), line
    assert re.search(r"(?m)^WatchdogSec=\d+", text)


def test_installer_is_valid_bash_and_refuses_non_root_or_bad_options() -> None:
    assert subprocess.run(["bash", "-n", str(INSTALLER)], timeout=30).returncode == 0
    proc = subprocess.run(
        ["bash", str(INSTALLER), "--bogus"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    assert "unknown option --bogus" in proc.stderr


def test_installer_into_a_root_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    venv = root / "opt" / "smfel" / "venv"
    venv.parent.mkdir(parents=True)
    venv.symlink_to(sys.prefix)  # this venv, where smfel is installed
    args = ["bash", str(INSTALLER), "--root", str(root), "--no-pip", "--board", "rpi5"]
    args += ["--node-id", "ward3-bed12", "--broker", "mqtt.example:8883"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = root / "etc" / "smfel" / "agent.toml"
    text = site.read_text()
    assert 'board = "rpi5"' in text and 'id = "ward3-bed12"' in text and "port = 8883" in text
    assert 'trusted_keys = ["/etc/smfel/aggregator.pub"]' in text
    unit = root / "etc" / "systemd" / "system" / "smfel-agent.service"
    assert "ExecStart=/opt/smfel/venv/bin/smfel-agent run" in unit.read_text()
    # The installed unit verifies with its binary where the image will have it.
    copy = tmp_path / "smfel-agent.service"
    copy.write_text(
        unit.read_text().replace("ExecStart=/opt/smfel/", f"ExecStart={root}/opt/smfel/")
    )
    out = subprocess.run(
        [analyze(), "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout + out.stderr == ""
    # A second run keeps the site file.
    site.write_text(text + "\n# edited\n")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "keeping the existing" in proc.stdout
    assert site.read_text().endswith("# edited\n")
