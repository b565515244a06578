"""The synthetic round trip: key -> watermarked sampling of stand-in logits -> detection.

Until the embedded generator exists, a seeded stand-in plays the model: per scale it emits bit log-odds
~ N(0, 1) at the shapes of Infinity-2B at 256x256 (7 scales, 521 tokens, d = 32).
"""

from __future__ import annotations

import logging
from pathlib import Path

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
