"""``smfel-sim``: simulation and evaluation on real and synthetic ECG."""

from __future__ import annotations

import os

# One BLAS thread: the matrices here are small (L <= 1024) and OpenBLAS's thread pool costs
# far more than it gains on them; on a loaded 2-core machine a rank-one RLS update went from
# 0.1 ms to 12 ms with the default pool. Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from smfel._cli import EX_DATAERR, configure_logging, make_parser
from smfel.agent.model_defaults import DEFAULT_C, DEFAULT_HIDDEN

__all__ = ["main"]


def _records(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def _print_row(row: dict[str, Any]) -> None:
    from smfel.sim.report import format_row

    print(format_row(row), flush=True)


def _summary(res: dict[str, Any]) -> None:
    print(
        f"strategy {res['strategy']}: {len(res['nodes'])} nodes, {res['test_beats']} test beats "
        f"({res['test']}), {res['seconds']:.1f} s",
        flush=True,
    )
    if "exact_max_delta" in res:
        c = res["centralised"]
        print(
            f"exact vs centralised fit on the pooled beats: max |delta beta| = "
            f"{res['exact_max_delta']:.2e}; centralised accuracy {c['accuracy']:.4f}, "
            f"j-index {c['j_index']:.4f}",
            flush=True,
        )


def _finish(args: argparse.Namespace, results: list[dict[str, Any]]) -> int:
    if args.json:
        payload: Any = results[0] if len(results) == 1 else results
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    if args.plot:
        from smfel.sim.report import plot_rounds

        try:
            plot_rounds(results, args.plot)
        except RuntimeError as err:
            print(f"smfel-sim: {err}", file=sys.stderr)
            return EX_DATAERR
    return 0


def _run_strategies(args: argparse.Namespace, build: Any) -> int:
    from smfel.sim.report import format_header
    from smfel.sim.run import run_fleet

    results = []
    for strategy in args.strategy.split(","):
        spec, test = build(strategy)
        print(f"== {strategy}: {len(spec.nodes)} nodes, {spec.rounds} rounds", flush=True)
        print(format_header(), flush=True)
        res = run_fleet(spec, test, progress=_print_row)
        _summary(res)
        results.append(res)
    return _finish(args, results)


def _run(args: argparse.Namespace) -> int:
    from smfel.sim.run import mitdb_fleet, mitdb_test, synthetic_fleet, synthetic_test

    params = {"n_hidden": args.hidden, "seed": args.seed, "C": args.C, "driver": args.driver}
    try:
        if args.data:
            nodes, test_records = _records(args.nodes), _records(args.test)
            if not nodes or not test_records:
                print(
                    "smfel-sim run: --data needs --nodes R,R,... and --test R,R,...",
                    file=sys.stderr,
                )
                return EX_DATAERR
            test = mitdb_test(args.data, test_records)
            return _run_strategies(
                args,
                lambda s: (mitdb_fleet(args.data, nodes, args.rounds, strategy=s, **params), test),
            )
        test = synthetic_test(240.0, seed=args.seed + 98)
        n = len(_records(args.nodes)) or 6
        return _run_strategies(
            args,
            lambda s: (synthetic_fleet(n, args.rounds, 60.0, strategy=s, **params), test),
        )
    except (OSError, ValueError) as err:
        print(f"smfel-sim run: {err}", file=sys.stderr)
        return EX_DATAERR


def _demo(args: argparse.Namespace) -> int:
    from smfel.sim.demo import demo_setup

    print(
        "smfel demo: devices replay "
        + (f"MIT-BIH records from {args.data}" if args.data else "synthetic ECG")
        + ", sign their updates and send them through a private Mosquitto; the aggregator "
        "verifies, aggregates, records each round in its ledger and publishes the signed "
        "global model, scored on unseen beats after every round.",
        flush=True,
    )
    try:
        return _run_strategies(
            args,
            lambda s: demo_setup(
                args.data, rounds=args.rounds, strategy=s, n_hidden=args.hidden, seed=args.seed
            ),
        )
    except (OSError, ValueError) as err:
        print(f"smfel-sim demo: {err}", file=sys.stderr)
        return EX_DATAERR


def _common(p: argparse.ArgumentParser, *, rounds: int, strategy: str) -> None:
    p.add_argument(
        "--strategy",
        default=strategy,
        help=f"exact, fedavg or both comma-separated (default {strategy})",
    )
    p.add_argument("--rounds", type=int, default=rounds, help=f"rounds (default {rounds})")
    p.add_argument(
        "--hidden",
        type=int,
        default=DEFAULT_HIDDEN,
        help=f"hidden units L (default {DEFAULT_HIDDEN})",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="plot accuracy and j-index per round")


def _write_json(path: str | None, payload: Any) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)


