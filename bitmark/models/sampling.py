"""Sampling images from the shipped generator, with or without a key's watermark."""

from __future__ import annotations

import logging

import numpy as np
import torch

from bitmark.core.keys import WatermarkKey
from bitmark.core.sampler import PlainSampler, WatermarkSampler
from bitmark.io.progress import progress as progress_bar

log = logging.getLogger(__name__)

BATCH = 64  # images are drawn in batches of this size; batch b of seed s uses generator seed (s, b)


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
    temperature: float = 1.0, top_p: float = 1.0, progress: bool = True,
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """uint8 images (N, H, W, 3) and their sampled bit pyramid, drawn in seeded batches."""
    sampler = WatermarkSampler(key, top_p=top_p) if key is not None else PlainSampler(top_p=top_p)
    images, pyramids = [], []
    for b in progress_bar(range(0, len(classes), BATCH), desc="sampling", leave=False, enabled=progress):
        rng = torch.Generator().manual_seed(seed * 1_000_003 + b // BATCH)
        bits = gen.sample(classes[b : b + BATCH], sampler=sampler, cfg_scale=cfg_scale, temperature=temperature, generator=rng)
        images.append(tok.decode(bits))
        pyramids.append(bits)
    return np.concatenate(images), [torch.cat(scale) for scale in zip(*pyramids)]
