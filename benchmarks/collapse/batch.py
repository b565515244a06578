"""A pool of training items that remembers where each came from (real, synthetic and marked, or synthetic
from an unmarked generator) and its class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    items: np.ndarray  # images (N, H, W, 3) uint8, or the toy's values (N, 1)
    labels: np.ndarray  # class index per item (the requested class for samples)
    synthetic: np.ndarray  # bool: made by a generator (the ground truth the oracle sees)
    features: np.ndarray | None = None  # cached frozen-classifier features (metrics), filled on demand
    marked: np.ndarray | None = None  # bool: made by a *marking* generator (None: every synthetic item is)

    def __post_init__(self) -> None:
        if self.marked is None:
            self.marked = np.asarray(self.synthetic, dtype=bool).copy()
        if (self.marked & ~self.synthetic).any():
            raise ValueError("a marked item must be synthetic")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        feats = None if self.features is None else self.features[idx]
        return Batch(self.items[idx], self.labels[idx], self.synthetic[idx], feats, self.marked[idx])

    def concat(self, other: Batch) -> Batch:
        feats = None
        if self.features is not None and other.features is not None:
            feats = np.concatenate([self.features, other.features])
        return Batch(np.concatenate([self.items, other.items]), np.concatenate([self.labels, other.labels]),
                     np.concatenate([self.synthetic, other.synthetic]), feats,
                     np.concatenate([self.marked, other.marked]))
