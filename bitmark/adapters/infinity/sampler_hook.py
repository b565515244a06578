"""Watermarking Infinity while it samples: swap its per-scale sampling function inside a `with` block."""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import secrets
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

from bitmark.adapters.infinity.loading import import_infinity
from bitmark.adapters.infinity.schedule import ScheduleMismatch, schedule_grids
from bitmark.core.pyramid import Pyramid
from bitmark.core.rules import contexts
from bitmark.core.sampler import PlainSampler, WatermarkSampler, log_odds

log = logging.getLogger(__name__)

SAMPLING_FUNCTION = "sample_with_top_k_top_p_also_inplace_modifying_logits_"
_EXPECTED_KEYWORDS = ("top_k", "top_p", "rng", "num_samples")
_WRAPPER_MARK = "__bitmark_watermark_wrapper__"
_ACTIVE: set[int] = set()  # id() of the modules whose function is wrapped right now


class InfinityRun:
    """One `with watermarked(...)` block: the bits it sampled and the state of the call order.

    pyramid:  the current (after generation: the last) image batch's bits, per scale (B, h, w, d) bool on CPU.
    pyramids: every finished pyramid of the block, in order.
    seed:     the seed of the watermark's own generator (None when a generator was passed in).
    """

    def __init__(self, sampler: PlainSampler, grids: list[tuple[int, int]], seed: int | None, generator):
        self.sampler, self.schedule, self.seed = sampler, grids, seed
        self.pyramid: Pyramid = []
        self.pyramids: list[Pyramid] = []
        self.calls = 0
        self.bits_per_token: int | None = None
        self._generator: torch.Generator | None = generator
        self._variants: dict[tuple[int, float], PlainSampler] = {}

    @property
    def complete(self) -> bool:
        return len(self.pyramid) == len(self.schedule)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        if self._generator.device.type != device.type:
            raise ValueError(
                f"the watermark generator is on {self._generator.device} but Infinity's logits are on {device}; "
                "pass a generator on the logits' device, or seed= to let the adapter make one"
            )
        return self._generator

    def _variant(self, top_k: int, top_p: float) -> PlainSampler:
        """The user's sampler with Infinity's truncation (shares its key and green tables; records nothing)."""
        own = (self.sampler.top_k, self.sampler.top_p)
        if own != (0, 1.0) and own != (top_k, top_p):
            raise ValueError(
                f"the sampler was built with top_k={own[0]}, top_p={own[1]} but Infinity asks for "
                f"top_k={top_k}, top_p={top_p} (after translation); build the sampler without top_k/top_p "
                "and pass them to autoregressive_infer_cfg, or make them agree"
            )
        variant = self._variants.get((top_k, top_p))
        if variant is None:
            variant = copy.copy(self.sampler)
            variant.top_k, variant.top_p, variant.record, variant.pyramid = top_k, top_p, False, []
            self._variants[(top_k, top_p)] = variant
        return variant

    def _grid_for_call(self, length: int) -> tuple[int, int, int, int]:
        """(scale, h, w, d) of this call, checked against the schedule and the logits' length."""
        if self.complete:
            self.pyramid = []
        s = len(self.pyramid)
        h, w = self.schedule[s]
        d = self.bits_per_token
        if d is None and length % (h * w) == 0:
            d = length // (h * w)
        if d is None or length != h * w * d:
            expected = f"{h * w} tokens x {d} bits = {h * w * d}" if d else f"a multiple of {h * w}"
            hint = ""
            if s > 0 and d and length == self.schedule[0][0] * self.schedule[0][1] * d:
                hint = f"; the previous generation stopped after {s} of {len(self.schedule)} scales (trunk_scale?)"
            raise ScheduleMismatch(
                f"Infinity's sampling call {self.calls} should be scale {s} ({h}x{w}: {expected} bit logits) but "
                f"has {length}; pass watermarked() the scale_schedule given to autoregressive_infer_cfg "
                f"(for Infinity-8B the patchified one){hint}"
            )
        self.bits_per_token = d
        return s, h, w, d

    def sample(self, logits: torch.Tensor, top_k: Any, top_p: Any, num_samples: int) -> torch.Tensor:
        """One of Infinity's per-scale calls: watermark, record, mask the logits in place, return indices."""
        if num_samples != 1:
            raise ValueError(f"the watermark draws one sample per bit; Infinity asked for num_samples={num_samples}")
        if logits.dim() != 3 or logits.shape[-1] != 2:
            raise ValueError(
                f"expected Infinity's bit logits (B, h*w*d, 2), got shape {tuple(logits.shape)}; "
                "only bit-label models (use_bit_label=1) can be watermarked"
            )
        B, length, _ = logits.shape
        s, h, w, d = self._grid_for_call(length)
        k = 1 if int(top_k or 0) == 1 else 0  # top-k >= 2 keeps both values of a bit
        p = float(top_p) if top_p and 0.0 < float(top_p) < 1.0 else 1.0
        variant = self._variant(k, p)
        pairs = logits.view(B, h * w, d, 2)
        bits = variant(pairs, scale=s, grid=(h, w), generator=self._generator_for(logits.device))
        _mask_like_sampled(pairs, bits, variant, s, h, w)
        self.calls += 1
        self.pyramid.append(bits.view(B, h, w, d).cpu())
        if self.complete:
            self.pyramids.append(self.pyramid)
        return bits.reshape(B, length, 1).to(torch.long)


