"""Regeneration attacks on the shipped models (DESIGN §7): the image is redrawn by a model the mark never saw.

* `regen_tokenizer`   -- round trips through the shipped tokenizer's continuous path (encode, decode, no
                         quantisation): the attacker's own copy of the tokenizer as an autoencoder;
* `regen_autoencoder` -- round trips through the independently trained autoencoder (`bitmark train
                         autoencoder`), the stand-in for the SD-VAE regeneration of the literature;
* `regen_scales`      -- re-generation: re-encode, keep the coarse scales and let the *unwatermarked*
                         generator (unconditional) draw the `strength` finest scales -- the next-scale
                         analogue of diffusion regeneration.

Models are the shipped ones unless passed as `tokenizer=` / `autoencoder=` / `generator=`; they run at
their 32×32 size, and outputs are resized back (Lanczos) to each input's size.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from bitmark.attacks.base import Attack, AttackError


@functools.cache
def _shipped(kind: str):
    from bitmark import models

    if kind == "generator":
        return models.load_generator("photos")[0]
    return {"tokenizer": models.load_tokenizer, "autoencoder": models.load_autoencoder}[kind]("photos")


def torch_generator(seed: int | Sequence[int]) -> torch.Generator:
    """A torch generator seeded from an int or a sequence of ints (via numpy's SeedSequence)."""
    entropy = [seed] if isinstance(seed, int) else list(seed)
    return torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1))


def to_array(images) -> list[np.ndarray]:
    """PIL images or uint8 arrays -> a list of uint8 RGB arrays."""
    return [np.asarray(im.convert("RGB")) if isinstance(im, Image.Image) else np.asarray(im) for im in images]


def back_to_sizes(out: np.ndarray, like: list[Image.Image]) -> list[Image.Image]:
    """uint8 model outputs -> PIL images of the inputs' sizes."""
    result = []
    for x, ref in zip(out, like):
        im = Image.fromarray(x)
        result.append(im if im.size == ref.size else im.resize(ref.size, Image.Resampling.LANCZOS))
    return result


class _ModelAttack(Attack):
    """An attack whose strength is a whole number (round trips, scales) and that runs a model on a batch."""

    def __init__(self, strength: float, **models):
        super().__init__(strength)
        self.models = models

    @classmethod
    def check_strength(cls, strength: float) -> None:
        super().check_strength(strength)
        if strength != int(strength):
            raise AttackError(f"{cls.name}: strength must be a whole number ({cls.unit}), got {strength}")

    def model(self, kind: str):
        return self.models.get(kind) or _shipped(kind)


class _RoundTrip(_ModelAttack):
    """`strength` round trips through the `model("...")` named by `kind`, which has a `roundtrip` method."""

    unit, range, neutral, grid = "round trips", (0.0, 8.0), 0.0, (1.0, 2.0, 4.0)
    kind = "tokenizer"

    def apply_batch(self, images, seed):
        x = to_array(images)
        for _ in range(int(self.strength)):
            x = self.model(self.kind).roundtrip(x)
        return back_to_sizes(np.asarray(x), images)


class TokenizerRoundTrip(_RoundTrip):
    name, unit, kind, options = "regen_tokenizer", "round trips (continuous path)", "tokenizer", ("tokenizer",)
    description = "encode and decode with the shipped tokenizer without quantisation, this many times"


class AutoencoderRoundTrip(_RoundTrip):
    name, kind, options = "regen_autoencoder", "autoencoder", ("autoencoder",)
    description = "round trips through the independently trained autoencoder (bitmark train autoencoder)"


class Regenerate(_ModelAttack):
    name, unit, range, neutral, grid = "regen_scales", "finest scales re-drawn", (0.0, 3.0), 0.0, (1.0, 2.0, 3.0)
    description = "re-encode, keep the coarse scales, the unwatermarked generator draws this many finest ones"
    options = ("tokenizer", "generator")

    def apply_batch(self, images, seed):
        tok, gen = self.model("tokenizer"), self.model("generator")
        bits = tok.encode(to_array(images))
        keep = len(bits) - int(self.strength)
        no_class = torch.full((len(images),), gen.cfg.num_classes)
        drawn = gen.sample(no_class, cfg_scale=1.0, generator=torch_generator(seed), prefix=bits[:keep])
        return back_to_sizes(tok.decode(drawn), images)
