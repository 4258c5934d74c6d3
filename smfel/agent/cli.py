"""``smfel-agent``: the edge daemon's command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from smfel._cli import EX_DATAERR, configure_logging, make_parser
from smfel.agent.daemon.commands import add_commands
from smfel.agent.errors import StateFileError
from smfel.agent.state import load_state

__all__ = ["main"]


def _state_info(args: argparse.Namespace) -> int:
    try:
        learner = load_state(args.file)
    except StateFileError as err:
        print(f"smfel-agent: {err}", file=sys.stderr)
        return EX_DATAERR
    info = {
        "file": args.file,
        "hidden": learner.hidden.content_hash,
        "n_features": learner.hidden.n_features,
        "n_hidden": learner.n_hidden,
        "classes": list(learner.classes),
        "beats_learned": int(learner.n_seen_),
        "beats_per_class": dict(zip(learner.classes, learner.class_counts_.tolist(), strict=True)),
        "trace_P": float(np.trace(learner.P_)),
    }
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("smfel-agent", "smfel edge daemon: ECG beat classification and learning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("state-info", help="summarise a learner state file")
    p.add_argument("file", help="path of the state file")
    p.set_defaults(func=_state_info)
    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
