"""The published BitMark detector's count, for compatibility: the watermarked scales as one bit stream.

Facts of the published code (read, not copied): it lays the watermarked scales out one after the other,
each token by token (row-major over the grid) with the d bits of a token in order, and scores every
overlapping pair of neighbouring bits of that stream -- inside a token, from bit d-1 of a token to bit 0 of
the next, and across the join of two scales -- so T = (total bits) - 1 pairs. A pair is green when its
second bit differs from its first (the "01, 10" pattern set), gamma = 1/2, no unique counting, and an
image is flagged when z > 4.

Our `bitmark-2025` rule with the default token counting scores only the d-1 pairs inside each token. On
the same bits the two z-scores differ (by about 1.6% at d = 32 for marked images); `BitDetector(key,
counting="stream")` gives the published statistic, so images marked by the published code are judged
by its own test.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PUBLISHED_Z_THRESHOLD = 4.0  # the published detector flags z > 4


def stream_counts(pyramid: Sequence[torch.Tensor], scales: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs scored and green pairs per image and scale, each (B, S) int64, over the stream of `scales`.

    The pair that joins scale s to the previous scale in the stream counts towards scale s, so the
    totals over scales are the published T = (bits in the stream) - 1 and its green count.
    """
    B, S = pyramid[0].shape[0], len(pyramid)
    scored = torch.zeros(B, S, dtype=torch.int64)
    green = torch.zeros(B, S, dtype=torch.int64)
    last = None  # (B,) the final bit of the stream so far
    for s in sorted(scales):
        flat = torch.as_tensor(pyramid[s]).reshape(B, -1).bool()  # (h, w, d) row-major: token by token
        scored[:, s] = flat.shape[1] - 1
        green[:, s] = (flat[:, 1:] != flat[:, :-1]).sum(1)
        if last is not None:
            scored[:, s] += 1
            green[:, s] += (flat[:, 0] != last).long()
        last = flat[:, -1]
    return scored, green


def published_stream_z(pyramid: Sequence, scales: Sequence[int] | None = None) -> np.ndarray:
    """The published detector's z per image: (G - T/2) / sqrt(T/4) over the stream of `scales` (default all)."""
    from bitmark.core.pyramid import as_pyramid
    from bitmark.detectors.stats import binomial_z

    pyramid = as_pyramid(pyramid)
    scored, green = stream_counts(pyramid, range(len(pyramid)) if scales is None else scales)
    return binomial_z(green.sum(1).numpy(), scored.sum(1).numpy())
