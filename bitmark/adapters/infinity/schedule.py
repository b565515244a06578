"""Infinity's scale schedules: the token grid of every scale at a resolution."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from bitmark.adapters.infinity.loading import import_infinity

log = logging.getLogger(__name__)

PIXELS_PER_TOKEN = 16  # Infinity's VAE stride (2B: stride 16; 8B: stride 8 with 2x2 patchify)
# Square schedules (h = w). The 1:1 sides, coarse to fine, and how many of them each resolution uses.
SQUARE_SIDES = (1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)
SCALES_PER_RESOLUTION = {256: 7, 512: 10, 768: 12, 1024: 13}
RESOLUTION_NAMES = {"0.06M": 256, "0.25M": 512, "0.60M": 768, "1M": 1024}  # Infinity's `pn` names


class ScheduleMismatch(ValueError):
    """A sampling call whose logits do not fit the scale that the call order and the schedule predict."""


def infinity_schedule(resolution: int | str = 1024, h_div_w: float = 1.0) -> list[tuple[int, int, int]]:
    """Infinity's scale schedule `[(1, h, w), ...]` for a resolution (256/512/768/1024 or its `pn` name).

    Square schedules are built in. Other aspect ratios come from Infinity's own table
    (`infinity.utils.dynamic_resolution`), so they need Infinity importable.
    """
    pixels = RESOLUTION_NAMES.get(resolution, resolution) if isinstance(resolution, str) else resolution
    if isinstance(pixels, str) and pixels.isdigit():
        pixels = int(pixels)
    if pixels not in SCALES_PER_RESOLUTION:
        names = ", ".join([str(r) for r in SCALES_PER_RESOLUTION] + list(RESOLUTION_NAMES))
        raise ValueError(f"unknown Infinity resolution {resolution!r}; choose one of {names}")
    if abs(h_div_w - 1.0) < 1e-3:
        return [(1, s, s) for s in SQUARE_SIDES[: SCALES_PER_RESOLUTION[pixels]]]
    table = import_infinity("infinity.utils.dynamic_resolution")
    templates = np.asarray(table.h_div_w_templates, dtype=float)
    nearest = float(templates[np.argmin(np.abs(templates - h_div_w))])
    name = {v: k for k, v in RESOLUTION_NAMES.items()}[pixels]
    return [(1, int(h), int(w)) for _, h, w in table.dynamic_resolution_h_w[nearest][name]["scales"]]


def schedule_grids(schedule: int | str | Sequence) -> list[tuple[int, int]]:
    """Token grids `(h, w)` per scale from a resolution or a schedule of sides, (h, w) or Infinity's (1, h, w)."""
    if isinstance(schedule, (int, str)):
        schedule = infinity_schedule(schedule)
    grids: list[tuple[int, int]] = []
    for s, item in enumerate(schedule):
        item = (int(item),) * 2 if isinstance(item, (int, np.integer)) else tuple(int(v) for v in item)
        if len(item) == 3:
            if item[0] != 1:
                raise ValueError(
                    f"scale {s}: {item} has t = {item[0]}; images need t = 1 (Infinity's scripts pass "
                    "[(1, h, w) for (_, h, w) in dynamic_resolution_h_w[ratio][pn]['scales']])"
                )
            item = item[1:]
        if len(item) != 2 or min(item) < 1:
            raise ValueError(f"scale {s}: expected a side, (h, w) or (1, h, w), got {item!r}")
        grids.append((item[0], item[1]))
    if not grids:
        raise ValueError("a scale schedule needs at least one scale")
    return grids
