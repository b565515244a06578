"""`bitmark demo`: a key, watermarked and clean samples of the shipped generator written as PNG files, and
detection from those files (re-encoded by the shipped tokenizer), with an annotated grid.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bitmark.cli.common import EXIT_OK, UsageError, emit, load_key, add_threads
from bitmark.core.keys import WatermarkKey

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    m = sub.add_parser("demo", help="key -> watermarked and clean samples as PNG -> detection from the files")
    m.add_argument("--out", default="demo-out", help="folder for the demo key, PNGs and grid")
    m.add_argument("--key", default=None, help="use this key file (default: make a fresh one in --out)")
    m.add_argument("--data", default="photos", help="which shipped generator")
    m.add_argument("--num", type=int, default=16, help="samples of each kind")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--json", action="store_true")
    add_threads(m)
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.models import MissingWeights

    key = load_key(args.key) if args.key else None
    try:
        rows = image_demo(Path(args.out), num=args.num, seed=args.seed, data=args.data, key=key)
    except MissingWeights as e:
        raise UsageError(str(e)) from e
    emit(rows, args.json, ("sample", "class", "watermarked", "z_score", "log10_p", "is_watermarked"))
    if not args.json:
        tp = sum(r["is_watermarked"] for r in rows if r["watermarked"])
        fp = sum(r["is_watermarked"] for r in rows if not r["watermarked"])
        n = len(rows) // 2
        print(f"\nflagged {tp}/{n} watermarked and {fp}/{n} clean samples at 1% FPR, detected from the PNG files")
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


def image_demo(out: Path, num: int = 16, seed: int = 0, data: str = "photos", key: WatermarkKey | None = None) -> list[dict]:
    """Key (fresh unless given) -> `num` watermarked and `num` clean samples (same classes and seeds) ->
    PNG files -> detection from the files -> rows, plus an annotated grid (demo-grid.png)."""
    import numpy as np
    import torch

    from bitmark.detectors import BitDetector
    from bitmark.detectors.image_detector import ImageDetector
    from bitmark.io.images import save_png
    from bitmark.models import classes, load_generator
    from bitmark.models.sampling import sample_images

    out.mkdir(parents=True, exist_ok=True)
    if key is None:
        key_path = out / "demo-key.json"
        key_path.unlink(missing_ok=True)
        key = WatermarkKey.generate()
        key.save(key_path)
        log.info("key %s written to %s", key.key_id, key_path)
    gen, tok = load_generator(data)
    names = classes(data)
    idx = torch.arange(num) % len(names)
    rows, grid_images, labels = [], [], []
    detector = ImageDetector(tok, BitDetector(key, fpr=0.01))
    for kind, k in (("watermarked", key), ("clean", None)):
        images, _ = sample_images(gen, tok, idx, key=k, seed=seed)
        paths = [save_png(out / f"{kind}-{i:02d}.png", im) for i, im in enumerate(images)]
        for i, r in enumerate(detector.detect_files(paths)):
            rows.append({"sample": paths[i].name, "class": names[int(idx[i])], "watermarked": k is not None, **r})
            labels.append(f"{'WM' if k else 'clean'} z={r['z_score']:.1f}{' *' if r['is_watermarked'] else ''}")
        grid_images.append(images)
    annotated_grid(np.concatenate(grid_images), labels).save(out / "demo-grid.png")
    return rows