def _qrs(args: argparse.Namespace) -> int:
    from smfel.sensors import DS1
    from smfel.sim.qrs import format_qrs_table, qrs_evaluation

    records = _records(args.records) if args.records else list(DS1)
    try:
        res = qrs_evaluation(args.data, records, lead=args.lead)
    except (OSError, ValueError) as err:
        print(f"smfel-sim qrs: {err}", file=sys.stderr)
        return EX_DATAERR
    print(format_qrs_table(res), flush=True)
    _write_json(args.json, res)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from smfel.sensors import DS1, DS2
    from smfel.sim.evaluate import cross_validate, evaluate, format_evaluation

    train = _records(args.train) if args.train else list(DS1)
    test = _records(args.test) if args.test else list(DS2)
    params = {"hidden": args.hidden, "C": args.C, "seed": args.seed}
    try:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
        if args.cv:
            seeds = list(range(args.seed, args.seed + args.seeds)) if args.seeds > 1 else None
            res = cross_validate(args.data, train, args.beats, seeds=seeds, **params)
            print(f"leave-one-patient-out cross-validation on {len(train)} records", flush=True)
        else:
            res = evaluate(args.data, train, test, args.beats, **params)
    except (OSError, ValueError) as err:
        print(f"smfel-sim evaluate: {err}", file=sys.stderr)
        return EX_DATAERR
    print(format_evaluation(res), flush=True)
    if not args.cv:
        print(f"trained on {len(train)} records in {res['train_seconds']:.2f} s", flush=True)
    _write_json(args.json, res)
    return 0


def _add_evaluation_commands(sub: Any) -> None:
    from smfel.agent.model_defaults import DEFAULT_C, DEFAULT_HIDDEN, DEFAULT_SEED

    p = sub.add_parser("qrs", help="QRS detector sensitivity and +P on WFDB records")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of WFDB records")
    p.add_argument("--records", default="", help="R,R,... (default: the 22 DS1 records)")
    p.add_argument("--lead", default="MLII", help="signal name (default MLII)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_qrs)
    p = sub.add_parser("evaluate", help="inter-patient beat classification on WFDB records")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of WFDB records")
    p.add_argument("--train", default="", help="R,R,... (default: de Chazal's DS1)")
    p.add_argument("--test", default="", help="R,R,... (default: de Chazal's DS2)")
    p.add_argument("--beats", choices=["detected", "annotated"], default="detected")
    p.add_argument(
        "--cv",
        action="store_true",
        help="leave-one-patient-out cross-validation inside the train records",
    )
    p.add_argument("--hidden", type=int, default=DEFAULT_HIDDEN, help="hidden units L")
    p.add_argument("--C", type=float, default=DEFAULT_C, help="ridge parameter C")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="hidden layer seed")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="with --cv: repeat with N hidden-layer seeds from --seed and report the mean",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("smfel-sim", "smfel simulation and evaluation on ECG")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="a federated run on the embedded default data (or --data)")
    p.add_argument("--data", metavar="DIR", help="MIT-BIH folder instead of synthetic ECG")
    _common(p, rounds=5, strategy="exact,fedavg")
    p.set_defaults(func=_demo)
    p = sub.add_parser(
        "run", help="a federated run: one agent per record, real broker and aggregator"
    )
    p.add_argument("--data", metavar="DIR", help="WFDB folder (default: synthetic ECG)")
    p.add_argument("--nodes", default="", help="records, one device each: R,R,...")
    p.add_argument("--test", default="", help="test records: R,R,...")
    p.add_argument(
        "--driver",
        choices=["agent", "node"],
        default="agent",
        help="agent: each device is the agent daemon restarted per round segment (default); "
        "node: the agent's components over one continuous stream per device",
    )
    p.add_argument(
        "--C", type=float, default=DEFAULT_C, help=f"ridge parameter C (default {DEFAULT_C})"
    )
    _common(p, rounds=5, strategy="exact")
    p.set_defaults(func=_run)
    _add_evaluation_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    quiet = (
        args.command in ("demo", "run")
        and not any(a.startswith("--log-level") for a in given)
        and "SMFEL_LOG_LEVEL" not in os.environ
    )
    # A fleet run's output is its round table; the devices' and the service's own logs (which
    # include a benign warning each time a restarted agent sees the retained global model it
    # already has) are for --log-level INFO.
    configure_logging("ERROR" if quiet else args.log_level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
