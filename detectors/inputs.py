"""Checks of what a BitDetector is given, so that a wrong input is refused instead of scored.

Each of these used to return a verdict that meant nothing: the sampler's own (B, h*w, d) output read as one
image, a bare tensor read as a pyramid of its batch entries, scales in the wrong order, scale indices the
pyramid does not have (z = 0), NaN weights (z = 0).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from bitmark.core.keys import WatermarkConfig
from bitmark.core.pyramid import Pyramid, as_pyramid

PYRAMID = "a bit pyramid: a list, coarse to fine, with one (B, h, w, d) bool tensor per scale"


def check_weights(weights: Sequence[float] | None) -> torch.Tensor | None:
    """Per-scale weights as float64, refusing NaN, infinite, negative or all-zero ones."""
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.dim() != 1 or len(w) == 0:
        raise ValueError(f"weights are one number per scale, got {weights!r}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not bool((w > 0).any()):
        raise ValueError(f"scale weights must be finite, >= 0 and not all 0, got {w.tolist()}; "
                         "give 1.0 for a scale to count and 0.0 for one to ignore")
    return w


def check_pyramid(
    pyramid: Any, config: WatermarkConfig, n: int, scales: Sequence[int] | None, weights: torch.Tensor | None
) -> Pyramid:
    """The pyramid as bool tensors, after refusing anything whose verdict would mean nothing."""
    if isinstance(pyramid, (torch.Tensor, np.ndarray)):
        raise ValueError(
            f"detect takes {PYRAMID}, got a single {type(pyramid).__name__} of shape {tuple(pyramid.shape)}; "
            "pass [bits] for a one-scale pyramid, or sampler.pyramid of a WatermarkSampler(..., record=True)"
        )
    if isinstance(pyramid, (str, bytes, os.PathLike, dict)):
        raise ValueError(f"detect takes {PYRAMID}, got {type(pyramid).__name__}; read files with load_pyramid(path)")
    for s, x in enumerate(pyramid):
        shape = tuple(x.shape) if isinstance(x, (torch.Tensor, np.ndarray)) else np.shape(x)
        if len(shape) == 3:
            raise ValueError(
                f"scale {s} has shape {shape}, but detect needs (B, h, w, d) per scale. The samplers return "
                "(B, h*w, d): reshape each scale with bits.view(B, h, w, d), or pass sampler.pyramid of a "
                "WatermarkSampler(..., record=True); for one image's (h, w, d) bits pass bits[None]"
            )
    pyramid = as_pyramid(pyramid)
    grids = [tuple(t.shape[1:3]) for t in pyramid]
    for s in range(1, len(grids)):
        if grids[s][0] * grids[s][1] < grids[s - 1][0] * grids[s - 1][1]:
            raise ValueError(
                f"scale {s} ({grids[s][0]}x{grids[s][1]}) is coarser than scale {s - 1} "
                f"({grids[s - 1][0]}x{grids[s - 1][1]}): a pyramid goes coarse to fine; reverse it with pyramid[::-1]"
            )
    num = len(pyramid)
    missing = [s for s in (config.scales or ()) if s >= num]
    if missing:
        raise ValueError(
            f"the key watermarks scales {missing} but this pyramid has {num} scales (0..{num - 1}): the key was "
            "made for another generator's schedule, or the pyramid is incomplete"
        )
    if scales is not None and any(s >= num for s in scales):
        raise ValueError(f"scales={tuple(scales)} asks for scales this pyramid does not have: it has {num} (0..{num - 1})")
    if weights is not None and len(weights) < num:
        raise ValueError(f"{len(weights)} scale weights for a pyramid of {num} scales; give one weight per scale")
    d = pyramid[0].shape[-1]
    scored = [s for s in range(num) if config.watermarks(s) and (scales is None or s in scales)]
    positions = sum(grids[s][0] * grids[s][1] for s in scored) * max(d - n + 1, 0)
    if positions == 0:
        raise ValueError(f"nothing to score: the scored scales {scored} (grids {[grids[s] for s in scored]}, tokens "
                         f"of {d} bits) hold no bit with a full context of width n={n}")
    if weights is not None and not any(weights[s] > 0 for s in scored):
        raise ValueError(f"the weights {weights.tolist()} are 0 on every scored scale {scored}")
    return pyramid


def check_mask(mask: Any, pyramid: Pyramid) -> list[torch.Tensor] | None:
    """Per scale, the positions to score as bool (B, h*w); refuses a mask that does not fit the pyramid."""
    if mask is None:
        return None
    if len(mask) != len(pyramid):
        raise ValueError(f"a mask has one (B, h, w) entry per scale: got {len(mask)} for a pyramid of {len(pyramid)} scales")
    out = []
    for s, (m, bits) in enumerate(zip(mask, pyramid)):
        m = torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m)
        if tuple(m.shape) != tuple(bits.shape[:3]):
            raise ValueError(f"scale {s}: mask of shape {tuple(m.shape)} for bits {tuple(bits.shape)}; need (B, h, w)")
        out.append(m.to(torch.bool).reshape(m.shape[0], -1))
    return out
