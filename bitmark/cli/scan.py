"""`bitmark scan`: test every image under folders into a resumable manifest and a keep list."""

from __future__ import annotations

import argparse
import json

from bitmark.cli.common import EXIT_OK, EXIT_UNREADABLE, image_encoder, load_key


def add_parser(sub) -> None:
    s = sub.add_parser("scan", help="scan image folders for a key's mark into a resumable JSONL manifest (+ keep list)")
    s.add_argument("inputs", nargs="+", metavar="DIR")
    s.add_argument("--key", required=True)
    s.add_argument("--out", required=True, help="manifest (JSONL, appended; a rerun resumes where it stopped)")
    s.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    s.add_argument("--keep", default=None, help="write the files to keep (readable, not flagged) to this list")
    s.add_argument("--limit", type=int, default=None, help="scan at most this many new files, then stop")
    s.add_argument("--encoder", choices=("tokenizer",), default="tokenizer")
    s.add_argument("--data", default="photos", help="which shipped tokenizer (or a weights path)")
    s.add_argument("--resync", action="store_true", help="undo crops, flips and rotations first (see `bitmark detect --resync`)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.detectors.scan import scan

    key = load_key(args.key)
    encoder = image_encoder(args)
    r = scan(key, args.inputs, args.out, fpr=args.fpr, keep_list=args.keep, limit=args.limit, encoder=encoder,
             resync=args.resync)
    print(json.dumps(r) if args.json else
          f"{args.out}: {r['files']} files ({r['new']} new), {r['flagged']} flagged, {r['errors']} unreadable"
          + (f", {r['remaining']} not yet scanned" if r["remaining"] else "") + (f"; keep list {args.keep}" if args.keep else ""))
    return EXIT_UNREADABLE if r["errors"] else EXIT_OK
