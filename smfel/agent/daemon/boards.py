"""Board profiles: where they live and how one is read.

A profile is a small TOML file with the same sections as the site configuration (sampling rate
and serial port in ``[source]``, the NPU delegate and threads in ``[runtime]``, the state
directory in ``[state]``) plus a ``description``. The wheel ships them as the package data
``smfel._board_configs``; an editable install finds them in the repository's ``board_configs/``.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from smfel.agent.errors import SmfelError

__all__ = ["BoardNotFound", "board_dirs", "list_boards", "read_board"]

_REPO_DIR = Path(__file__).resolve().parents[3] / "board_configs"


class BoardNotFound(SmfelError):
    """The named board profile does not exist or is not valid TOML."""


def board_dirs() -> list[Traversable]:
    """Folders holding the shipped profiles, the installed package's first.

    In a wheel ``smfel/_board_configs`` has no ``__init__.py`` (a namespace package), so it is
    read through importlib.resources' traversables, never through ``str()`` of one.
    """
    dirs: list[Traversable] = []
    try:
        res = importlib.resources.files("smfel._board_configs")
    except ModuleNotFoundError:
        pass
    else:
        if res.is_dir():
            dirs.append(res)
    if _REPO_DIR.is_dir():
        dirs.append(_REPO_DIR)
    return dirs


def _profiles(d: Traversable | Path) -> list[Traversable | Path]:
    try:
        return [p for p in d.iterdir() if p.name.endswith(".toml") and p.is_file()]
    except OSError:
        return []


def list_boards(extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    names = {p.name[: -len(".toml")] for d in (*extra_dirs, *board_dirs()) for p in _profiles(d)}
    return sorted(names)


def read_board(name: str, *, extra_dirs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The profile ``name`` (a shipped name such as ``rpi4``, or a path to a ``.toml`` file)."""
    candidates: list[Traversable | Path]
    if name.endswith(".toml") or "/" in name:
        candidates = [Path(name)]
    else:
        candidates = [d.joinpath(f"{name}.toml") for d in (*extra_dirs, *board_dirs())]
    for path in candidates:
        if path.is_file():
            try:
                return tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
                raise BoardNotFound(f"profile {path} is unreadable: {err}") from err
    known = ", ".join(list_boards(extra_dirs)) or "none found"
    raise BoardNotFound(f"unknown board profile {name!r}; known: {known}")
