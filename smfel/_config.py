"""Typed configuration sections from TOML-shaped data, shared by the agent and the aggregator.

Every section is a frozen dataclass whose field types drive the checks: a value must already
have the type the field declares (TOML gives booleans, integers, floats, strings, arrays and
tables), integers are accepted where floats are expected, and every problem is reported on one
line naming ``section.key`` and what was expected, all of them together.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["build_sections", "coerce", "section_problems"]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin in (Mapping, dict) or tp is Mapping:
        return "a table of strings, numbers or booleans"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, str(tp))


def coerce(tp: Any, value: Any) -> Any:
    """``value`` as type ``tp``, or ``TypeError`` saying what was expected."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is tuple:
        if isinstance(value, list):
            item = typing.get_args(tp)[0]
            try:
                return tuple(coerce(item, v) for v in value)
            except TypeError:
                pass
    elif origin is Mapping or origin is dict:
        if isinstance(value, dict) and all(
            isinstance(v, str | int | float | bool) for v in value.values()
        ):
            return {str(k): v for k, v in value.items()}
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str and isinstance(value, str):
        return value
    raise TypeError(f"expected {_type_name(tp)}, got {value!r}")


def build_sections(
    data: Mapping[str, Any], sections: Mapping[str, type[Any]], *, skip: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Section objects built from ``data`` (keyword arguments for the config) and the problems."""
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        section = sections.get(key)
        if section is None:
            extra = f" or {' or '.join(skip)}" if skip else ""
            problems.append(f"{key}: unknown section; expected one of {sorted(sections)}{extra}")
            continue
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a table [{key}]")
            continue
        hints = typing.get_type_hints(section)
        args: dict[str, Any] = {}
        for name, raw in value.items():
            if name not in hints:
                problems.append(f"{key}.{name}: unknown key; expected one of {sorted(hints)}")
                continue
            try:
                args[name] = coerce(hints[name], raw)
            except TypeError as err:
                problems.append(f"{key}.{name}: {err}")
        kwargs[key] = section(**args)
    return kwargs, problems


def section_problems(config: Any) -> list[str]:
    """Range problems of every section of a config dataclass, as ``section.key: ...`` lines.

    A section reports its own problems from a ``_check()`` method returning ``key: ...`` lines.
    """
    problems: list[str] = []
    for f in dataclasses.fields(config):
        check = getattr(getattr(config, f.name), "_check", None)
        if check is not None:
            problems += [f"{f.name}.{p}" for p in check()]
    return problems
