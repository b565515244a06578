"""`bitmark detect`: test images or bit pyramids for a key's mark."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bitmark.cli.common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    UsageError,
    emit,
    image_encoder,
    load_key,
    scales_list,
)
from bitmark.cli.infinity_options import add_cli_arguments
from bitmark.core.keys import RULES, ConfigMismatch

log = logging.getLogger("bitmark")

PYRAMID_SUFFIXES = (".safetensors", ".npz")
COLUMNS = ("path", "index", "is_watermarked", "z_score", "log10_p", "num_scored", "num_green", "resync")


def add_parser(sub) -> None:
    d = sub.add_parser("detect", help="test images (PNG/JPEG/WebP files or folders) or bit pyramids (.safetensors/.npz)")
    d.add_argument("inputs", nargs="+", metavar="INPUT")
    d.add_argument("--key", required=True)
    d.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    d.add_argument("--null", choices=("self-normalised", "binomial"), default=None, help="default: by rule")
    d.add_argument("--unique", action="store_true", help="binomial null: count unique occurrences only")
    d.add_argument("--scales", type=scales_list, default=None, help="score only these watermarked scales")
    d.add_argument("--rule", choices=RULES, default=None, help="refuse unless the key uses this rule")
    d.add_argument("--context", type=int, default=None, help="refuse unless the key uses this n")
    d.add_argument("--delta", type=float, default=None, help="refuse unless the key uses this delta")
    d.add_argument("--json", action="store_true", help="JSON lines, one per image")
    d.add_argument("--encoder", choices=("tokenizer", "infinity"), default="tokenizer",
                   help="what reads image INPUTs into bits: the shipped tokenizer (default) or Infinity's VAE")
    d.add_argument("--data", default="photos", help="tokenizer: which shipped tokenizer (or a weights path)")
    d.add_argument("--resync", action="store_true",
                   help="resynchronisation stage (shipped tokenizer): estimate and undo crops, flips, rotations and aspect "
                        "changes first, p-values corrected for the search; opt-in: costs up to 0.05 TPR after JPEG 75")
    d.add_argument("--realign", action="store_true",
                   help="instead, the older crop search (140 centred boxes, Bonferroni): slower, costs some JPEG robustness")
    add_cli_arguments(d)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.core.pyramid import PyramidError, load_pyramid
    from bitmark.detectors import BitDetector

    key = load_key(args.key)
    try:
        detector = BitDetector(
            key,
            fpr=args.fpr,
            null=args.null,
            unique=args.unique,
            scales=args.scales,
            rule=args.rule,
            context=args.context,
            delta=args.delta,
        )
    except (ConfigMismatch, ValueError) as e:
        raise UsageError(str(e)) from e
    from bitmark.io.images import iter_image_files

    pyramid_files = [p for p in args.inputs if Path(p).suffix in PYRAMID_SUFFIXES]
    image_files = list(iter_image_files(p for p in args.inputs if Path(p).suffix not in PYRAMID_SUFFIXES))
    rows: list[dict[str, Any]] = []
    for path in pyramid_files:
        try:
            result = detector.detect(load_pyramid(path))
        except (PyramidError, ValueError, OSError) as e:
            log.warning("%s", e)
            rows.append({"path": path, "error": str(e)})
            continue
        rows.extend({"path": path, "index": i, **row} for i, row in enumerate(result.rows()))
    if image_files:
        if args.realign:
            from bitmark.detectors.realign import RealigningDetector

            if args.encoder != "tokenizer":
                raise UsageError("--realign works with the shipped tokenizer's fixed image size only")
            images = RealigningDetector(image_encoder(args), detector)
        else:
            from bitmark.detectors.resync import make_image_detector

            images = make_image_detector(image_encoder(args), detector, resync=args.resync)
        rows.extend(r if "error" in r else {"index": 0, **r} for r in images.detect_files(image_files))
    unreadable = sum("error" in r for r in rows)
    if not args.json:
        rows = [{k: v for k, v in r.items() if k not in ("scale_scored", "scale_green")} for r in rows]
    emit(rows, args.json, COLUMNS)
    return EXIT_UNREADABLE if unreadable else EXIT_OK
