"""`bitmark generate`: sample images from the shipped generator, with or without a key's watermark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bitmark.cli.common import EXIT_OK, UsageError, load_key, add_threads
from bitmark.core.keys import WatermarkKey


def add_parser(sub) -> None:
    g = sub.add_parser("generate", help="sample images from the shipped generator, watermarked with a key")
    g.add_argument("--key", help="key file; required unless --no-watermark")
    g.add_argument("--num", type=int, default=16)
    g.add_argument("--out", required=True, help="folder for the PNGs and samples.jsonl")
    g.add_argument("--class", dest="class_name", default=None, help="class name or index (default: round-robin)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-watermark", action="store_true", help="sample without the watermark")
    g.add_argument("--data", default="photos", help="which shipped generator (or a weights path)")
    g.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance scale")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0, help="per-bit top-p, applied after the watermark's bias")
    g.add_argument("--json", action="store_true")
    add_threads(g)
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.models import MissingWeights

    if not args.no_watermark and not args.key:
        raise UsageError("give --key KEY.json (or --no-watermark for clean samples)")
    key = None if args.no_watermark else load_key(args.key)
    try:
        rows = generate_files(
            Path(args.out), args.num, key=key, data=args.data, class_name=args.class_name, seed=args.seed,
            cfg_scale=args.cfg, temperature=args.temperature, top_p=args.top_p,
        )
    except (MissingWeights, ValueError) as e:
        raise UsageError(str(e)) from e
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"wrote {len(rows)} images and samples.jsonl to {args.out}")
    return EXIT_OK


def generate_files(
    out: Path, num: int, key: WatermarkKey | None, data: str = "photos", class_name: str | None = None, seed: int = 0,
    **options: Any,
) -> list[dict[str, Any]]:
    """Write `num` PNGs and a samples.jsonl sidecar (file, seed, index, class, key id, watermarked)."""
    from bitmark.io.images import save_png
    from bitmark.models import classes, load_generator
    from bitmark.models.sampling import class_indices, sample_images

    gen, tok = load_generator(data)
    names = classes(data)
    idx = class_indices(num, names, class_name)
    images, _ = sample_images(gen, tok, idx, key=key, seed=seed, **options)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(out / "samples.jsonl", "a") as sidecar:
        for i, (image, c) in enumerate(zip(images, idx.tolist())):
            name = f"{'wm' if key else 'clean'}-s{seed}-{i:05d}.png"
            save_png(out / name, image)
            row = {"file": name, "seed": seed, "index": i, "class": names[c], "key_id": key.key_id if key else None,
                   "watermarked": key is not None, **options}
            sidecar.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows
