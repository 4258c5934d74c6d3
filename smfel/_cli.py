"""Shared pieces of the three command-line entry points."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from smfel import __version__

__all__ = ["EX_CONFIG", "EX_DATAERR", "EX_USAGE", "configure_logging", "make_parser"]

EX_USAGE = 64
EX_DATAERR = 65
EX_CONFIG = 78


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("SMFEL_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default INFO, or $SMFEL_LOG_LEVEL)",
    )
    return parser


def configure_logging(level: str) -> None:
    """Configure logging once, journald-friendly (no timestamps) when under systemd."""
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_systemd
        else ("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=getattr(logging, level), format=fmt, stream=sys.stderr)
