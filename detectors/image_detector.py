"""Image -> bits -> verdict: an encoder followed by a `BitDetector`.

An encoder is anything with `.encode(images) -> bit pyramid` that takes a list of uint8 RGB arrays
(H, W, 3) of any size and does its own resizing (the shipped tokenizer; `bitmark.adapters.infinity.
InfinityEncoder`, which follows Infinity's preprocessing). An encoder may also say what it fits images to
(`input_size`, (height, width)) and do that fit alone (`fit_image`): files are then decoded at reduced scale
where the codec allows (JPEG) and fitted as soon as they are read, so a batch holds small images only, whatever
the files' sizes. Files are read one by one; a file that cannot be read (or runs out of memory) gets a row
with its error and the rest go on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from bitmark.detectors.bit_detector import BitDetector, Detection
from bitmark.io.images import ImageError, load_image

log = logging.getLogger(__name__)


class Encoder(Protocol):
    def encode(self, images: Sequence[np.ndarray]) -> list: ...


class ImageDetector:
    """Detects a watermark in images: `encoder` reads them into bits, `detector` tests the bits."""

    def __init__(self, encoder: Encoder, detector: BitDetector, batch_size: int = 64):
        self.encoder, self.bits, self.batch_size = encoder, detector, batch_size

    def detect(self, images: Sequence[np.ndarray]) -> Detection:
        """uint8 RGB images (H, W, 3), any size: the encoder fits them."""
        return self.bits.detect(self.encoder.encode(images))

    def read(self, path: str | Path) -> np.ndarray:
        """One file as the encoder will see it: decoded at reduced scale if it can be, and fitted at once."""
        size = getattr(self.encoder, "input_size", None)
        image = load_image(path, draft=max(size) if size else None)
        fit_image = getattr(self.encoder, "fit_image", None)
        if fit_image is None:
            return image
        try:
            return fit_image(image)
        except MemoryError:
            raise ImageError(f"{path}: out of memory fitting a {image.shape[1]}x{image.shape[0]} image") from None

    def detect_files(self, paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
        """One row per file, in order: the Detection fields and the path, or the path and an error."""
        batch: list[tuple[Path, np.ndarray]] = []
        for path in paths:
            try:
                batch.append((Path(path), self.read(path)))
            except ImageError as e:
                yield from self._flush(batch)
                batch = []
                log.warning("%s", e)
                yield {"path": str(path), "error": str(e)}
                continue
            if len(batch) == self.batch_size:
                yield from self._flush(batch)
                batch = []
        yield from self._flush(batch)

    def _flush(self, batch: Sequence[tuple[Path, np.ndarray]]) -> Iterator[dict[str, Any]]:
        if not batch:
            return
        try:
            result = self.detect([image for _, image in batch])
        except MemoryError:
            if len(batch) == 1:
                path, image = batch[0]
                h, w = image.shape[:2]
                yield {"path": str(path), "error": f"{path}: out of memory encoding a {w}x{h} image"}
                return
            log.warning("out of memory encoding %d images at once; encoding them one by one", len(batch))
            for item in batch:
                yield from self._flush([item])
            return
        for (path, _), row in zip(batch, result.rows()):
            yield {"path": str(path), **row}
