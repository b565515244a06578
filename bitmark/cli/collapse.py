"""`bitmark collapse`: the collapse loop (DESIGN §9)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitmark.cli.backend_options import add_backend_arguments, backend_from_args
from bitmark.cli.common import EXIT_OK, add_threads, positive_int

# the names of bitmark.benchmarks.collapse.config.PRESETS, not imported so that --help stays light (a test checks them)
PRESETS = ("full", "quick", "web", "web-full", "smoke")


def share(text: str) -> float:
    """A number in 0..1."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1")
    return v


def add_parser(sub) -> None:
    c = sub.add_parser("collapse", help="the collapse loop: does filtering watermarked images slow model collapse?")
    c.add_argument("--out", required=True, help="folder for generations.csv, collapse.png, summary.md (resumable)")
    size = c.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small configuration (under 5 minutes)")
    size.add_argument("--preset", choices=PRESETS, default=None,
                      help="a named configuration: full (default), quick, web (fresh, 4 arms: the reduced run of the "
                           "channel x marked-share study), web-full (issue 20's full run: 10 generations x 5 seeds, fresh and "
                           "accumulate, six arms), smoke (the tests')")
    c.add_argument("--seeds", type=positive_int, default=None, help="override the preset's number of seeds (full 3, quick 1)")
    c.add_argument("--generations", type=positive_int, default=None, help="override the preset's T (full 8, quick 2)")
    c.add_argument("--channel", default=None, metavar="SPEC",
                   help="attack chain applied to every scraped image, real and synthetic, before any filter "
                        "(e.g. jpeg:75+resize:0.75; 'web': a random crop/resize/JPEG-or-WebP chain per image)")
    c.add_argument("--marked-share", type=share, default=None, metavar="S",
                   help="share (0..1) of the synthetic images made by a marking generator; the rest come from an "
                        "unmarked copy of the same model (default 1)")
    c.add_argument("--null", choices=("self-normalised", "binomial"), default=None,
                   help="the watermark filter's null; default: the detectors' default (the model null with the "
                        "detector card's weights, see `bitmark detect --null`); self-normalised: the null of the "
                        "collapse figures in benchmarks/RESULTS.md measured before it")
    c.add_argument("--json", action="store_true", help="print the totals as JSON")
    add_backend_arguments(c)
    add_threads(c)
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.collapse.run import run

    preset = "quick" if args.quick else (args.preset or "full")
    r = run(Path(args.out), preset=preset, seeds=args.seeds, generations=args.generations,
            backend=backend_from_args(args), channel=args.channel, marked_share=args.marked_share, null=args.null)
    print(json.dumps(r) if args.json else f"wrote {', '.join(str(Path(args.out) / f) for f in r['files'])} ({r['wall_s']:.0f} s)")
    return EXIT_OK
