"""Seeded bit sources shared by the tests."""

import torch

from benchmarks.null_calibration import TINY_SIDES, fixed_key, iid_pyramid, markov_pyramid  # noqa: F401

D = 16


def sample_pyramid(sampler, num: int, seed: int, sides=TINY_SIDES, d: int = D) -> list[torch.Tensor]:
    """Bits drawn by `sampler` from random logits ~ N(0, 1), scale by scale."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s, side in enumerate(sides):
        logits = torch.randn(num, side * side, d, generator=g)
        out.append(sampler(logits, scale=s, grid=(side, side), generator=g).view(num, side, side, d))
    return out
