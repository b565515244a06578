"""The arms: which of the images entering a pool are kept.

* `none` keeps everything; `oracle` drops exactly the synthetic images (it reads the ground truth);
* `mark-oracle` drops exactly the synthetic images of the *marking* generator (ground truth too): what a
  perfect watermark filter would do when only a share of the generators mark -- its ceiling;
* `watermark@F` drops what the watermark detector flags at FPR F, from the pixels (the world re-encodes);
* `random` keeps as many images as the watermark arm at the matched FPR kept, chosen uniformly;
* `entropy` keeps as many, chosen greedily to raise the pool's nearest-neighbour entropy: the
  Kozachenko-Leonenko estimate grows with the mean log distance of each point to its nearest neighbour,
  so each step keeps the candidate farthest from the pool and from what is already kept (farthest-point
  selection) -- a diversity filter that needs no detector;
* `confidence` keeps as many, those with the highest likelihood under the current model (the model's own
  confidence; known to sharpen the distribution rather than protect it).

Matching the count makes random/entropy/confidence differ from the watermark arm only in *which* images
they drop, not in how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bitmark.benchmarks.collapse.batch import Batch
from bitmark.benchmarks.collapse.config import CEILING_ARM, MATCHED_ARMS, watermark_fpr
from bitmark.benchmarks.collapse.metrics import nearest_distance
from bitmark.evaluation.quality import pairwise_distances


@dataclass
class FilterContext:
    world: Any
    model: Any  # the current model: the one that made the synthetic candidates
    pool: Batch | None  # what the pool already holds (accumulate), else None
    n_keep: int | None  # matched arms: how many to keep
    rng: np.random.Generator


def select(arm: str, batch: Batch, ctx: FilterContext) -> np.ndarray:
    """Sorted indices of the items of `batch` that the arm keeps."""
    if arm == "none":
        return np.arange(len(batch))
    if arm == "oracle":
        return np.flatnonzero(~batch.synthetic)
    if arm == CEILING_ARM:
        return np.flatnonzero(~batch.marked)
    fpr = watermark_fpr(arm)
    if fpr is not None:
        return np.flatnonzero(~ctx.world.flagged(batch, fpr))
    if arm not in MATCHED_ARMS:
        raise ValueError(f"unknown arm {arm!r}")
    if ctx.n_keep is None:
        raise ValueError(f"arm {arm!r} needs the number of images the matched watermark arm kept")
    k = min(ctx.n_keep, len(batch))
    if arm == "random":
        return np.sort(ctx.rng.choice(len(batch), k, replace=False))
    if arm == "entropy":
        reference = None if ctx.pool is None else ctx.world.selection_features(ctx.pool)
        return np.sort(farthest_points(ctx.world.selection_features(batch), reference, k))
    scores = ctx.world.log_likelihood(ctx.model, batch)
    return np.sort(np.argsort(-scores, kind="stable")[:k])


def farthest_points(candidates: np.ndarray, reference: np.ndarray | None, k: int) -> np.ndarray:
    """Greedy: k candidates, each the farthest (Euclidean) from the reference set and the ones chosen so far.
    Without a reference the first pick is the candidate farthest from the candidates' mean."""
    x = np.asarray(candidates, np.float64).reshape(len(candidates), -1)
    if reference is not None and len(reference):
        nearest = nearest_distance(x, np.asarray(reference, np.float64).reshape(len(reference), -1))
    else:
        nearest = np.sqrt(((x - x.mean(0)) ** 2).sum(1))
    chosen = []
    for _ in range(k):
        j = int(np.argmax(nearest))
        chosen.append(j)
        nearest = np.minimum(nearest, pairwise_distances(x, x[j : j + 1])[:, 0])
        nearest[chosen] = -np.inf
    return np.array(chosen, dtype=np.int64)

