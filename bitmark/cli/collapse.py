"""`bitmark collapse`: the collapse loop (DESIGN §9)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitmark.cli.backend_options import add_backend_arguments, backend_from_args
from bitmark.cli.common import EXIT_OK, add_threads, positive_int


def add_parser(sub) -> None:
    c = sub.add_parser("collapse", help="the collapse loop: does filtering watermarked images slow model collapse?")
    c.add_argument("--out", required=True, help="folder for generations.csv, collapse.png, summary.md (resumable)")
    c.add_argument("--quick", action="store_true", help="a small configuration (under 5 minutes)")
    c.add_argument("--seeds", type=positive_int, default=None, help="override the preset's number of seeds (full 3, quick 1)")
    c.add_argument("--generations", type=positive_int, default=None, help="override the preset's T (full 8, quick 2)")
    c.add_argument("--json", action="store_true", help="print the totals as JSON")
    add_backend_arguments(c)
    add_threads(c)
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.collapse.run import run

    r = run(Path(args.out), preset="quick" if args.quick else "full", seeds=args.seeds, generations=args.generations,
            backend=backend_from_args(args))
    print(json.dumps(r) if args.json else f"wrote {', '.join(str(Path(args.out) / f) for f in r['files'])} ({r['wall_s']:.0f} s)")
    return EXIT_OK
