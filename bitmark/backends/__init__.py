"""Generator backends: one protocol for "sample n images with a sampler and conditioning" and "encode images
to bit pyramids", so that every benchmark runs on the embedded model or on Infinity.

* `EmbeddedBackend` -- the shipped tiny class-conditional generator and its tokenizer (today's behaviour).
* `InfinityBackend` -- FoundationVision's Infinity through `bitmark.adapters.infinity`: text prompts, its
  own sampler watermarked in place, its BSQ VAE to read bits back.
* `tiny_infinity_backend` -- a tiny random configuration of an Infinity code tree (the test stand-in in
  tests/fake_infinity, or real code): for plumbing checks only; its figures say nothing about a real model.
"""

from bitmark.backends.base import GeneratorBackend, NotSupported, Samples, make_sampler, require
from bitmark.backends.embedded import EmbeddedBackend
from bitmark.backends.infinity import InfinityBackend, T5PromptEncoder
from bitmark.backends.prompts import load_prompts
from bitmark.backends.tiny import tiny_infinity_backend

__all__ = ["EmbeddedBackend", "GeneratorBackend", "InfinityBackend", "NotSupported", "Samples", "T5PromptEncoder",
           "load_prompts", "make_sampler", "require", "tiny_infinity_backend"]
