"""White-box attacks on the bit pyramid (DESIGN §7): the attacker knows the tokenizer and a green oracle.

An *oracle* is a function pyramid -> per scale an int8 tensor (B, h, w, d) of +1 (green), -1 (red) or 0
(unknown / not scored). Who holds the key gets the exact one, `bitmark.detectors.BitDetector(key).green_status`;
an attacker without it estimates one from watermarked images (`StolenRule`). Attacks never import keys.

* `bitflip`      -- Bit-Flipper removal: re-encode, flip each green bit with probability `strength`, decode;
* `forge`        -- its mirror: push a clean image's red bits to green;
* `steal_remove` / `steal_forge` -- the same with a rule estimated from `strength` = N observed
                    watermarked images (`observed=`), flipping every bit the estimate is confident about.

Bits are visited in token order j = 0..d-1 and the oracle is asked again before each j, because flipping
bit j changes the context (and so the green value) of the bits after it.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from bitmark.attacks.base import Attack, AttackError
from bitmark.attacks.regeneration import (
    _shipped,
    back_to_sizes,
    to_array,
    torch_generator,
)

Oracle = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def push_bits(bits: list[torch.Tensor], oracle: Oracle, target: int, p: float, rng: torch.Generator) -> list[torch.Tensor]:
    """Flip, with probability p, every bit whose oracle status is `target` (+1: green -> removal;
    -1: red -> forgery), one bit index at a time so that each decision sees the current contexts."""
    bits = [b.clone().bool() for b in bits]
    d = bits[0].shape[-1]
    for j in range(d):
        status = oracle(bits)
        for b, st in zip(bits, status):
            hit = (st[..., j] == target) & (torch.rand(st[..., j].shape, generator=rng) < p)
            b[..., j] ^= hit
    return bits


class StolenRule:
    """A green-rule estimate from bit statistics of watermarked images, keyed-spatial or not.

    Per cell (scale, token position, j, context) the share of ones among the N observed pyramids is
    compared with a reference share: that of `reference` pyramids (clean images, e.g. public real ones)
    when given, else the same images pooled over all positions of the scale -- for a spatial rule the
    green values of a (j, context) are half 0 and half 1 across positions, so the pooled share is the
    images' natural rate. A cell is called where the two-proportion z exceeds `z_min`; others stay 0.
    """

    def __init__(self, observed: Sequence[torch.Tensor], n: int = 2, z_min: float = 2.0, reference: Sequence[torch.Tensor] | None = None):
        from bitmark.core.rules import contexts

        self.n, self._contexts, self.tables = n, contexts, []
        S = 1 << (n - 1)
        for s, bits in enumerate(observed):
            ones, total = self._counts(bits, S)  # (L, J, S)
            if reference is not None:
                r_ones, r_total = self._counts(reference[s], S)
                ref = (r_ones.sum(0) + 1) / (r_total.sum(0) + 2)
            else:
                ref = (ones.sum(0) + 1) / (total.sum(0) + 2)
            share = ones / total.clamp(min=1)
            z = (share - ref) / torch.sqrt(ref * (1 - ref) / total.clamp(min=1))
            call = torch.where(z > z_min, 1, torch.where(z < -z_min, 0, -1)).to(torch.int8)
            self.tables.append(torch.where(total > 0, call, torch.full_like(call, -1)))  # green value or -1

    def _counts(self, bits: torch.Tensor, S: int) -> tuple[torch.Tensor, torch.Tensor]:
        B, h, w, d = bits.shape
        flat = bits.reshape(B, h * w, d)
        ctx = self._contexts(flat, self.n).long()  # (B, L, J)
        onehot = torch.nn.functional.one_hot(ctx, S).double()  # (B, L, J, S)
        b = flat[..., self.n - 1 :].double().unsqueeze(-1)
        return (onehot * b).sum(0), onehot.sum(0)

    def __call__(self, pyramid: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for bits, table in zip(pyramid, self.tables):
            B, h, w, d = bits.shape
            flat = bits.reshape(B, h * w, d)
            ctx = self._contexts(flat, self.n).long()
            guess = torch.gather(table.unsqueeze(0).expand(B, -1, -1, -1), -1, ctx.unsqueeze(-1)).squeeze(-1)
            status = torch.zeros(B, h * w, d, dtype=torch.int8)
            known = guess >= 0
            status[..., self.n - 1 :] = torch.where(known, (guess == flat[..., self.n - 1 :]).to(torch.int8) * 2 - 1, 0)
            out.append(status.view(B, h, w, d))
        return out

    @property
    def called(self) -> float:
        """Share of cells the estimate is confident about."""
        return float(np.mean(np.concatenate([(t >= 0).flatten().numpy() for t in self.tables])))


class _PyramidAttack(Attack):
    target = +1  # which oracle status to flip: +1 green (removal), -1 red (forgery)
    options = ("oracle", "tokenizer")

    def __init__(self, strength: float, oracle: Oracle | None = None, tokenizer=None):
        super().__init__(strength)
        if oracle is None:
            raise AttackError(
                f"{self.name} is a white-box attack: give oracle=, a function pyramid -> per-scale +1 green / "
                "-1 red / 0 unscored, e.g. bitmark.detectors.BitDetector(key).green_status (CLI: --key KEY.json)"
            )
        self.oracle, self.tokenizer = oracle, tokenizer

    @property
    def flip_probability(self) -> float:
        return self.strength

    def apply_batch(self, images, seed):
        tok = self.tokenizer or _shipped("tokenizer")
        bits = push_bits(tok.encode(to_array(images)), self.oracle, self.target, self.flip_probability, torch_generator(seed))
        return back_to_sizes(tok.decode(bits), images)


class BitFlipper(_PyramidAttack):
    name, unit, range, neutral, grid = "bitflip", "probability of flipping a green bit", (0.0, 1.0), 0.0, (0.25, 0.5, 0.75, 1.0)
    description = "white-box removal: re-encode, flip green scored bits (needs the key's oracle), decode"


class Forgery(_PyramidAttack):
    name, unit, range, neutral, grid = "forge", "probability of flipping a red bit", (0.0, 1.0), 0.0, (0.25, 0.5, 0.75, 1.0)
    description = "white-box forgery: re-encode a clean image, flip red scored bits to green, decode"
    target = -1


class _Stealing(_PyramidAttack):
    """Flip bits where a rule estimated from N observed watermarked images says green (or red). `estimator`
    is the estimate's class; options beyond observed/reference/tokenizer go to it."""

    unit, range, neutral, grid = "watermarked images observed", (1.0, 1e6), None, (10.0, 100.0, 1000.0)
    options = ("observed", "reference", "tokenizer")
    estimator = StolenRule

    def __init__(self, strength: float, observed=None, reference=None, tokenizer=None, **estimator_options):
        if observed is None or len(observed) < strength:
            have = 0 if observed is None else len(observed)
            raise AttackError(f"{self.name}:{strength:g} needs observed= at least {math.ceil(strength)} watermarked images (got {have})")
        tok = tokenizer or _shipped("tokenizer")
        rule = type(self).estimator(tok.encode(to_array(observed[: int(strength)])), **estimator_options,
                                    reference=None if reference is None else tok.encode(to_array(reference)))
        super().__init__(strength, oracle=rule, tokenizer=tokenizer)
        self.rule = rule

    @property
    def flip_probability(self) -> float:
        return 1.0


class StealRemove(_Stealing):
    name = "steal_remove"
    description = "rule stealing: estimate green cells from N watermarked images (observed=), flip those bits"


class StealForge(_Stealing):
    name = "steal_forge"
    description = "rule stealing: estimate green cells from N watermarked images (observed=), forge clean images"
    target = -1

