"""`bitmark bench`: the benchmarks that produce the figures in benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitmark.cli.common import EXIT_OK, UsageError


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="run a benchmark: speed, null, recoverability, robustness, radioactivity, detect-speed")
    b.add_argument("name", choices=("speed", "null", "recoverability", "robustness", "radioactivity", "detect-speed"))
    b.add_argument("--repeats", type=int, default=5, help="speed: timing repeats (best is kept)")
    b.add_argument("--num", type=int, default=None, help="null: pyramids per source (5000); recoverability: samples of each kind (200); robustness: watermarked samples per scheme (500)")
    b.add_argument("--data", default="photos", help="recoverability: which shipped models")
    b.add_argument("--keys", type=int, default=8, help="null: fixed keys per arm")
    b.add_argument("--quick", action="store_true", help="robustness: 64 positives, 500 + 500 negatives, the headline attacks, 2 deltas; radioactivity: 2 shares, short training")
    b.add_argument("--attacks", default=None, help="robustness: comma-separated specs (default: every grid)")
    b.add_argument("--schemes", default=None, help="robustness: comma-separated bit schemes (default: all three)")
    b.add_argument("--negatives", type=int, default=None, help="robustness: clean samples and real crops each (default: --num)")
    b.add_argument("--realign", action="store_true", help="robustness: add the default detector with the older crop search")
    b.add_argument("--resync", action="store_true", help="robustness: add the default detector with the resynchronisation stage")
    b.add_argument("--no-quality", action="store_true", help="robustness: skip the quality-per-delta table")
    b.add_argument("--no-baselines", action="store_true", help="robustness: skip invisible-watermark even when installed")
    b.add_argument("--out", default=None, help="robustness, radioactivity: output folder (an unfinished run there resumes)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name == "speed":
        from bitmark.benchmarks.speed import run

        run(as_json=args.json, repeats=args.repeats)
    elif args.name == "null":
        from bitmark.benchmarks.null_calibration import run

        run(num=args.num or 5000, keys=args.keys, as_json=args.json)
    elif args.name == "robustness":
        from bitmark.benchmarks import robustness

        cfg = robustness.quick_config() if args.quick else robustness.Config()
        if args.num:
            cfg.num = args.num
        if args.attacks:
            cfg.attacks = [s.strip() for s in args.attacks.split(",") if s.strip()]
        if args.schemes:
            cfg.schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
        cfg.num_negatives = args.negatives or cfg.num_negatives
        cfg.realign = args.realign
        cfg.resync = args.resync
        cfg.quality = not args.no_quality
        if args.no_baselines:
            cfg.baseline_num = {}
        if not args.out:
            raise UsageError("give --out DIR for the results")
        result = robustness.run(Path(args.out), cfg)
        print(json.dumps(result) if args.json else (Path(args.out) / "summary.md").read_text())
    elif args.name == "detect-speed":
        from bitmark.benchmarks.detect_speed import run

        run(num=args.num or 128, as_json=args.json)
    elif args.name == "radioactivity":
        from bitmark.benchmarks.radioactivity import run

        if not args.out:
            raise UsageError("bench radioactivity needs --out DIR (finished arms there are reused)")
        run(args.out, quick=args.quick, as_json=args.json, data=args.data)
    else:
        from bitmark.benchmarks.recoverability import run

        run(data=args.data, num=args.num or 200, as_json=args.json)
    return EXIT_OK
