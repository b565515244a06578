"""The command line, the top layer: nothing imports it."""

from bitmark.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
