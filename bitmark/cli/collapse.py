"""`bitmark collapse`: the collapse loop (DESIGN §9)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitmark.cli.common import EXIT_OK, add_threads


def add_parser(sub) -> None:
    c = sub.add_parser("collapse", help="the collapse loop: does filtering watermarked images slow model collapse?")
    c.add_argument("--out", required=True, help="folder for generations.csv, collapse.png, summary.md (resumable)")
    c.add_argument("--quick", action="store_true", help="a small configuration (under 5 minutes)")
    c.add_argument("--seeds", type=int, default=None, help="override the preset's number of seeds")
    c.add_argument("--generations", type=int, default=None, help="override the preset's T")
    c.add_argument("--json", action="store_true")
    add_threads(c)
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.collapse.run import run

    r = run(Path(args.out), preset="quick" if args.quick else "full", seeds=args.seeds, generations=args.generations)
    print(json.dumps(r) if args.json else f"wrote {args.out}/generations.csv, collapse.png, summary.md ({r['wall_s']:.0f} s)")
    return EXIT_OK
