"""The `bitmark` command. Exit codes: 0 all inputs read, 1 some inputs unreadable, 2 usage/key/config error.

Each command group is one module of this package with `add_parser(sub)` and `run(args)`; building the parser
imports none of the heavy libraries, which each command imports when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from bitmark.cli import (
    attack,
    bench,
    collapse,
    demo,
    detect,
    generate,
    keygen,
    scan,
    train,
)
from bitmark.cli.common import EXIT_USAGE, UsageError, apply_threads
from bitmark.core.keys import ConfigMismatch

COMMANDS = (keygen, detect, generate, demo, attack, train, bench, scan, collapse)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitmark", description=__doc__.split(".")[0] + ".")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    apply_threads(args)
    try:
        return args.func(args)
    except (UsageError, ConfigMismatch, ValueError) as e:  # ValueError: configuration values the library rejected
        print(f"bitmark {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
