"""What every command shares: exit codes, the usage error, key loading, row printing and the thread option."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from bitmark.core.keys import KeyFileError, WatermarkKey

EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, EXIT_CRASH = 0, 1, 2, 3  # 3: an unexpected exception (a bug, no memory)


class UsageError(Exception):
    """A problem with the command line, a key or a configuration: exit code 2."""


def scales_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales are comma-separated integers, got {text!r}") from None


def weights_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"weights are comma-separated numbers, got {text!r}") from None


def add_threads(parser: argparse.ArgumentParser) -> None:
    """`--threads N` for a command that runs a model; `main` applies it (`apply_threads`) before the command runs."""
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads (default 1: faster here for these small models, benchmarks/RESULTS.md 'Speed')")


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count from --threads. Only the command line does this; the Python API never
    changes a caller's torch settings."""
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts, repeats, sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def add_allow_shared_key(parser: argparse.ArgumentParser) -> None:
    """The override of the permission check on key files (refused when group or others can read them)."""
    parser.add_argument("--allow-shared-key", action="store_true",
                        help="accept a key file that group or others can read or write "
                             "(refused by default, as ssh does)")


def load_key(path: str, allow_shared: bool = False) -> WatermarkKey:
    try:
        return WatermarkKey.load(path, allow_shared=allow_shared)
    except KeyFileError as e:
        raise UsageError(str(e)) from e


def emit(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    """Print rows as JSON lines or as an aligned table of `columns` (error rows show their error)."""
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    notes = ("error", "skipped")  # rows that are a message, not a result
    table = [list(columns)] + [[_fmt(r.get(c)) for c in columns] for r in rows if not any(n in r for n in notes)]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = iter(table[1:])
    _print("  ".join(c.ljust(w) for c, w in zip(table[0], widths)).rstrip())
    for r in rows:
        note = next((n for n in notes if n in r), None)
        if note:
            _print(f"{r.get(columns[0], '')}  {note}: {r[note]}")
        else:
            _print("  ".join(c.ljust(w) for c, w in zip(next(lines), widths)).rstrip())


def _print(line: str) -> None:
    """Print a line whose file names may not be valid text (non-UTF-8 bytes): such bytes show as escapes."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(line.encode(encoding, "backslashreplace").decode(encoding))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.2f}"
    return "" if v is None else str(v)


def image_encoder(args: argparse.Namespace):
    """The encoder that turns image INPUTs into bits: the shipped tokenizer, or Infinity's VAE."""
    if getattr(args, "backend", "embedded") == "infinity":
        from bitmark.cli.backend_options import backend_from_args

        return backend_from_args(args, sampling=False)
    try:
        if args.encoder == "infinity":
            from bitmark.adapters import infinity

            return infinity.encoder_from_args(args)
        from bitmark.models import load_tokenizer

        return load_tokenizer(args.data)
    except (ImportError, OSError, ValueError) as e:
        raise UsageError(str(e)) from e
