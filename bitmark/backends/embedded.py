"""The embedded backend: the shipped class-conditional generator and tokenizer (bitmark.models)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from bitmark.backends.base import Samples
from bitmark.core.pyramid import Pyramid
from bitmark.core.sampler import PlainSampler


class EmbeddedBackend:
    """Samples exactly as `bitmark.models.sampling.sample_images` does (seeded batches of 64, classes round-robin).

    data: which shipped models ("photos", "digits" or a weights path); models load on first use.
    """

    kind, conditioning, retrainable = "embedded", "class", True

    def __init__(self, data: str = "photos", cfg_scale: float = 2.0, temperature: float = 1.0):
        self.data, self.cfg_scale, self.temperature = data, cfg_scale, temperature
        self._models: tuple[Any, Any] | None = None
        self.description = f"the shipped {data} generator and tokenizer"

    @property
    def models(self) -> tuple[Any, Any]:
        """(generator, tokenizer), loaded once."""
        if self._models is None:
            from bitmark.models import load_generator

            self._models = load_generator(self.data)
        return self._models

    @property
    def gen(self) -> Any:
        return self.models[0]

    @property
    def tok(self) -> Any:
        return self.models[1]

    def class_names(self) -> list[str]:
        from bitmark.models import classes

        return classes(self.data)

    def default_conditioning(self, n: int) -> list[int]:
        return (torch.arange(n) % self.gen.cfg.num_classes).tolist()

    def sample(self, sampler: PlainSampler, n: int, conditioning: Sequence[Any] | None = None, seed: int = 0,
               progress: bool = True) -> Samples:
        from bitmark.models.sampling import sample_images

        labels = list(conditioning) if conditioning is not None else self.default_conditioning(n)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} class labels for {n} images")
        classes = torch.as_tensor(labels, dtype=torch.long)
        images, pyramid = sample_images(self.gen, self.tok, classes, seed=seed, cfg_scale=self.cfg_scale,
                                        temperature=self.temperature, progress=progress, sampler=sampler)
        return Samples(images, pyramid, labels)

    def encode(self, images: np.ndarray) -> Pyramid:
        return self.tok.encode(images)

    def real_images(self, n: int, seed: int = 0) -> np.ndarray:
        """n held-out real crops of the shipped data set, in a seeded order."""
        from bitmark.io.datasets import load_dataset
        from bitmark.models import dataset_of

        heldout = load_dataset(dataset_of(self.data), "heldout", self.tok.cfg.image_size).images
        return heldout[np.random.default_rng(seed).permutation(len(heldout))[:n]]
