"""`bitmark generate`: sample images from the shipped generator, with or without a key's watermark."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from bitmark.cli.backend_options import add_backend_arguments, backend_from_args
from bitmark.cli.common import EXIT_OK, UsageError, add_allow_shared_key, add_threads, load_key
from bitmark.core.keys import WatermarkKey


def add_parser(sub) -> None:
    g = sub.add_parser("generate", help="sample images from the shipped generator, watermarked with a key")
    g.add_argument("--key", help="key file; required unless --no-watermark")
    add_allow_shared_key(g)
    g.add_argument("--num", type=int, default=16, help="images to sample")
    g.add_argument("--out", required=True, help="folder for the PNGs and samples.jsonl")
    g.add_argument("--class", dest="class_name", default=None, help="class name or index (default: round-robin)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (file names carry it)")
    g.add_argument("--no-watermark", action="store_true", help="sample without the watermark")
    g.add_argument("--data", default="photos", help="which shipped generator (or a weights path)")
    g.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance scale")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the bit logits")
    g.add_argument("--top-p", type=float, default=1.0, help="per-bit top-p, applied after the watermark's bias")
    g.add_argument("--min-entropy", type=float, default=0.0, metavar="NATS",
                   help="bias only bits whose entropy exceeds this (e.g. 0.2-0.4): less visible for the same evidence "
                        "(benchmarks/RESULTS.md 'Spending the bias'); default 0, every bit")
    g.add_argument("--overwrite", action="store_true", help="replace the samples in a non-empty --out folder")
    g.add_argument("--json", action="store_true", help="print one JSON line per image")
    add_backend_arguments(g)
    add_threads(g)
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.models import MissingWeights
    from bitmark.models.sampling import check_sampling

    if not args.no_watermark and not args.key:
        raise UsageError("give --key KEY.json (or --no-watermark for clean samples)")
    if args.min_entropy and args.no_watermark:
        raise UsageError("--min-entropy gates the watermark's bias; clean samples (--no-watermark) have none")
    gate = {"min_entropy": args.min_entropy} if args.min_entropy else {}  # recorded in the sidecar when used
    try:
        check_sampling(args.num, cfg_scale=args.cfg, temperature=args.temperature, top_p=args.top_p)
        check_out(Path(args.out), args.overwrite)
    except ValueError as e:
        raise UsageError(str(e)) from e
    key = None if args.no_watermark else load_key(args.key, args.allow_shared_key)
    try:
        rows = generate_files(
            Path(args.out), args.num, key=key, data=args.data, class_name=args.class_name, seed=args.seed,
            overwrite=args.overwrite, cfg_scale=args.cfg, temperature=args.temperature, top_p=args.top_p, **gate,
            backend=None if args.backend == "embedded" else backend_from_args(args),
        )
    except (MissingWeights, ValueError) as e:
        raise UsageError(str(e)) from e
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"wrote {len(rows)} images and samples.jsonl to {args.out}")
    return EXIT_OK


SIDECAR = "samples.jsonl"
SAMPLE_NAME = re.compile(r"(wm|clean)-s-?\d+-\d{5,}\.png")  # the names generate_files writes


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or a folder with anything in it unless `overwrite`."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; pass --overwrite (in Python: overwrite=True) to replace the samples in it")


def _clear_samples(out: Path) -> None:
    """Remove a previous run's samples and sidecar (only the names generate_files writes; nothing else)."""
    for f in out.iterdir():
        if (f.name == SIDECAR or SAMPLE_NAME.fullmatch(f.name)) and not f.is_dir():
            f.unlink()


def generate_files(
    out: Path, num: int, key: WatermarkKey | None, data: str = "photos", class_name: str | None = None, seed: int = 0,
    overwrite: bool = False, backend=None, **options: Any,
) -> list[dict[str, Any]]:
    """Write `num` PNGs and a samples.jsonl sidecar (file, seed, index, class, key id, watermarked).

    A folder that holds anything is refused unless `overwrite`; then the previous samples and sidecar are
    removed once the new ones are drawn, so the sidecar lists exactly the PNGs in the folder.
    backend: None for the shipped generator, or a `bitmark.backends` generator sampled with its own default
    conditioning (Infinity: the prompt set, in the sidecar's "prompt" field) and its own sampling settings.
    """
    from bitmark.models import classes, load_generator
    from bitmark.models.sampling import check_sampling, class_indices, sample_images

    check_sampling(num, **{k: v for k, v in options.items() if k in ("cfg_scale", "temperature", "top_p")})
    out = Path(out)
    check_out(out, overwrite)
    if backend is not None:
        drawn = backend_samples(backend, num, key, seed, options.get("top_p", 1.0), options.get("min_entropy", 0.0))
        return _write(out, drawn, key, seed, {"backend": backend.description}, field=backend.conditioning)
    gen, tok = load_generator(data)
    names = classes(data)
    idx = class_indices(num, names, class_name)
    images, _ = sample_images(gen, tok, idx, key=key, seed=seed, **options)
    return _write(out, (images, [names[c] for c in idx.tolist()]), key, seed, options)


def backend_samples(backend, num: int, key: WatermarkKey | None, seed: int, top_p: float, min_entropy: float = 0.0):
    """(images, conditioning) of `num` samples drawn from a backend."""
    from bitmark.backends import make_sampler

    samples = backend.sample(make_sampler(key, top_p=top_p, min_entropy=min_entropy), num, seed=seed)
    return samples.images, samples.conditioning


def _write(out: Path, drawn, key: WatermarkKey | None, seed: int, options: dict[str, Any],
           field: str = "class") -> list[dict[str, Any]]:
    from bitmark.io.images import save_png

    images, labels = drawn
    out.mkdir(parents=True, exist_ok=True)
    _clear_samples(out)
    rows = []
    with open(out / SIDECAR, "w") as sidecar:
        for i, (image, c) in enumerate(zip(images, labels)):
            name = f"{'wm' if key else 'clean'}-s{seed}-{i:05d}.png"
            save_png(out / name, image)
            row = {"file": name, "seed": seed, "index": i, field: c, "key_id": key.key_id if key else None,
                   "watermarked": key is not None, **options}
            sidecar.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows
