"""The synthetic round trip: key -> watermarked sampling of stand-in logits -> detection.

Until the embedded generator exists, a seeded stand-in plays the model: per scale it emits bit log-odds
~ N(0, 1) at the shapes of Infinity-2B at 256x256 (7 scales, 521 tokens, d = 32).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from bitmark.keys import WatermarkKey
from bitmark.pyramid import save_pyramid
from bitmark.sampler import PlainSampler, WatermarkSampler

log = logging.getLogger(__name__)

INFINITY_256_SIDES = (1, 2, 4, 6, 8, 12, 16)


def sample_pyramid(sampler: PlainSampler, num: int, seed: int, sides=INFINITY_256_SIDES, d: int = 32):
    """Run `sampler` over a stand-in model's logits, scale by scale, and return the bit pyramid."""
    model_rng = torch.Generator().manual_seed(seed)  # the "model's" randomness
    bits_rng = torch.Generator().manual_seed(seed + 1)  # the sampler's uniforms
    pyramid = []
    for s, side in enumerate(sides):
        logits = torch.randn(num, side * side, d, generator=model_rng)
        bits = sampler(logits, scale=s, grid=(side, side), generator=bits_rng)
        pyramid.append(bits.view(num, side, side, d))
    return pyramid


def synthetic_demo(out: Path, num: int = 16, seed: int = 0) -> list[dict]:
    """Write a fresh key and two pyramid files (watermarked, clean) to `out`, detect both, return rows."""
    from detectors import BitDetector  # the demo is part of the command layer

    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "demo-key.json"
    key_path.unlink(missing_ok=True)
    key = WatermarkKey.generate()
    key.save(key_path)
    log.info("key %s written to %s", key.key_id, key_path)
    detector = BitDetector(key, fpr=0.01)
    rows = []
    for name, sampler in (("watermarked", WatermarkSampler(key)), ("clean", PlainSampler())):
        pyramid = sample_pyramid(sampler, num, seed)  # same model logits and uniforms for both
        save_pyramid(out / f"{name}.safetensors", pyramid)
        for i, r in enumerate(detector.detect(pyramid).rows()):
            rows.append({"sample": f"{name}[{i}]", "watermarked": name == "watermarked", **r})
    return rows


def annotated_grid(images, labels: list[str], scale: int = 3, columns: int = 8) -> "Image.Image":
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


def image_demo(out: Path, num: int = 16, seed: int = 0, data: str = "photos") -> list[dict]:
    """Key -> `num` watermarked and `num` clean samples (same classes and seeds) -> PNG files -> detection
    from the files -> rows, plus an annotated grid (demo-grid.png)."""
    from bitmark.generate import sample_images
    from bitmark.images import save_png
    from bitmark.models import classes, load_generator
    from detectors import BitDetector
    from detectors.image_detector import ImageDetector

    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "demo-key.json"
    key_path.unlink(missing_ok=True)
    key = WatermarkKey.generate()
    key.save(key_path)
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
