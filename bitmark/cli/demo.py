"""`bitmark demo`: a key, watermarked and clean samples of the shipped generator written as PNG files, and
detection from those files (re-encoded by the shipped tokenizer), with an annotated grid.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bitmark.cli.backend_options import add_backend_arguments, backend_from_args
from bitmark.cli.common import EXIT_OK, UsageError, add_allow_shared_key, add_threads, emit, load_key
from bitmark.core.keys import WatermarkKey

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    m = sub.add_parser("demo", help="key -> watermarked and clean samples as PNG -> detection from the files")
    m.add_argument("--out", default="demo-out", help="folder for the demo key, PNGs and grid")
    m.add_argument("--key", default=None, help="use this key file (default: make a fresh one in --out)")
    add_allow_shared_key(m)
    m.add_argument("--data", default="photos", help="which shipped generator")
    m.add_argument("--num", type=int, default=16, help="samples of each kind")
    m.add_argument("--seed", type=int, default=0, help="sampling seed of both kinds")
    m.add_argument("--json", action="store_true", help="print one JSON line per sample")
    add_backend_arguments(m)
    add_threads(m)
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.models import MissingWeights

    key = load_key(args.key, args.allow_shared_key) if args.key else None
    try:
        backend = None if args.backend == "embedded" else backend_from_args(args)
        rows = image_demo(Path(args.out), num=args.num, seed=args.seed, data=args.data, key=key, backend=backend)
    except MissingWeights as e:
        raise UsageError(str(e)) from e
    emit(rows, args.json, ("sample", "class", "watermarked", "z_score", "neg_log10_p", "is_watermarked"))
    if not args.json:
        tp = sum(r["is_watermarked"] for r in rows if r["watermarked"])
        fp = sum(r["is_watermarked"] for r in rows if not r["watermarked"])
        n = len(rows) // 2
        print(f"\nflagged {tp}/{n} watermarked and {fp}/{n} clean samples at 1% FPR, detected from the PNG files")
        if backend is not None:
            print(f"backend: {backend.description}")
        print(f"grid: {args.out}/demo-grid.png; try: bitmark detect --key {args.key or args.out + '/demo-key.json'} {args.out}")
    return EXIT_OK

def annotated_grid(images: np.ndarray, labels: list[str], scale: int = 3, columns: int = 8):
    """A PNG-ready grid of images (N, H, W, 3), each enlarged `scale` times with its label underneath."""
    from PIL import Image, ImageDraw

    n, h, w, _ = images.shape
    cell_w, cell_h = w * scale, h * scale + 14
    rows = (n + columns - 1) // columns
    grid = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    for i, (im, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        grid.paste(Image.fromarray(im).resize((cell_w, h * scale), Image.Resampling.NEAREST), (x, y))
        draw.text((x + 2, y + h * scale + 1), label, fill="black")
    return grid


def image_demo(out: Path, num: int = 16, seed: int = 0, data: str = "photos", key: WatermarkKey | None = None,
               backend=None) -> list[dict]:
    """Key (fresh unless given) -> `num` watermarked and `num` clean samples (same classes and seeds) ->
    PNG files -> detection from the files -> rows, plus an annotated grid (demo-grid.png).
    backend: a `bitmark.backends` generator (default: the shipped one of `data`)."""
    import numpy as np

    from bitmark.backends import EmbeddedBackend, make_sampler
    from bitmark.detectors import BitDetector
    from bitmark.detectors.image_detector import ImageDetector
    from bitmark.io.images import save_png

    out.mkdir(parents=True, exist_ok=True)
    if key is None:
        key_path = out / "demo-key.json"
        key_path.unlink(missing_ok=True)
        key = WatermarkKey.generate()
        key.save(key_path)
        log.info("key %s written to %s", key.key_id, key_path)
    backend = backend or EmbeddedBackend(data)
    names = backend.class_names() if backend.kind == "embedded" else None
    rows, grid_images, labels = [], [], []
    detector = ImageDetector(backend, BitDetector(key, fpr=0.01))
    for kind, k in (("watermarked", key), ("clean", None)):
        drawn = backend.sample(make_sampler(k), num, seed=seed)
        images = drawn.images
        paths = [save_png(out / f"{kind}-{i:02d}.png", im) for i, im in enumerate(images)]
        for i, r in enumerate(detector.detect_files(paths)):
            c = drawn.conditioning[i]
            rows.append({"sample": paths[i].name, "class": names[c] if names else c, "watermarked": k is not None, **r})
            labels.append(f"{'WM' if k else 'clean'} z={r['z_score']:.1f}{' *' if r['is_watermarked'] else ''}")
        grid_images.append(images)
    side = grid_images[0].shape[2]
    annotated_grid(np.concatenate(grid_images), labels, scale=max(1, 96 // side)).save(out / "demo-grid.png")
    return rows