def _mask_like_sampled(pairs: torch.Tensor, bits: torch.Tensor, sampler: PlainSampler, s: int, h: int, w: int) -> None:
    """Rewrite logit pairs (B, L, d, 2) in place into the distribution each bit was drawn from."""
    lo = log_odds(pairs)
    if isinstance(sampler, WatermarkSampler) and sampler.key.config.watermarks(s):  # keys refuse delta = 0
        n = sampler.rule.n
        green = sampler.rule.green_values(sampler.last_table, contexts(bits, n)).to(lo.device)
        start = sampler.bias_from
        bias = torch.zeros_like(lo)
        bias[..., start:] = sampler.key.config.delta * (2.0 * green[..., start - (n - 1) :].to(lo.dtype) - 1.0)
        if sampler.min_entropy > 0:  # the entropy gate left the model's sure bits unbiased
            bias = bias * sampler.last_gate.to(bias.device, bias.dtype)
        lo = lo + bias
        half = (bias / 2).to(pairs.dtype)
        pairs[..., 1] += half
        pairs[..., 0] -= half
    if sampler.top_k == 1:
        weak = torch.ones_like(lo, dtype=torch.bool)
    elif sampler.top_p < 1.0:
        weak = torch.sigmoid(-lo.abs()) <= 1.0 - sampler.top_p  # the same cut as bitmark.core.sampler.bit_probability
    else:
        return
    pairs[..., 1].masked_fill_(weak & (lo < 0), float("-inf"))  # ties keep 1, as the sampler does
    pairs[..., 0].masked_fill_(weak & (lo >= 0), float("-inf"))


def _check_signature(fn: Any) -> None:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot read the signature of Infinity's {SAMPLING_FUNCTION}: {e}") from e
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = tuple(p.name for p in params[1:])
    if not params or params[0].kind not in positional or names != _EXPECTED_KEYWORDS:
        raise TypeError(
            f"Infinity's {SAMPLING_FUNCTION} has the signature {inspect.signature(fn)}, not the expected "
            f"(logits, {', '.join(_EXPECTED_KEYWORDS)}); this Infinity version is not supported, refusing to wrap it"
        )


@contextmanager


def watermarked(
    sampler: PlainSampler,
    schedule: int | str | Sequence = 1024,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    module: Any = None,
) -> Iterator[InfinityRun]:
    """Route Infinity's per-scale sampling through `sampler` inside the block; yields the `InfinityRun`.

    sampler:   a WatermarkSampler (or a PlainSampler, for a same-rng unwatermarked baseline).
    schedule:  the scale_schedule passed to autoregressive_infer_cfg, or a resolution (1024, "1M", ...).
    seed / generator: the watermark's own randomness; with neither, a fresh random seed (kept in run.seed).
    module:    the module holding the function (default: import infinity.models.infinity).
    The original function is restored on exit, also after an exception. Nesting is refused.
    """
    if not isinstance(sampler, PlainSampler):
        raise TypeError(f"expected a WatermarkSampler or PlainSampler, got {type(sampler).__name__}")
    if seed is not None and generator is not None:
        raise ValueError("pass seed= or generator=, not both")
    grids = schedule_grids(schedule)
    mod = import_infinity() if module is None else module
    original = getattr(mod, SAMPLING_FUNCTION, None)
    if original is None:
        raise TypeError(f"{getattr(mod, '__name__', mod)!r} has no function {SAMPLING_FUNCTION}; is it Infinity's?")
    if id(mod) in _ACTIVE or getattr(original, _WRAPPER_MARK, False):
        raise RuntimeError("Infinity's sampler is already watermarked by an enclosing block; nesting is refused")
    _check_signature(original)
    if generator is None and seed is None:
        seed = secrets.randbits(63)
    run = InfinityRun(sampler, grids, seed, generator)

    @functools.wraps(original)
    def wrapper(logits_BlV, top_k=0, top_p=0.0, rng=None, num_samples=1):
        return run.sample(logits_BlV, top_k, top_p, num_samples)

    setattr(wrapper, _WRAPPER_MARK, True)
    _ACTIVE.add(id(mod))
    setattr(mod, SAMPLING_FUNCTION, wrapper)
    log.debug("watermarking Infinity's sampler (%d scales, seed %s)", len(grids), seed)
    try:
        yield run
    finally:
        if getattr(mod, SAMPLING_FUNCTION, None) is not wrapper:
            log.warning("Infinity's %s was replaced inside the block; restoring the original", SAMPLING_FUNCTION)
        setattr(mod, SAMPLING_FUNCTION, original)
        _ACTIVE.discard(id(mod))
        if run.pyramid and not run.complete:
            log.warning("the block ended after %d of %d scales of a generation", len(run.pyramid), len(grids))
