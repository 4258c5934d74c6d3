"""Board profiles: where they live and how one is read.

A profile is a small TOML file with the same sections as the site configuration (sampling rate
and serial port in ``[source]``, the NPU delegate and threads in ``[runtime]``, the state
directory in ``[state]``) plus a ``description``. The wheel ships them as the package data
``smfel._board_configs``; an editable install finds them in the repository's ``board_configs/``.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from pathlib import Path
from typing import Any

from smfel.agent.errors import SmfelError

__all__ = ["BoardNotFound", "board_dirs", "list_boards", "read_board"]

_REPO_DIR = Path(__file__).resolve().parents[3] / "board_configs"


class BoardNotFound(SmfelError):
    """The named board profile does not exist or is not valid TOML."""


def board_dirs() -> list[Path]:
    """Directories holding the shipped profiles, the installed package's first."""
    dirs: list[Path] = []
    try:
        res = importlib.resources.files("smfel._board_configs")
    except ModuleNotFoundError:
        pass
    else:
        path = Path(str(res))
        if path.is_dir():
            dirs.append(path)
    if _REPO_DIR.is_dir():
        dirs.append(_REPO_DIR)
    return dirs


def list_boards(extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    names = {p.stem for d in (*extra_dirs, *board_dirs()) for p in d.glob("*.toml")}
    return sorted(names)


def read_board(name: str, *, extra_dirs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The profile ``name`` (a shipped name such as ``rpi4``, or a path to a ``.toml`` file)."""
    if name.endswith(".toml") or "/" in name:
        candidates = [Path(name)]
    else:
        candidates = [d / f"{name}.toml" for d in (*extra_dirs, *board_dirs())]
    for path in candidates:
        if path.is_file():
            try:
                with path.open("rb") as f:
                    return tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError) as err:
                raise BoardNotFound(f"profile {path} is unreadable: {err}") from err
    known = ", ".join(list_boards(extra_dirs)) or "none found"
    raise BoardNotFound(f"unknown board profile {name!r}; known: {known}")
