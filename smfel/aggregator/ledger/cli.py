"""``smfel-aggregator ledger verify|show|proof``: audit the ledger from the command line.

* ``verify --db URL [--keys FILE] [-k K] [--checkpoint FILE]``: checks every block and entry;
  prints a JSON report and exits 1 naming the first bad height when the ledger was tampered with.
* ``show --db URL [--height H]``: one block (default the head) with the checkpoint, as JSON.
* ``proof --db URL --entry I [--size N]`` or ``--consistency OLD NEW``: RFC 9162 proofs as JSON.

``--keys`` names a file of trusted validator public keys: PEM blocks, or one key per line as
base64 or hex of the 32 raw bytes (``#`` starts a comment).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any

from smfel._cli import EX_CONFIG, EX_DATAERR
from smfel.agent.keys import Ed25519PublicKey, public_key_from_pem, public_key_from_raw
from smfel.aggregator.ledger.checkpoint import CHECKPOINT_SCHEMA, Checkpoint
from smfel.aggregator.ledger.errors import LedgerError, LedgerInputError
from smfel.aggregator.ledger.ledger import Ledger

__all__ = ["add_ledger_parser", "load_public_keys"]

EX_VERIFY_FAILED = 1


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Ed25519 public keys from a file (PEM blocks, or base64/hex raw keys one per line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LedgerInputError("keys", f"cannot read {path}: {err}") from err
    keys: list[Ed25519PublicKey] = []
    marker = "-----BEGIN PUBLIC KEY-----"
    if marker in text:
        for block in text.split(marker)[1:]:
            pem = marker + block.split("-----END PUBLIC KEY-----")[0] + "-----END PUBLIC KEY-----\n"
            try:
                keys.append(public_key_from_pem(pem))
            except ValueError as err:
                raise LedgerInputError(
                    "keys", f"{path}: a PEM block is not an Ed25519 public key: {err}"
                ) from err
    else:
        for n, line in enumerate(text.splitlines(), 1):
            item = line.split("#", 1)[0].strip()
            if not item:
                continue
            try:
                raw = (
                    bytes.fromhex(item)
                    if len(item) == 64
                    else base64.b64decode(item, validate=True)
                )
                keys.append(public_key_from_raw(raw))
            except (ValueError, binascii.Error) as err:
                raise LedgerInputError(
                    "keys", f"{path}:{n}: expected a 32-byte Ed25519 key in base64 or hex"
                ) from err
    if not keys:
        raise LedgerInputError("keys", f"{path}: no public keys found")
    return keys


def _load_checkpoint(path: Path) -> Checkpoint:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LedgerInputError("checkpoint", f"cannot read {path}: {err}") from err
    if isinstance(doc, dict) and doc.get("schema") == CHECKPOINT_SCHEMA:
        doc = {k: v for k, v in doc.items() if k != "signatures"}
    if not isinstance(doc, dict):
        raise LedgerInputError("checkpoint", f"{path}: expected a JSON object")
    return Checkpoint.from_json(doc)


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _cmd_verify(args: argparse.Namespace) -> int:
    trusted = load_public_keys(Path(args.keys)) if args.keys else None
    if trusted is not None and args.k > len(trusted):
        raise LedgerInputError("k", f"{args.k} signatures required but {len(trusted)} keys given")
    witness = _load_checkpoint(Path(args.checkpoint)) if args.checkpoint else None
    with Ledger.open(args.db, create=False) as ledger:
        report = ledger.verify(trusted, args.k, witness)
    _print(report.to_json())
    if trusted is None:
        print("warning: no --keys given, block signatures were not checked", file=sys.stderr)
    if not report.ok:
        print(
            f"ledger verification FAILED: first bad height {report.first_bad_height}: "
            f"{report.reason}",
            file=sys.stderr,
        )
        return EX_VERIFY_FAILED
    print(f"ledger OK: {report.blocks} blocks, {report.entries} entries", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with Ledger.open(args.db, create=False) as ledger:
        checkpoint = ledger.checkpoint()
        if args.height is not None:
            block = ledger.block(args.height)
        else:
            head = ledger.head()
            if head is None:
                _print({"checkpoint": checkpoint.to_json(), "block": None})
                return 0
            block = head
    _print({"checkpoint": checkpoint.to_json(), "block": block.to_json()})
    return 0


def _cmd_proof(args: argparse.Namespace) -> int:
    with Ledger.open(args.db, create=False) as ledger:
        if args.consistency is not None:
            if args.size is not None:
                raise LedgerInputError("size", "--size goes with --entry, not --consistency")
            old, new = args.consistency
            _print(ledger.consistency_proof(old, new).to_json())
            return 0
        proof = ledger.inclusion_proof(args.entry, args.size)
        doc = proof.to_json()
        doc["entry"] = ledger.entry(args.entry).to_json()
        _print(doc)
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        rc: int = args.ledger_func(args)
    except LedgerError as err:
        print(f"smfel-aggregator ledger: {err}", file=sys.stderr)
        return EX_DATAERR if isinstance(err, LedgerInputError) else EX_CONFIG
    return rc


def add_ledger_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``ledger`` and its subcommands on an ``add_subparsers()`` object."""
    ledger: argparse.ArgumentParser = subparsers.add_parser(
        "ledger", help="verify, show and prove the tamper-evident ledger"
    )
    sub = ledger.add_subparsers(dest="ledger_command", metavar="LEDGER_COMMAND", required=True)
    db_help = "ledger database: sqlite:///path (sqlite:////abs/path) or postgresql://..."

    verify = sub.add_parser("verify", help="check every block and entry; exit 1 if tampered")
    verify.add_argument("--db", required=True, help=db_help)
    verify.add_argument("--keys", help="file of trusted validator public keys (PEM/base64/hex)")
    verify.add_argument("-k", type=int, default=1, help="signatures required per block (default 1)")
    verify.add_argument(
        "--checkpoint", help="a checkpoint JSON kept elsewhere that must be in the ledger"
    )
    verify.set_defaults(func=_run, ledger_func=_cmd_verify)

    show = sub.add_parser("show", help="print a block (default the head) as JSON")
    show.add_argument("--db", required=True, help=db_help)
    show.add_argument("--height", type=int, help="block height (default: the head)")
    show.set_defaults(func=_run, ledger_func=_cmd_show)

    proof = sub.add_parser("proof", help="print an inclusion or consistency proof as JSON")
    proof.add_argument("--db", required=True, help=db_help)
    which = proof.add_mutually_exclusive_group(required=True)
    which.add_argument("--entry", type=int, metavar="I", help="log index of the entry to prove")
    which.add_argument("--consistency", type=int, nargs=2, metavar=("OLD", "NEW"),
                       help="prove the tree of NEW entries extends the tree of OLD")  # fmt: skip
    proof.add_argument("--size", type=int, metavar="N", help="tree size for --entry (default: all)")
    proof.set_defaults(func=_run, ledger_func=_cmd_proof)
    return ledger
