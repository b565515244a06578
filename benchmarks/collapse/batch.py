"""A pool of training items that remembers where each came from (real or synthetic) and its class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    items: np.ndarray  # images (N, H, W, 3) uint8, or the toy's values (N, 1)
    labels: np.ndarray  # class index per item (the requested class for samples)
    synthetic: np.ndarray  # bool: made by a generator (the ground truth the oracle sees)
    features: np.ndarray | None = None  # cached frozen-classifier features (metrics), filled on demand

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        feats = None if self.features is None else self.features[idx]
        return Batch(self.items[idx], self.labels[idx], self.synthetic[idx], feats)

    def concat(self, other: Batch) -> Batch:
        feats = None
        if self.features is not None and other.features is not None:
            feats = np.concatenate([self.features, other.features])
        return Batch(np.concatenate([self.items, other.items]), np.concatenate([self.labels, other.labels]),
                     np.concatenate([self.synthetic, other.synthetic]), feats)
