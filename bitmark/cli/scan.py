"""`bitmark scan`: test every image under folders into a resumable manifest and a keep list."""

from __future__ import annotations

import argparse
import json

from bitmark.cli.backend_options import add_backend_arguments
from bitmark.cli.common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    UsageError,
    add_allow_shared_key,
    add_threads,
    image_encoder,
    load_key,
)


def add_parser(sub) -> None:
    s = sub.add_parser("scan", help="scan image folders for a key's mark into a resumable JSONL manifest (+ keep list)")
    s.add_argument("inputs", nargs="*", metavar="DIR", help="folders (searched recursively) or image files")
    s.add_argument("--paths-from", default=None, metavar="FILE",
                   help="also scan the files listed in FILE: one path a line, or (--engine ray) a Parquet table "
                        "with a `path` column and optionally the images' `bytes`")
    s.add_argument("--key", required=True, help="the key file whose mark is tested")
    add_allow_shared_key(s)
    s.add_argument("--out", required=True, help="manifest (JSONL, appended; a rerun resumes where it stopped)")
    s.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    s.add_argument("--keep", default=None, help="write the files to keep (readable, not flagged) to this list")
    s.add_argument("--limit", type=int, default=None, help="scan at most this many new files, then stop")
    s.add_argument("--batch-size", type=int, default=64, help="images scored together")
    s.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: Ray Data actors, a local Ray or RAY_ADDRESS's cluster")
    s.add_argument("--workers", type=int, default=None,
                   help="ray: scoring actors (default: the CPUs Ray has, less one for reading, over --cpus-per-worker)")
    s.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray: CPUs each actor reserves")
    s.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs each actor reserves, for an encoder that uses one (the shipped tokenizer runs on CPU)")
    s.add_argument("--encoder", choices=("tokenizer",), default="tokenizer", help="what reads images into bits")
    s.add_argument("--data", default="photos", help="which shipped tokenizer (or a weights path)")
    s.add_argument("--null", choices=("self-normalised", "binomial"), default=None,
                   help="default: the model null with the weights of --data's detector card where it applies (see "
                        "`bitmark detect --null`), else by rule; or this null")
    s.add_argument("--resync", action=argparse.BooleanOptionalAction, default=True,
                   help="undo crops, flips and rotations first (default; see `bitmark detect --resync`); --no-resync is ~15x faster (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print the totals as JSON")
    add_backend_arguments(s)
    add_threads(s)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.detectors.scan import scan

    if not args.inputs and not args.paths_from:
        raise UsageError("give folders or files to scan, or --paths-from FILE")
    if args.limit is not None and args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    if args.batch_size < 1 or (args.workers is not None and args.workers < 1):
        raise UsageError("--batch-size and --workers must be at least 1")
    ray_only = {"workers": args.workers, "cpus_per_worker": args.cpus_per_worker != 1.0, "gpus_per_worker": args.gpus_per_worker}
    if args.engine == "local" and any(ray_only.values()):
        raise UsageError(f"--{'/--'.join(k.replace('_', '-') for k, v in ray_only.items() if v)} apply to --engine ray only")
    key = load_key(args.key, args.allow_shared_key)
    inputs = list(args.inputs)
    options = {}
    if args.engine == "ray":
        try:
            from bitmark.detectors.scan_ray import EncoderSpec, import_ray

            import_ray()
        except ImportError as e:
            raise UsageError(str(e)) from None

        options = dict(workers=args.workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                       paths_from=args.paths_from, encoder_spec=EncoderSpec(args.data))
        encoder = None
    else:
        if args.paths_from:
            from bitmark.detectors.manifest import read_path_list

            inputs += read_path_list(args.paths_from)
        encoder = image_encoder(args)
    try:
        r = scan(key, inputs, args.out, fpr=args.fpr, keep_list=args.keep, limit=args.limit, encoder=encoder,
                 batch_size=args.batch_size, engine=args.engine, resync=args.resync, data=args.data, null=args.null,
                 **options)
    except RuntimeError as e:
        if type(e).__name__ != "RayScanError":
            raise
        raise UsageError(str(e)) from e
    print(json.dumps(r) if args.json else
          f"{args.out}: {r['files']} files ({r['new']} new), {r['flagged']} flagged, {r['errors']} unreadable"
          + (f", {r['remaining']} not yet scanned" if r["remaining"] else "") + (f"; keep list {args.keep}" if args.keep else "")
          + (f" ({r['keep_left_out']} names with a newline left out)" if r.get("keep_left_out") else ""))
    return EXIT_UNREADABLE if r["errors"] else EXIT_OK
