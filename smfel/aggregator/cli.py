"""``smfel-aggregator``: the consensus and aggregation service's command line."""

from __future__ import annotations

import os

# One BLAS thread: the matrices here are small (L <= 1024) and OpenBLAS's thread pool costs
# far more than it gains on them; on a loaded 2-core machine a rank-one RLS update went from
# 0.1 ms to 12 ms with the default pool. Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
from collections.abc import Sequence

from smfel._cli import configure_logging, make_parser
from smfel.aggregator.commands import add_service_parsers
from smfel.aggregator.ledger.cli import add_ledger_parser

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "smfel-aggregator", "smfel aggregation service: verification, rounds, strategies, ledger"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_service_parsers(commands)
    add_ledger_parser(commands)
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
