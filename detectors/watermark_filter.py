"""Keep or drop images by the watermark detector: what a data pipeline runs before training on a scrape.

The filter works from pixels: images (arrays or files) are re-encoded by an encoder (the shipped
tokenizer by default) and tested with `BitDetector` at the filter's FPR. An image is dropped when it is
flagged; everything else -- real images, and synthetic ones whose mark did not survive -- is kept. Files
that cannot be read are neither kept nor dropped: they are listed with their error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitmark.core.keys import WatermarkKey
from bitmark.detectors.bit_detector import BitDetector
from bitmark.detectors.image_detector import Encoder, ImageDetector


@dataclass(frozen=True)
class FilterResult:
    """The split of one collection: indices into it, and each item's z-score and p-value (NaN on error)."""

    kept: np.ndarray
    dropped: np.ndarray
    z_score: np.ndarray
    p_value: np.ndarray
    errors: dict[int, str]

    @property
    def keep_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.z_score), dtype=bool)
        mask[self.kept] = True
        return mask


class WatermarkFilter:
    """Splits images into kept (not flagged at `fpr`) and dropped (flagged as carrying `key`'s mark)."""

    def __init__(self, key: WatermarkKey, fpr: float = 0.01, encoder: Encoder | None = None, batch_size: int = 256,
                 resync: bool = True, data: str | Path | None = "photos", null: str | None = None):
        """resync: undo crops, flips and rotations first (`bitmark.detectors.resync`; with the shipped tokenizer,
        whose cell texture it reads; other encoders detect without it). False: the plain detector, ~15x faster.
        data: the shipped models the encoder belongs to (default: the photos tokenizer, also the encoder when none
        is given); their generator's detector card gives the default null (`bitmark.detectors.defaults`). None:
        an encoder of no shipped generator. null: instead, this null ("self-normalised" or "binomial")."""
        from bitmark.detectors.defaults import default_detector
        from bitmark.detectors.resync import make_image_detector

        if encoder is None:
            from bitmark.models import load_tokenizer

            encoder = load_tokenizer(data or "photos")
        self.fpr = fpr
        bits = default_detector(key, fpr, data, encoder) if null is None else BitDetector(key, fpr=fpr, null=null)
        self.detector: ImageDetector = make_image_detector(encoder, bits, resync, batch_size)

    def split(self, images: np.ndarray | Sequence[np.ndarray]) -> FilterResult:
        """uint8 RGB images (N, H, W, 3) or a list of arrays of any size."""
        z, p = np.empty(len(images)), np.empty(len(images))
        flagged = np.zeros(len(images), dtype=bool)
        step = self.detector.batch_size
        for i in range(0, len(images), step):
            result = self.detector.detect(images[i : i + step])
            z[i : i + step], p[i : i + step] = result.z_score, result.p_value
            flagged[i : i + step] = result.is_watermarked
        return FilterResult(np.flatnonzero(~flagged), np.flatnonzero(flagged), z, p, {})

    def split_files(self, paths: Iterable[str | Path]) -> FilterResult:
        """Image files, in order; an unreadable file gets an error and a NaN score."""
        rows = list(self.detector.detect_files(paths))
        errors = {i: r["error"] for i, r in enumerate(rows) if "error" in r}
        z = np.array([np.nan if "error" in r else r["z_score"] for r in rows], dtype=float)
        p = np.array([np.nan if "error" in r else r["p_value"] for r in rows], dtype=float)
        flagged = np.array([bool(r.get("is_watermarked", False)) for r in rows], dtype=bool)
        ok = np.array([i not in errors for i in range(len(rows))], dtype=bool)
        return FilterResult(np.flatnonzero(ok & ~flagged), np.flatnonzero(flagged), z, p, errors)
