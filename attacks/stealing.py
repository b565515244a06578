"""Adaptive rule stealing (DESIGN §7): an attacker who knows the green rule's structure -- everything but the key.

Against `keyed-content` a token's green table depends on its grid position *and* on a seed read from its
parent token's bits, which the attacker can read as well as the detector can (he has the tokenizer). So he
estimates the rule per cell (scale, position, seed, bit j, context) instead of per (scale, position, j,
context): each observed image adds one observation to the cells its own coarse content selects. Against the
fixed-table rules the seed is constant and this is the naive estimate of `bitmark.attacks.whitebox.StolenRule`.

* `adaptive_forge`  -- re-encode a clean image, flip its red bits to green where the estimate is confident;
* `adaptive_remove` -- flip the green bits of a watermarked image where the estimate is confident.

Strength = N, the number of observed watermarked images (`observed=`). The attacker sets `z_min` lower
than the naive one (1 instead of 2): with few observations per cell, calling a cell on two agreeing
observations is his best bet.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from bitmark.attacks.whitebox import _Stealing
from bitmark.core import rules
from bitmark.core.rules import contexts, seeds


class ContentStolenRule:
    """A green-rule estimate per cell (scale, position, seed, j, context) from N observed pyramids.

    seeded: read each token's seed from its parent token (the keyed-content structure); False treats every
            image alike (seed 0), which is the naive per-position estimate.
    rule:   which seeded rule's seed to read (`bitmark.core.rules.seed_indices`): the attacker knows it.
    A cell is called green-is-1 (0) when its share of ones exceeds (falls below) the reference share of its
    (scale, j, context) by z_min standard errors; the reference is `reference` pyramids' pooled share when
    given (public clean images), else the observed images' own share pooled over positions and seeds.
    """

    def __init__(self, observed: Sequence[torch.Tensor], n: int = 2, z_min: float = 1.0,
                 reference: Sequence[torch.Tensor] | None = None, seeded: bool = True, rule: str = "keyed-content"):
        self.n, self.seeded, self.rule, self.S = n, seeded, rule, 1 << (n - 1)
        self.codes: list[torch.Tensor] = []  # per scale: sorted cell codes that were observed
        self.calls: list[torch.Tensor] = []  # per scale: int8 green value (0/1) or -1 (not confident)
        for s, bits in enumerate(observed):
            code, b = self._cells(observed, s)
            unique, inverse = torch.unique(code.reshape(-1), return_inverse=True)
            total = torch.bincount(inverse, minlength=len(unique)).double()
            ones = torch.bincount(inverse, weights=b.reshape(-1).double(), minlength=len(unique))
            pooled = self._pooled(reference if reference is not None else observed, s)  # (J*S,)
            ref = pooled[unique % pooled.numel()]
            z = (ones / total - ref) / torch.sqrt(ref * (1 - ref) / total)
            self.codes.append(unique)
            self.calls.append(torch.where(z > z_min, 1, torch.where(z < -z_min, 0, -1)).to(torch.int8))

    def _cells(self, pyramid: Sequence[torch.Tensor], s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell codes (B, L, J) and scored bits (B, L, J) of scale s; code = ((pos*2^k + seed)*J + j)*S + ctx."""
        bits = pyramid[s]
        B, h, w, d = bits.shape
        flat = bits.reshape(B, h * w, d)
        J = d - self.n + 1
        if self.seeded and s > 0:
            seed = seeds(pyramid[s - 1], h, w, d, self.rule)
        else:
            seed = torch.zeros(B, h * w, dtype=torch.long)
        place = torch.arange(h * w).view(1, -1) * (1 << rules.SEED_BITS) + seed  # (B, L)
        code = ((place.unsqueeze(-1) * J + torch.arange(J)) * self.S) + contexts(flat, self.n).long()
        return code, flat[..., self.n - 1 :]

    def _pooled(self, pyramid: Sequence[torch.Tensor], s: int) -> torch.Tensor:
        """Laplace-smoothed share of ones per (j, context), pooled over images and positions: (J*S,)."""
        code, b = self._cells(pyramid, s)
        jc = (code % (code.shape[-1] * self.S)).reshape(-1)
        size = code.shape[-1] * self.S
        total = torch.bincount(jc, minlength=size).double()
        ones = torch.bincount(jc, weights=b.reshape(-1).double(), minlength=size)
        return (ones + 1) / (total + 2)

    def __call__(self, pyramid: list[torch.Tensor]) -> list[torch.Tensor]:
        """The oracle: +1 where a scored bit is (estimated) green, -1 red, 0 unknown."""
        out = []
        for s, bits in enumerate(pyramid):
            B, h, w, d = bits.shape
            code, b = self._cells(pyramid, s)
            known, calls = self.codes[s], self.calls[s]
            at = torch.searchsorted(known, code.reshape(-1)).clamp(max=max(len(known) - 1, 0))
            found = known[at] == code.reshape(-1) if len(known) else torch.zeros(code.numel(), dtype=torch.bool)
            guess = torch.where(found, calls[at] if len(known) else torch.zeros_like(at, dtype=torch.int8), -1).view(code.shape)
            status = torch.zeros(B, h * w, d, dtype=torch.int8)
            status[..., self.n - 1 :] = torch.where(guess >= 0, (guess == b.to(torch.int8)).to(torch.int8) * 2 - 1, 0)
            out.append(status.view(B, h, w, d))
        return out

    @property
    def called(self) -> float:
        """Share of observed cells the estimate is confident about."""
        return float(np.mean(np.concatenate([(c >= 0).numpy() for c in self.calls])))


class _Adaptive(_Stealing):
    """`_Stealing` with the estimate that knows keyed-content's structure (cells per position and parent seed)."""

    options = ("observed", "reference", "tokenizer", "z_min")
    estimator = ContentStolenRule


class AdaptiveRemove(_Adaptive):
    name = "adaptive_remove"
    description = "adaptive stealing: estimate green cells per (position, parent seed) from N watermarked images (observed=), flip them"


class AdaptiveForge(_Adaptive):
    name = "adaptive_forge"
    description = "adaptive stealing: estimate green cells per (position, parent seed) from N watermarked images (observed=), forge clean images"
    target = -1
