"""``agent``: peak RSS and CPU seconds of ``smfel-agent run`` on a whole 30-minute record.

Each entry runs the real command as a subprocess (``--exit-on-end``, MQTT off, the record
replayed as fast as possible with its labels, so every beat is classified and learned) and
reads the child's resource usage from ``wait4``: peak resident set size and user + system CPU
seconds, interpreter start-up and imports included. Side by side in one run:

* ``agent/litert-float32``: the agent as shipped (LiteRT loaded, float32 hidden layer);
* ``agent/numpy``: the same agent with the numpy runtime (no LiteRT in the process);
* ``sensors-only``: the bare sensors pipeline (source, filter, QRS, beat features), the
  floor the agent's own work sits on;
* ``imports-only``: the interpreter importing the agent and exiting.

Targets (issue 6): peak RSS <= 80 MB with LiteRT loaded, <= 2 CPU seconds per 30-minute record.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._core import Result, benchmark

RECORD = "119"  # 30:06 of MIT-BIH, 1987 beats, many ventricular beats
REPEAT = 3
HIDDEN = 256

_SENSORS_ONLY = """
import sys
from smfel.sensors.beats import BeatExtractor
from smfel.sensors.sources import open_source
ex = None
n = 0
for chunk in open_source(sys.argv[1]):
    if ex is None:
        ex = BeatExtractor(chunk.fs)
    n += len(ex.push(chunk))
n += len(ex.flush()) if ex is not None else 0
print(n)
"""

_IMPORTS_ONLY = "import smfel.agent.daemon.service, ai_edge_litert.interpreter"

_MAKE_BUNDLE = """
import sys
from pathlib import Path
from smfel.agent.bundle import write_bundle
from smfel.agent.daemon.keyfiles import public_key_pem
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey
from smfel.sensors.beats import N_FEATURES
d = Path(sys.argv[1])
key = Ed25519PrivateKey.generate()
(d / "aggregator.pub").write_text(public_key_pem(key))
write_bundle(d / "bundle", HiddenLayer.generate(N_FEATURES, int(sys.argv[2]), seed=1), signing_key=key)
"""


def _mitdb() -> Path:
    repo = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("SMFEL_MITDB", repo.parent / "shared" / "data" / "mitdb"))


# Linux carries a process's peak RSS across fork and exec (the signal struct keeps the high-water
# mark of the memory image it replaced), so a child forked from this process, which has every
# benchmark imported, would report at least this process's RSS. A bare interpreter (python -S,
# about 8 MB) forks the measured command instead and reports its wait4 figures.
_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
"""


def _measure(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of one child process."""
    env = {**os.environ, "SMFEL_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCH, *argv], capture_output=True, env=env, check=False
    )
    fields = proc.stdout.split()
    if proc.returncode != 0 or len(fields) != 3 or int(fields[0]) != 0:
        raise RuntimeError(f"{argv[:3]} failed: {proc.stdout!r} {proc.stderr.decode()[-2000:]}")
    return float(fields[1]), int(fields[2]) / 1024.0


def _config(d: Path, url: str, backend: str, name: str) -> Path:
    path = d / f"{name}.toml"
    path.write_text(
        f"""board = "x86-sim"
[node]
id = "bench"
[source]
url = "{url}"
[model]
bundle = "{d / "bundle"}"
trusted_keys = ["{d / "aggregator.pub"}"]
[runtime]
backend = "{backend}"
[mqtt]
enabled = false
[telemetry]
interval = 10.0
[state]
directory = "{d / ("state-" + name)}"
"""
    )
    return path


def _results(name: str, runs: list[tuple[float, float]], baseline: str | None) -> list[Result]:
    cpu = [c for c, _ in runs]
    rss = [r for _, r in runs]
    params = {"record": RECORD, "minutes": 30, "hidden": HIDDEN, "repeat": len(runs)}
    return [
        Result(f"{name}/cpu", params, statistics.median(cpu), min(cpu), max(cpu), "s", baseline),
        Result(
            f"{name}/peak_rss", params, statistics.median(rss), min(rss), max(rss), "MB", baseline
        ),
    ]


@benchmark("agent")
def bench_agent() -> list[Result]:
    mitdb = _mitdb()
    if not (mitdb / f"{RECORD}.hea").is_file():
        raise FileNotFoundError(f"MIT-BIH record {RECORD} not found in {mitdb} (set SMFEL_MITDB)")
    url = f"wfdb://{mitdb}/{RECORD}?speed=0&chunk=1"
    agent = [sys.executable, "-m", "smfel.agent.cli", "run", "--exit-on-end", "--config"]
    out: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="smfel-bench-agent-") as tmp:
        d = Path(tmp)
        subprocess.run([sys.executable, "-c", _MAKE_BUNDLE, str(d), str(HIDDEN)], check=True)
        cases: list[tuple[str, list[str], str | None]] = [
            ("agent/litert-float32", [*agent, str(_config(d, url, "litert", "litert"))], None),
            (
                "agent/numpy",
                [*agent, str(_config(d, url, "numpy", "numpy"))],
                "agent/litert-float32",
            ),
            ("sensors-only", [sys.executable, "-c", _SENSORS_ONLY, url], "agent/litert-float32"),
            ("imports-only", [sys.executable, "-c", _IMPORTS_ONLY], "agent/litert-float32"),
        ]
        for name, argv, baseline in cases:
            runs = []
            for i in range(REPEAT):
                # Every agent run starts from an empty state directory (no checkpoint to resume).
                for state in d.glob("state-*"):
                    subprocess.run(["rm", "-rf", str(state)], check=True)
                runs.append(_measure(argv))
                del i
            out += _results(name, runs, baseline)
    # A service starts once and then runs for days: the per-record cost that matters on a board
    # is the agent's CPU time minus the interpreter's start-up and imports.
    cpu = {r.name: r.median for r in out if r.name.endswith("/cpu")}
    startup = cpu["imports-only/cpu"]
    for r in out:
        if r.name.startswith("agent/") and r.name.endswith("/cpu"):
            r.extra = {"startup_s": startup, "processing_s": round(r.median - startup, 3)}
    return out
