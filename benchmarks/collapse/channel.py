"""What a scraper receives: an attack chain applied to every image on its way into the pool.

The channel acts on *every* scraped image, real and synthetic alike -- a scraper cannot tell them apart,
and the web re-compresses both -- before any filter sees it, so the watermark filter detects through it
and the pool trains on its output. Any `bitmark.attacks` spec is a channel (`jpeg:75+resize:0.75`), and
`web` draws a different chain per image (`bitmark.attacks.web`). An attack that returns another size is
fitted back to the model's size (`bitmark.io.images.fit`, as detection fits images), so the pool keeps one grid.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from bitmark.benchmarks.collapse.batch import Batch


class Channel:
    def __init__(self, spec: str | None):
        from bitmark import attacks

        self.spec = spec
        self.attack = None if spec in (None, "", "none") else attacks.parse(spec)

    def __call__(self, batch: Batch, seed: Sequence[int]) -> Batch:
        """The batch as it arrives; image i draws from generator (seed, part, i), so it is reproducible."""
        if self.attack is None or len(batch) == 0:
            return batch
        from PIL import Image

        from bitmark.io.images import fit

        size = batch.items.shape[1]
        out = self.attack([Image.fromarray(x) for x in batch.items], seed=list(seed))
        items = np.stack([fit(np.asarray(p.convert("RGB"), dtype=np.uint8), size) for p in out])
        return replace(batch, items=items, features=None)  # new pixels: cached features no longer hold
