"""Which of several keys (if any) marked an image, with the family-wise false-positive rate held at `fpr`.

Each key is tested at level fpr / K (Bonferroni): the chance that an unmarked image is attributed to any
key is then at most fpr, whatever the dependence between the tests. Among the keys that pass, the one
with the smallest p-value is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bitmark.core.keys import WatermarkKey
from bitmark.detectors import stats
from bitmark.detectors.bit_detector import BitDetector


@dataclass(frozen=True)
class Attribution:
    """Per image (B,): the attributed key id or None; per image and key (B, K): -log10 p and z."""

    key_id: list[str | None]
    key_ids: tuple[str, ...]
    neg_log10_p: np.ndarray
    z_score: np.ndarray
    level: float

    def __len__(self) -> int:
        return len(self.key_id)


def attribute(pyramid: Sequence, keys: Sequence[WatermarkKey], fpr: float = 0.01, **detector_options) -> Attribution:
    """Test every key on the pyramid and name the key that marked each image, or None."""
    if not keys:
        raise ValueError("attribute needs at least one key")
    ids = tuple(k.key_id for k in keys)
    if len(set(ids)) != len(ids):
        raise ValueError("the same key was given twice")
    level = stats.bonferroni(fpr, len(keys))
    results = [BitDetector(k, fpr=level, **detector_options).detect(pyramid) for k in keys]
    neg_log10_p = np.stack([r.neg_log10_p for r in results], axis=1)
    z = np.stack([r.z_score for r in results], axis=1)
    flagged = np.stack([r.is_watermarked for r in results], axis=1)
    best = np.argmax(np.where(flagged, neg_log10_p, -np.inf), axis=1)
    named = [ids[b] if flagged[i, b] else None for i, b in enumerate(best)]
    return Attribution(key_id=named, key_ids=ids, neg_log10_p=neg_log10_p, z_score=z, level=level)
