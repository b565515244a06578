"""The web channel: what happens to an image between a generator's PNG and a scraper's copy.

On the web an image is rarely seen as it was written: it is cropped for a thumbnail or a layout,
downscaled by a CDN, and re-compressed, and each site does it differently. `web` draws one such chain
*per image* from the distribution below (the one place it is defined), so a batch holds a mix, the
way a scrape does. In order, as a publishing pipeline applies them:

* crop, with probability `CROP_P`: keep a side fraction uniform in `CROP_KEEP`, at a random place;
* resize, with probability `RESIZE_P`: downscale by a factor uniform in `RESIZE_SCALE` (and back up);
* always a lossy encoding: WebP with probability `WEBP_P`, otherwise JPEG, quality a whole number
  uniform in `QUALITY`.

Every step returns the input size (crop and resize are scaled back), so the detector and the models
see their own grid. The draw and the attack use the image's own generator (seed, index), so a batch
is reproducible and each image's chain independent of the others.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bitmark.attacks.base import Attack
from bitmark.attacks.classical import JPEG, RandomCrop, Resize, WebP

CROP_P, CROP_KEEP = 0.5, (0.8, 1.0)
RESIZE_P, RESIZE_SCALE = 0.5, (0.5, 1.0)
WEBP_P, QUALITY = 0.25, (60, 95)


def draw(rng: np.random.Generator) -> list[Attack]:
    """One image's chain, drawn from the documented distribution."""
    chain: list[Attack] = []
    if rng.random() < CROP_P:
        chain.append(RandomCrop(round(float(rng.uniform(*CROP_KEEP)), 3)))
    if rng.random() < RESIZE_P:
        chain.append(Resize(round(float(rng.uniform(*RESIZE_SCALE)), 3)))
    codec = WebP if rng.random() < WEBP_P else JPEG
    chain.append(codec(float(rng.integers(QUALITY[0], QUALITY[1] + 1))))
    return chain


class Web(Attack):
    name, unit, range, neutral, grid = "web", "- (one fixed mix)", (0.0, 0.0), None, (0.0,)
    description = (f"per image a random chain: random_crop {CROP_KEEP[0]:g}-{CROP_KEEP[1]:g} (p {CROP_P:g}), "
                   f"resize {RESIZE_SCALE[0]:g}-{RESIZE_SCALE[1]:g} (p {RESIZE_P:g}), then WebP (p {WEBP_P:g}) "
                   f"or JPEG at quality {QUALITY[0]}-{QUALITY[1]}")

    def __init__(self, strength: float = 0.0):
        super().__init__(strength)

    def __repr__(self) -> str:
        return "web"

    def chains(self, n: int, seed: int = 0) -> list[str]:
        """The chain each of n images of a batch attacked with `seed` receives, as specs (for reports)."""
        return ["+".join(repr(a) for a in draw(self._rng(seed, i))) for i in range(n)]

    def apply_batch(self, images: list[Image.Image], seed) -> list[Image.Image]:
        out = []
        for i, image in enumerate(images):
            rng = self._rng(seed, i)
            for attack in draw(rng):
                image = attack.apply(image, rng)
            out.append(image)
        return out

    @staticmethod
    def _rng(seed, i: int) -> np.random.Generator:
        seed = [seed] if isinstance(seed, int) else list(seed)
        return np.random.default_rng([*seed, i])
