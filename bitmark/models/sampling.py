"""Sampling images from the shipped generator, with or without a key's watermark."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from bitmark.core.keys import WatermarkKey
from bitmark.core.sampler import PlainSampler, WatermarkSampler
from bitmark.io.progress import progress as progress_bar

log = logging.getLogger(__name__)

BATCH = 64  # images are drawn in batches of this size; batch b of seed s uses generator seed (s, b)


def check_sampling(num: int, cfg_scale: float = 2.0, temperature: float = 1.0, top_p: float = 1.0) -> None:
    """Refuse settings that sample nothing or nonsense (the one check behind `generate` and `sample_images`).

    num >= 1; temperature finite and > 0 (logits are divided by it); guidance finite and >= 0 (NaN or inf
    logits would silently become constant bits); top_p in (0, 1]."""
    problems = []
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        problems.append(f"the number of images must be an integer >= 1, got {num!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        problems.append(f"temperature must be finite and > 0, got {temperature!r}")
    if not (math.isfinite(cfg_scale) and cfg_scale >= 0):
        problems.append(f"the guidance scale (cfg) must be finite and >= 0, got {cfg_scale!r}")
    if not (math.isfinite(top_p) and 0 < top_p <= 1):
        problems.append(f"top_p must be in (0, 1], got {top_p!r}")
    if problems:
        raise ValueError("; ".join(problems))


def class_indices(num: int, classes: list[str], class_name: str | int | None) -> torch.Tensor:
    """Round-robin over the classes, or one class given by name or index."""
    if class_name is None:
        return torch.arange(num) % len(classes)
    if str(class_name) in classes:
        return torch.full((num,), classes.index(str(class_name)))
    if str(class_name).isdigit() and int(class_name) < len(classes):
        return torch.full((num,), int(class_name))
    raise ValueError(f"unknown class {class_name!r}; classes: {', '.join(classes)}")


def sample_images(
    gen, tok, classes: torch.Tensor, key: WatermarkKey | None = None, seed: int = 0, cfg_scale: float = 2.0,
    temperature: float = 1.0, top_p: float = 1.0, progress: bool = True, sampler: PlainSampler | None = None,
    min_entropy: float = 0.0,
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """uint8 images (N, H, W, 3) and their sampled bit pyramid, drawn in seeded batches.

    sampler: use this sampler (watermarked or plain) instead of the one made from `key`, `top_p` and
    `min_entropy` (the watermark's entropy gate, `WatermarkSampler`).
    """
    check_sampling(len(classes), cfg_scale=cfg_scale, temperature=temperature, top_p=top_p)
    if sampler is not None and key is not None:
        raise ValueError("pass key= or sampler=, not both")
    if sampler is None:
        sampler = WatermarkSampler(key, top_p=top_p, min_entropy=min_entropy) if key is not None else PlainSampler(top_p=top_p)
    images, pyramids = [], []
    for b in progress_bar(range(0, len(classes), BATCH), desc="sampling", leave=False, enabled=progress):
        rng = torch.Generator().manual_seed(seed * 1_000_003 + b // BATCH)
        bits = gen.sample(classes[b : b + BATCH], sampler=sampler, cfg_scale=cfg_scale, temperature=temperature, generator=rng)
        images.append(tok.decode(bits))
        pyramids.append(bits)
    return np.concatenate(images), [torch.cat(scale) for scale in zip(*pyramids)]
