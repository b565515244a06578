"""The `bitmark` command. Exit codes: 0 all inputs read, 1 some inputs unreadable, 2 usage/key/config error
(a missing optional extra included), 3 crash, 141 when the reader of stdout went away (`bitmark ... | head`).

Each command group is one module of this package with `add_parser(sub)` and `run(args)`; building the parser
imports none of the heavy libraries, which each command imports when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Sequence

from bitmark import __version__
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
from bitmark.cli.common import EXIT_CRASH, EXIT_USAGE, UsageError, apply_threads
from bitmark.core.keys import ConfigMismatch
from bitmark.io.extras import MissingExtra
from bitmark.io.progress import TqdmHandler

COMMANDS = (keygen, detect, generate, demo, attack, train, bench, scan, collapse)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `cat`, `grep`, ... stopped by a closed pipe


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already says its default, or there is none
    worth saying (None, False: the option is off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) or action.default == []:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


def parsers(parser: argparse.ArgumentParser):
    """`parser` and every sub-command's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from parsers(child)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitmark", description="Keyed watermarks for bitwise autoregressive image generators: "
                                "embed while sampling, detect from pixels or bits, attack, benchmark.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    p.add_argument("--version", action="version", version=f"bitmark {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for parser in parsers(p):
        parser.formatter_class = HelpFormatter
        if parser is not p:
            parser.set_defaults(_parser=parser)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # also after argparse's SystemExit (--help, --version)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
    except BrokenPipeError:
        # the reader (head, less, ...) has all it wanted; stop quietly. Point stdout at devnull so that
        # the interpreter's own flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the (sub-)command that refused them, with its usage line
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    name = " ".join(filter(None, (args.command, getattr(args, "bench", None))))
    apply_threads(args)
    try:
        return args.func(args)
    except (UsageError, ConfigMismatch, ValueError, MissingExtra) as e:  # ValueError: values the library rejected
        print(f"bitmark {name}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # not a crash: `main` stops quietly
        raise
    except Exception as e:  # noqa: BLE001 -- a bug or no memory: its own exit code, never 1 (unreadable inputs)
        traceback.print_exc()
        print(f"bitmark {args.command}: crashed ({type(e).__name__}: {e}); exit code {EXIT_CRASH}", file=sys.stderr)
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())
