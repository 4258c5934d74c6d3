"""The agent's subcommands: ``run``, ``keygen``, ``enroll``, ``check-config``, ``status``, ``selftest``.

Each takes ``--config FILE`` (default ``/etc/smfel/agent.toml``). A configuration that does not
validate prints one line per bad key on stderr and exits with ``EX_CONFIG`` (78), before
anything else is opened.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from smfel import __version__
from smfel._cli import EX_CONFIG
from smfel.agent.daemon.checkpoint import CHECKPOINT_FILE, read_checkpoint
from smfel.agent.daemon.config import AgentConfig, ConfigError, load_config
from smfel.agent.daemon.keyfiles import KeyFileError, load_trusted_keys
from smfel.agent.errors import SmfelError, StateFileError
from smfel.agent.keys import key_id
from smfel.agent.keystore import KeyStore, KeyStoreError

__all__ = ["add_commands"]

DEFAULT_CONFIG = "/etc/smfel/agent.toml"
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69


def _err(text: str) -> None:
    print(f"smfel-agent: {text}", file=sys.stderr)


def _config(args: argparse.Namespace) -> AgentConfig | None:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        for line in err.problems:
            _err(f"{err.source}: {line}")
        return None
    problems = _source_problems(config)
    for line in problems:
        _err(f"{args.config}: {line}")
    return None if problems else config


def _source_problems(config: AgentConfig) -> list[str]:
    """The source URL parsed as the sensors package would open it (constructing opens nothing)."""
    from smfel.sensors.errors import SourceError
    from smfel.sensors.sources import open_source

    try:
        open_source(config.source.url)
    except SourceError as err:
        return [f"source.url: {err}"]
    return []


def _run(args: argparse.Namespace) -> int:
    from smfel.agent.daemon.sdnotify import Notifier
    from smfel.agent.daemon.service import Agent

    config = _config(args)
    if config is None:
        return EX_CONFIG
    stop = threading.Event()
    agent = Agent(
        config,
        notifier=Notifier(),
        config_path=args.config,
        on_exhausted=(lambda _a: stop.set()) if args.exit_on_end else None,
    )
    handlers = {
        signal.SIGTERM: lambda *_: stop.set(),
        signal.SIGINT: lambda *_: stop.set(),
        signal.SIGHUP: lambda *_: agent.request_reload(),
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        agent.run(stop)
    except KeyFileError as err:
        # Without the aggregator's key nothing can be verified: a configuration problem that a
        # restart does not fix (the unit's RestartPreventExitStatus=78).
        _err(f"model.trusted_keys: {err}")
        return EX_CONFIG
    except (SmfelError, OSError) as err:
        # systemd restarts the service (Restart=on-failure); the line says why it stopped.
        _err(f"stopped: {err}")
        return EX_SOFTWARE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _keygen(args: argparse.Namespace) -> int:
    config = _config(args)
    if config is None:
        return EX_CONFIG
    store = KeyStore(config.state.directory)
    try:
        if store.read_only:
            key = store.load()
            action = "credential"
        elif (Path(config.state.directory) / "node.key").exists():
            if not args.rotate:
                key = store.load()
                action = "existing"
            else:
                store.rotate(config.node.id)
                key = store.load()
                action = "rotated"
        else:
            key = store.load_or_create()
            action = "generated"
    except KeyStoreError as err:
        _err(str(err))
        return 1
    print(json.dumps({"key_id": key_id(key), "key": action, "directory": config.state.directory}))
    return 0


def _enroll(args: argparse.Namespace) -> int:
    config = _config(args)
    if config is None:
        return EX_CONFIG
    try:
        enrolment = KeyStore(config.state.directory).export_public(config.node.id)
    except KeyStoreError as err:
        _err(str(err))
        return 1
    request = {
        **enrolment.to_dict(),
        "board": config.board,
        "site": config.node.site,
        "version": __version__,
    }
    print(json.dumps(request, indent=2, sort_keys=True))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    if config is None:
        return EX_CONFIG
    warnings = []
    if config.model.bundle and not (Path(config.model.bundle) / "manifest.json").is_file():
        warnings.append(f"model.bundle: no manifest.json in {config.model.bundle} yet")
    for p in config.model.trusted_keys:
        if not Path(p).is_file():
            warnings.append(f"model.trusted_keys: {p} does not exist yet")
    for w in warnings:
        _err(f"warning: {w}")
    if args.strict and warnings:
        return EX_CONFIG
    print(json.dumps(config.to_dict(), indent=2) if args.show else f"{args.config}: ok")
    return 0


def _status(args: argparse.Namespace) -> int:
    config = _config(args)
    if config is None:
        return EX_CONFIG
    out: dict[str, Any] = {"node": config.node.id, "state_directory": config.state.directory}
    status = config.state.path("status.json")
    try:
        out["service"] = json.loads(status.read_text())
    except (OSError, ValueError) as err:
        out["service"] = None
        out["service_error"] = f"{status}: {err}"
    ckpt_path = config.state.path(CHECKPOINT_FILE)
    try:
        ckpt = read_checkpoint(ckpt_path)
    except StateFileError as err:
        out["checkpoint"] = None
        out["checkpoint_error"] = err.reason
    else:
        out["checkpoint"] = {
            **ckpt.meta,
            "beats_learned": int(ckpt.learner.n_seen_),
            "age_s": round(time.time() - ckpt_path.stat().st_mtime, 1),
        }
    print(json.dumps(out, indent=2))
    return 0 if out["service"] is not None or out["checkpoint"] is not None else 1


def _broker_reachable(config: AgentConfig, timeout: float = 3.0) -> str | None:
    try:
        with socket.create_connection((config.mqtt.host, config.mqtt.port), timeout=timeout):
            return None
    except OSError as err:
        return f"{config.mqtt.host}:{config.mqtt.port}: {err}"


def _selftest(args: argparse.Namespace) -> int:
    from smfel.agent.bundle import BundleError, load_bundle
    from smfel.agent.daemon.service import backends
    from smfel.agent.runtime import DelegateSpec, open_runtime

    config = _config(args)
    if config is None:
        return EX_CONFIG
    out: dict[str, Any] = {"node": config.node.id, "board": config.board}
    ok = True
    try:
        keys = load_trusted_keys(config.model.trusted_keys)
        bundle = load_bundle(config.model.bundle or config.state.path("bundle"), keys)
    except (KeyFileError, BundleError) as err:
        out["model"] = {"error": str(err)}
        ok = False
    else:
        delegate = None
        if config.runtime.delegate:
            opts = {k: str(v) for k, v in config.runtime.delegate_options.items()}
            delegate = DelegateSpec(config.runtime.delegate, opts)
        variant = (
            config.model.variant if config.model.variant in bundle.manifest.variants else "float32"
        )
        with open_runtime(
            bundle,
            variant=variant,
            delegate=delegate,
            num_threads=config.runtime.threads,
            prefer=backends(config.runtime.backend),
        ) as rt:
            out["model"] = {"model_hash": bundle.model_hash, "runtime": rt.status.as_dict()}
    if config.mqtt.enabled:
        problem = _broker_reachable(config)
        out["broker"] = {"reachable": problem is None, "error": problem}
        ok = ok and problem is None
    print(json.dumps(out, indent=2))
    return 0 if ok else EX_UNAVAILABLE


def add_commands(sub: Any) -> None:
    """Add the service subcommands to the ``smfel-agent`` parser's subparsers."""

    def parser(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help)
        p.add_argument(
            "--config", default=DEFAULT_CONFIG, help=f"site file (default {DEFAULT_CONFIG})"
        )
        return p

    p = parser("run", help="run the agent service (systemd: Type=notify)")
    p.add_argument("--exit-on-end", action="store_true", help="stop when the source ends (replays)")
    p.set_defaults(func=_run)
    p = parser("keygen", help="generate the device's Ed25519 key in its state directory")
    p.add_argument(
        "--rotate",
        action="store_true",
        help="replace an existing key (the old one is kept until acknowledged)",
    )
    p.set_defaults(func=_keygen)
    parser("enroll", help="print the enrolment request (node id, public key, board)").set_defaults(
        func=_enroll
    )
    p = parser("check-config", help="validate the configuration (exit 78 when it is bad)")
    p.add_argument("--show", action="store_true", help="print the merged configuration")
    p.add_argument("--strict", action="store_true", help="missing bundle or key files are errors")
    p.set_defaults(func=_check_config)
    parser(
        "status", help="the service's last status and checkpoint, from its state directory"
    ).set_defaults(func=_status)
    parser("selftest", help="runtime, delegate, latency and broker reachability").set_defaults(
        func=_selftest
    )
