"""Host-side helpers of cross_build/qemu/run (run natively by the host's Python).

``testreqs``  the pytest, pytest-timeout and hypothesis requirements of the ``dev`` extra.
``shard N``   splits the test files that mark tests ``device`` into N groups of about equal
              emulated run time, using the per-file times of the last run (``durations.json`` in
              the cache) when there are any. Files without the marker are not even imported:
              under emulation an import costs ten times more, and their conftest files may need
              what the board does not have (PostgreSQL drivers).
``report``    reads the shards' JUnit reports: prints the totals, records per-file times, and
              exits non-zero when no test ran.
"""

from __future__ import annotations

import json
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

TOOLS = {"pytest", "pytest-timeout", "hypothesis"}
MARK = "mark.device"


def testreqs(pyproject: Path) -> str:
    from packaging.requirements import Requirement

    with pyproject.open("rb") as f:
        dev = tomllib.load(f)["project"]["optional-dependencies"]["dev"]
    return " ".join(r for r in dev if Requirement(r).name in TOOLS)


def shard(n: int, suite: Path, durations: Path) -> list[list[str]]:
    files = sorted(
        p.relative_to(suite).as_posix()
        for p in (suite / "tests").rglob("test_*.py")
        if MARK in p.read_text(encoding="utf-8")
    )
    known: dict[str, float] = {}
    if durations.is_file():
        known = json.loads(durations.read_text())
    if known:
        # Unknown files count as the median known file, so a new file is not assumed free.
        median = sorted(known.values())[len(known) // 2]
        cost = {f: known.get(f, median) for f in files}
    else:  # a first run (CI): the size of a file is a rough measure of its tests
        cost = {f: float((suite / f).stat().st_size) for f in files}
    loads = [0.0] * n
    groups: list[list[str]] = [[] for _ in range(n)]
    for f in sorted(files, key=lambda f: -cost[f]):
        i = loads.index(min(loads))
        groups[i].append(f)
        loads[i] += cost[f]
    return [g for g in groups if g]


def _file_of(case: ET.Element) -> str:
    # classname is the dotted module path plus any test class: tests.learner.test_rls[.TestX]
    parts = case.get("classname", "").split(".")
    while parts and not parts[-1].startswith("test_"):
        parts.pop()
    return "/".join(parts) + ".py"


def report(reports: list[Path], durations: Path) -> int:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    times: dict[str, float] = json.loads(durations.read_text()) if durations.is_file() else {}
    seen: dict[str, float] = {}
    for path in reports:
        if not path.is_file():
            print(f"missing report {path}", file=sys.stderr)
            totals["errors"] += 1
            continue
        root = ET.parse(path).getroot()  # noqa: S314 (our own pytest's report)
        for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
            for key in totals:
                totals[key] += int(suite.get(key, 0))
            for case in suite.iter("testcase"):
                f = _file_of(case)
                seen[f] = seen.get(f, 0.0) + float(case.get("time", 0))
    times.update(seen)
    durations.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    ran = totals["tests"] - totals["skipped"]
    print(
        f"{ran} tests ran: {ran - totals['failures'] - totals['errors']} passed, "
        f"{totals['failures']} failed, {totals['errors']} errors, {totals['skipped']} skipped"
    )
    return 0 if ran > 0 and not totals["failures"] and not totals["errors"] else 1


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "testreqs":
        print(testreqs(Path(rest[0])))
        return 0
    if command == "shard":
        for group in shard(int(rest[0]), Path(rest[1]), Path(rest[2])):
            print(" ".join(group))
        return 0
    if command == "report":
        return report([Path(p) for p in rest[1:]], Path(rest[0]))
    print(f"tier.py: unknown command {command}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
