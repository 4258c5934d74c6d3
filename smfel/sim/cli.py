"""``smfel-sim``: simulation and evaluation on real and synthetic ECG."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from smfel._cli import configure_logging, make_parser

__all__ = ["main"]


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{100 * v:5.1f}"


def _demo(args: argparse.Namespace) -> int:
    from smfel.sim.demo import run_synthetic_demo

    res = run_synthetic_demo(n_hidden=args.hidden, seed=args.seed)
    print(f"trained on {res['train_beats']} synthetic beats in {res['train_seconds']:.2f} s")
    print("class    Se%    +P%")
    for name, c in res["classes"].items():
        print(f"{name:5s} {_fmt(c['se'])}  {_fmt(c['ppv'])}")
    print(f"accuracy {res['accuracy']:.3f}  j-index {res['j_index']:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("smfel-sim", "smfel simulation and evaluation on ECG")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="train and evaluate on the embedded default data")
    p.add_argument("--hidden", type=int, default=256, help="hidden units L (default 256)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_demo)
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
