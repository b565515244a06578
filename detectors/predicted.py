"""The generator's own prediction of every bit of a pyramid: the q of the detector's `model` null.

The embedded generator predicts all d bits of a token at once from the coarser scales (teacher forcing),
so one forward pass over a pyramid gives P(bit = 1) for every bit. The class of a suspect image is not
known, so the prediction is unconditional (the "no class" index the generator was trained with for
guidance). Nothing here sees a key: the probabilities are a function of the bits alone, which is what keeps
the model null exact for a random key (`bitmark.detectors.bit_detector`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from bitmark.models.generator import Generator


class GeneratorPredictor:
    """P(bit = 1) of every bit of a pyramid under `generator`, teacher-forced, unconditional.

    batch: images per forward pass (the attention over all 85 tokens of the shipped schedule is small; the
    batch only bounds memory). Returns float64 (B, h, w, d) per scale."""

    def __init__(self, generator: Generator, batch: int = 256):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.generator, self.batch = generator, batch

    @property
    def grids(self) -> list[tuple[int, int]]:
        """The token grids of the pyramids it predicts: the generator's schedule."""
        return [(s, s) for s in self.generator.cfg.tokenizer.schedule]

    @torch.no_grad()
    def __call__(self, pyramid: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        gen = self.generator
        grids = [tuple(t.shape[1:3]) for t in pyramid]
        if grids != self.grids:
            raise ValueError(f"the generator predicts pyramids of grids {self.grids}, got {grids}")
        B = pyramid[0].shape[0]
        device = next(gen.parameters()).device
        chunks = []
        for i in range(0, B, self.batch):
            coarser = [t[i : i + self.batch].to(device).bool() for t in pyramid[:-1]]
            none = torch.full((len(coarser[0]) if coarser else min(self.batch, B - i),), gen.cfg.num_classes, device=device)
            chunks.append(torch.sigmoid(gen.forward(coarser, none).double()).cpu())
        probs = torch.cat(chunks)  # (B, total tokens, d)
        out, start = [], 0
        for (h, w), t in zip(grids, pyramid):
            out.append(probs[:, start : start + h * w].reshape(B, h, w, t.shape[-1]))
            start += h * w
        return out
