"""The service's subcommands: ``serve``, ``model init``, ``nodes add|rotate|revoke|list``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from smfel._cli import EX_CONFIG, EX_DATAERR
from smfel.agent.errors import SmfelError
from smfel.agent.model_defaults import DEFAULT_HIDDEN, DEFAULT_SEED
from smfel.aggregator.config import AggregatorConfig, load_config
from smfel.aggregator.errors import AggregatorConfigError, RegistryError

__all__ = ["add_service_parsers"]

log = logging.getLogger(__name__)


def _config(args: argparse.Namespace) -> AggregatorConfig | None:
    try:
        return load_config(args.config)
    except AggregatorConfigError as err:
        for p in err.problems:
            print(f"{err.source}: {p}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from smfel.agent.keys import use_openssl_for_large_messages
    from smfel.aggregator.model import load_or_create_key
    from smfel.aggregator.service import Aggregator

    # The service verifies every device's stats update (700 KB at L = 256): OpenSSL's SHA-512
    # makes that about 1.4x faster than libsodium, and memory is not scarce here.
    use_openssl_for_large_messages()
    cfg = _config(args)
    if cfg is None:
        return EX_CONFIG
    key = load_or_create_key(cfg.service.path(cfg.service.key_file))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agg = Aggregator(cfg, signing_key=key)
    try:
        agg.start()
    except (SmfelError, OSError) as err:
        print(f"smfel-aggregator: cannot start: {err}", file=sys.stderr)
        return EX_CONFIG
    try:
        while not stop.wait(0.5) and not agg.finished.is_set():
            pass
    finally:
        agg.stop()
    return 0


def _calibration(args: argparse.Namespace) -> Any:
    from smfel.aggregator.model import calibration_features

    records = [r for r in args.records.split(",") if r]
    if args.data and not records:
        raise ValueError("--data needs --records R,R,...")
    return calibration_features(args.data, records, seconds=args.seconds, seed=args.seed)


def _model_init(args: argparse.Namespace) -> int:
    from smfel.aggregator.model import init_model, load_or_create_key

    key = load_or_create_key(args.key)
    try:
        X = _calibration(args)
        issued = init_model(
            args.out, X, signing_key=key, n_hidden=args.hidden, seed=args.seed, int8=args.int8
        )
    except (ValueError, SmfelError, OSError) as err:
        print(f"smfel-aggregator model init: {err}", file=sys.stderr)
        return EX_DATAERR
    print(
        json.dumps(
            {
                "bundle": str(issued.directory),
                "model_hash": issued.model_hash,
                "n_features": issued.hidden.n_features,
                "n_hidden": issued.hidden.n_hidden,
                "calibration_beats": int(X.shape[0]),
                "issuer": issued.manifest.key_id,
            },
            indent=2,
        )
    )
    return 0


def _open_registry(args: argparse.Namespace) -> Any:
    from smfel.agent.keys import Ed25519PrivateKey
    from smfel.aggregator.ledger import Ledger
    from smfel.aggregator.model import load_or_create_key
    from smfel.aggregator.registry import Registry
    from smfel.aggregator.service import key_event_recorder

    cfg = _config(args)
    if cfg is None:
        return None
    Path(cfg.service.state_dir).mkdir(parents=True, exist_ok=True)
    key: Ed25519PrivateKey = load_or_create_key(cfg.service.path(cfg.service.key_file))
    ledger = Ledger.open(cfg.service.ledger_url(), signing_keys=[key])
    reg = Registry(cfg.service.path(cfg.service.registry), on_event=key_event_recorder(ledger))
    return reg.open(), ledger


def _read_enrolment(path: str) -> Any:
    from smfel.aggregator.registry import parse_enrolment

    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return parse_enrolment(text)


def _nodes(args: argparse.Namespace) -> int:
    opened = _open_registry(args)
    if opened is None:
        return EX_CONFIG
    reg, ledger = opened
    try:
        if args.nodes_command == "list":
            print(json.dumps([n.to_dict() for n in reg.nodes()], indent=2))
            return 0
        if args.nodes_command == "add":
            event = reg.add(_read_enrolment(args.enrolment))
        elif args.nodes_command == "rotate":
            event = reg.rotate(_read_enrolment(args.enrolment))
        else:
            event = reg.revoke(args.node_id, reason=args.reason)
        print(json.dumps({"event": event.event, "node_id": event.node_id, "key_id": event.key_id}))
        return 0
    except (RegistryError, OSError) as err:
        print(f"smfel-aggregator nodes {args.nodes_command}: {err}", file=sys.stderr)
        return EX_DATAERR
    finally:
        reg.close()
        ledger.close()


def add_service_parsers(commands: Any) -> None:
    """Register ``serve``, ``model`` and ``nodes`` on the top-level subparsers."""
    p = commands.add_parser("serve", help="run the aggregation service")
    p.add_argument("--config", required=True, metavar="FILE", help="aggregator TOML file")
    p.set_defaults(func=_serve)

    model = commands.add_parser("model", help="issue the shared model")
    msub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    init = msub.add_parser("init", help="create the hidden layer and write the signed bundle")
    init.add_argument("--out", required=True, metavar="DIR", help="bundle directory to write")
    init.add_argument("--key", required=True, metavar="FILE", help="issuer key (made if missing)")
    init.add_argument(
        "--hidden",
        type=int,
        default=DEFAULT_HIDDEN,
        help=f"hidden units L (default {DEFAULT_HIDDEN})",
    )
    init.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the random layer")
    init.add_argument("--data", metavar="DIR", help="WFDB folder for calibration beats")
    init.add_argument("--records", default="", help="records for calibration, R,R,...")
    init.add_argument(
        "--seconds", type=float, default=300.0, help="seconds of synthetic calibration ECG"
    )
    init.add_argument("--int8", action="store_true", help="also write the int8 model")
    init.set_defaults(func=_model_init)

    nodes = commands.add_parser("nodes", help="the node registry")
    nsub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)
    for name, text in (("add", "enrol a node"), ("rotate", "replace a node's key")):
        q = nsub.add_parser(name, help=f"{text} from `smfel-agent enroll` output")
        q.add_argument("--config", required=True, metavar="FILE")
        q.add_argument("enrolment", help="file with the enrolment JSON, or - for stdin")
        q.set_defaults(func=_nodes)
    q = nsub.add_parser("revoke", help="revoke a node and its keys")
    q.add_argument("--config", required=True, metavar="FILE")
    q.add_argument("node_id")
    q.add_argument("--reason", default="")
    q.set_defaults(func=_nodes)
    q = nsub.add_parser("list", help="list nodes as JSON")
    q.add_argument("--config", required=True, metavar="FILE")
    q.set_defaults(func=_nodes)
