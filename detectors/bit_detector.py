"""Test a bit pyramid for a key's watermark: count green bits on the scored positions, then a p-value.

Two nulls:

* ``binomial`` -- each scored bit is green with probability 1/2, independently: the exact one-sided
  binomial test. Right on average over keys, but for one fixed key the bits of real images are
  correlated, and a context-only rule's few green choices line up with that structure by chance.
* ``self-normalised`` (default for ``keyed-spatial`` and the keyed-content rules) -- the null is estimated from
  the image's own bits. For every cell (scale, bit index j, context) take q, the share of ones among the cell's positions, and
  score each position as green with probability q or 1-q by its green value. The statistic
  z = (G - E) / sqrt(V) then has, for *any* fixed bits and a random key, mean 0 and variance 1 exactly;
  and since it subtracts the image's own per-cell statistics, a fixed key does not drift on correlated
  sources. The mark barely moves q because the spatial rule scatters the key's green choices over the
  positions of a cell, half up and half down. It needs a spatial rule: with a context-only rule every
  position of a cell shares one green value, E equals G, and the mark would be absorbed.
* ``model`` -- like self-normalised, but each position's q is the generator's own P(bit = 1), teacher-forced
  on the pyramid's coarser scales (`bitmark.detectors.predicted`; the owner of a key has the model). q is a
  function of the bits only, never of the key, so the same identity holds: for a random key z has mean 0
  and variance 1 exactly. It is the entropy-aware null: a bit the model is sure of adds almost nothing to
  the variance, sum (b - q)^2, while the cell share q of the self-normalised null charges it the spread of
  its whole cell; and nothing is absorbed at coarse scales, whose cells hold one or four positions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from bitmark.core.keys import WatermarkKey
from bitmark.core.pyramid import as_pyramid
from bitmark.core.rules import GreenRule, contexts
from bitmark.detectors import stats
from bitmark.detectors.counting import CellCounter
from bitmark.detectors.inputs import check_mask, check_pyramid, check_weights

NULLS = ("self-normalised", "binomial", "model")
Predictor = Callable[[Sequence[torch.Tensor]], Sequence[torch.Tensor]]  # pyramid -> per scale P(bit = 1), (B, h, w, d)
COUNTINGS = ("token", "stream")


# rules whose green values vary over a cell's positions
PER_POSITION_RULES = ("keyed-spatial", "keyed-content", "keyed-content-robust")


def default_null(rule: str) -> str:
    return "self-normalised" if rule in PER_POSITION_RULES else "binomial"


@dataclass(frozen=True)
class Detection:
    """Batched verdicts, one entry per image. Arrays of shape (B,), per-scale ones (B, S).

    neg_log10_p holds -log10 of the p-value: like z, higher means more watermarked.
    """

    is_watermarked: np.ndarray
    z_score: np.ndarray
    p_value: np.ndarray
    neg_log10_p: np.ndarray
    num_scored: np.ndarray
    num_green: np.ndarray
    green_fraction: np.ndarray
    expected_green: np.ndarray
    scale_scored: np.ndarray
    scale_green: np.ndarray
    key_id: str
    null: str
    fpr: float

    def __len__(self) -> int:
        return len(self.z_score)

    def row(self, i: int) -> dict[str, Any]:
        """One image's result as plain Python values (JSON-ready)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v[i].tolist() if isinstance(v, np.ndarray) else v
        return out

    def rows(self) -> Iterator[dict[str, Any]]:
        return (self.row(i) for i in range(len(self)))


class BitDetector:
    """Detects one key's watermark in bit pyramids.

    fpr:     target false-positive rate; an image is flagged when its p-value is at most `fpr`.
    null:    "self-normalised" or "binomial" (default: self-normalised for keyed-spatial, else binomial).
    unique:  binomial null only: count each (scale, j, context, bit) occurrence once, so that a smooth
             region repeating one cell cannot pile up evidence (a no-op for spatial rules, whose
             positions are all distinct cells).
    scales:  score only these scales (each must be watermarked by the key); default all watermarked.
    weights: per-scale weights of a weighted z = sum w_s (G_s - E_s) / sqrt(sum w_s^2 V_s), e.g. to favour
             scales whose bits survive re-encoding; p then comes from the normal tail (the binomial p
             is exact only with equal weights).
    prior, prior_strength: self-normalised null only. `prior[s]` is (d - n + 1, 2^(n-1)) P(bit = 1 | j,
             context) of clean images (`fit_prior`); each cell's q is shrunk toward it with this many
             pseudo-positions, so that cells with few positions (coarse scales) keep their signal
             instead of having it absorbed by their own estimate. Any key-independent q keeps the
             statistic exact: for a random key, sum (2g - 1)(b - q) has mean 0 and variance sum (b - q)^2.
    predictor: the `model` null only: a function from a pyramid to, per scale, P(bit = 1) of every bit (B, h, w, d),
             computed without the key (e.g. `bitmark.detectors.predicted.GeneratorPredictor`).
    counting: "token" (default: the pairs of a context inside each token) or "stream" (the published BitMark
             detector's count for the `bitmark-2025` rule: the watermarked scales as one bit stream, every
             overlapping pair, token and scale joins included; `bitmark.detectors.stream`). Binomial null.
    rule, context, delta: optional assertions; a value that differs from the key file's is refused.
    """

    def __init__(
        self,
        key: WatermarkKey,
        fpr: float = 0.01,
        null: str | None = None,
        unique: bool = False,
        scales: Sequence[int] | None = None,
        weights: Sequence[float] | None = None,
        prior: Sequence | None = None,
        prior_strength: float = 0.0,
        rule: str | None = None,
        context: int | None = None,
        delta: float | None = None,
        counting: str = "token",
        predictor: Predictor | None = None,
    ):
        cfg = key.config
        cfg.check_matches(rule=rule, context=context, delta=delta)
        stats.check_fpr(fpr)
        null = null or default_null(cfg.rule)
        if null not in NULLS:
            raise ValueError(f"unknown null {null!r}; choose one of {', '.join(NULLS)}")
        if null == "model" and (cfg.rule not in PER_POSITION_RULES or predictor is None or unique or prior is not None):
            raise ValueError(
                "the model null needs a per-position rule (keyed-spatial or a keyed-content rule: with a shared green "
                "value per cell the signs of a cell are not independent), predictor= and neither unique counting nor a prior"
            )
        if predictor is not None and null != "model":
            raise ValueError("predictor= is the model null's; pass null='model' with it")
        if null == "self-normalised" and cfg.rule not in PER_POSITION_RULES:
            raise ValueError(
                f"the self-normalised null needs the keyed-spatial or a keyed-content rule; with {cfg.rule!r} all positions "
                "of a cell share one green value, so a null fitted per cell absorbs the mark. Use null='binomial'."
            )
        if counting not in COUNTINGS:
            raise ValueError(f"unknown counting {counting!r}; choose one of {', '.join(COUNTINGS)}")
        if counting == "stream" and (cfg.rule != "bitmark-2025" or cfg.context != 2 or null != "binomial"
                                     or unique or weights is not None):
            raise ValueError(
                "stream counting is the published detector's count for the bitmark-2025 rule with n = 2: it needs "
                f"that rule (the key has {cfg.rule!r}, n = {cfg.context}), the binomial null, no unique counting and no weights"
            )
        if unique and null != "binomial":
            raise ValueError("unique counting applies to the binomial null only")
        if scales is not None:
            unmarked = [s for s in scales if not cfg.watermarks(s)]
            if unmarked:
                raise ValueError(f"scales {unmarked} are not watermarked by key {key.key_id} (its scales: {cfg.scales})")
            scales = tuple(sorted(set(scales)))
        if (prior is not None or prior_strength) and (null != "self-normalised" or prior is None or prior_strength < 0):
            raise ValueError("a prior needs the self-normalised null, prior= and prior_strength >= 0")
        self.key, self.rule, self.fpr, self.null, self.unique, self.scales = key, GreenRule(key), fpr, null, unique, scales
        self.weights = check_weights(weights)
        self.prior = None if prior is None else [torch.as_tensor(np.asarray(p), dtype=torch.float64) for p in prior]
        self.prior_strength = float(prior_strength)
        self.counting = counting
        self.predictor = predictor
        self._counters: dict[tuple, CellCounter] = {}
        self._key_id = key.key_id  # a hash: computed once, not per call

    def _scored(self, s: int) -> bool:
        return self.key.config.watermarks(s) and (self.scales is None or s in self.scales)

    def cell_counts(self, pyramid: Sequence[torch.Tensor], mask: Sequence[torch.Tensor] | None = None
                    ) -> tuple[list[int], torch.Tensor]:
        """The scored scales of a (validated) pyramid and their counts (B, scales, J, S, 2, 2) by (bit index
        j >= n-1, context, bit, green value). Every statistic of every null is a sum over this table.
        mask: per scale, bool (B, h*w) of the positions to count (`check_mask`); None counts all.

        The tables that depend only on the key and the shapes are cached (`counting.CellCounter`)."""
        B, d = pyramid[0].shape[0], pyramid[0].shape[-1]
        scored = [s for s in range(len(pyramid)) if self._scored(s)]
        shapes = tuple(tuple(pyramid[s].shape[1:]) for s in scored)
        if self.rule.seeded:  # keyed-content: every image has its own tables (seeded by its coarser bits)
            return scored, torch.stack([self._seeded_counts(pyramid[s], s, pyramid[:s], None if mask is None else mask[s])
                                        for s in scored], 1)
        counter = self._counters.get((tuple(scored), shapes))
        if counter is None:
            if len(self._counters) >= 8:  # a few shapes per detector in practice; don't grow without bound
                self._counters.pop(next(iter(self._counters)))
            counter = self._counters[(tuple(scored), shapes)] = CellCounter(self.rule, scored, shapes)
        return scored, counter.counts([pyramid[s].reshape(B, -1, d) for s in scored],
                                      None if mask is None else [mask[s] for s in scored])

    def _seeded_counts(self, bits: torch.Tensor, s: int, coarser: Sequence[torch.Tensor],
                       mask: torch.Tensor | None = None) -> torch.Tensor:
        """`cell_counts` of one scale (B, J, S, 2, 2) for a rule whose tables depend on the coarser scales."""
        B, h, w, d = bits.shape
        n, S = self.rule.n, self.rule.num_contexts
        J = d - n + 1
        flat = bits.reshape(B, h * w, d)
        ctx = contexts(flat, n)
        green_value = self.rule.green_values(self.rule.token_tables(s, h, w, d, coarser), ctx)
        low = (ctx.to(torch.int16) << 2) | (flat[..., n - 1 :].to(torch.int16) << 1) | green_value.to(torch.int16)
        size = B * J * S * 4
        dtype = torch.int32 if size < 2**31 else torch.int64
        base = (torch.arange(B, dtype=dtype).view(B, 1, 1) * J + torch.arange(J, dtype=dtype)) * (S * 4)
        code = low.to(dtype) + base
        code = code[mask.unsqueeze(-1).expand_as(code)] if mask is not None else code.reshape(-1)
        return torch.bincount(code, minlength=size).view(B, J, S, 2, 2)

    def scale_stats(self, counts: torch.Tensor, scales: Sequence[int]) -> torch.Tensor:
        """(scored, green, expected green, variance) per image and scale from `cell_counts`, shape (4, B, scales)."""
        c = counts.double()
        if self.unique:  # each (j, context, bit) once; the green value is constant within a cell here
            present = c.sum(-1) > 0  # (B, scales, J, S, bit)
            green_is_1 = c[..., 1].sum(-1) > 0  # (B, scales, J, S)
            scored = present.sum((2, 3, 4)).double()
            green = (present[..., 1] & green_is_1).sum((2, 3)) + (present[..., 0] & ~green_is_1).sum((2, 3))
            return torch.stack([scored, green.double(), scored / 2, scored / 4])
        scored = c.sum((2, 3, 4, 5))
        green = (c[..., 0, 0] + c[..., 1, 1]).sum((2, 3))
        if self.null == "binomial":
            return torch.stack([scored, green, scored / 2, scored / 4])
        N = c.sum((-1, -2))  # positions per cell
        K = c[..., 1, :].sum(-1)  # ones per cell
        if self.prior is None or self.prior_strength == 0:
            q = K / N.clamp(min=1)  # the cell's own share of ones
        else:
            for s in scales:
                if s >= len(self.prior) or self.prior[s].shape != N.shape[2:]:
                    raise ValueError(f"scale {s}: the prior has no (j, context) table of shape {tuple(N.shape[2:])}")
            prior = torch.stack([self.prior[s] for s in scales])
            q = (K + self.prior_strength * prior) / (N + self.prior_strength)
        M = c[..., 1].sum(-1)  # positions whose green value is 1
        expected = (M * q + (N - M) * (1 - q)).sum((2, 3))
        variance = (K * (1 - q) ** 2 + (N - K) * q**2).sum((2, 3))  # = sum over positions of (b - q)^2
        return torch.stack([scored, green, expected, variance])

    def model_stats(self, pyramid: Sequence[torch.Tensor], scales: Sequence[int],
                    mask: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """`scale_stats` of the model null, position by position: q is the predictor's P(bit = 1), (4, B, scales)."""
        probs = self.predictor(pyramid)
        n, out = self.rule.n, []
        for s in scales:
            bits = pyramid[s]
            B, h, w, d = bits.shape
            q = torch.as_tensor(probs[s], dtype=torch.float64)
            if tuple(q.shape) != (B, h, w, d) or not bool(torch.isfinite(q).all()):
                raise ValueError(f"scale {s}: the predictor gave {tuple(q.shape)} probabilities; need finite (B, h, w, d) = {(B, h, w, d)}")
            flat = bits.reshape(B, h * w, d)
            green_value = self.rule.green_values(self.rule.token_tables(s, h, w, d, pyramid[:s]), contexts(flat, n))
            b, q = flat[..., n - 1 :].double(), q.reshape(B, h * w, d)[..., n - 1 :].clamp(0.0, 1.0)
            keep = torch.ones_like(b) if mask is None else mask[s].double().unsqueeze(-1).expand_as(b)
            green = ((flat[..., n - 1 :] == green_value).double() * keep).sum((1, 2))
            expected = (torch.where(green_value, q, 1 - q) * keep).sum((1, 2))
            variance = ((b - q) ** 2 * keep).sum((1, 2))
            out.append(torch.stack([keep.sum((1, 2)), green, expected, variance]))
        return torch.stack(out, -1)

    def scale_terms(self, pyramid: Sequence, mask: Sequence | None = None) -> torch.Tensor:
        """(scored, green, expected green, variance) per image and scale, (4, B, scales), zero on unscored scales:
        what `detect` combines, and what `bitmark.detectors.stats.scale_weights` learns weights from."""
        pyramid = check_pyramid(pyramid, self.key.config, self.rule.n, self.scales, self.weights)
        return self._scale_terms(pyramid, check_mask(mask, pyramid))

    def _scale_terms(self, pyramid: Sequence[torch.Tensor], mask: list[torch.Tensor] | None = None) -> torch.Tensor:
        B, num_scales = pyramid[0].shape[0], len(pyramid)
        d = pyramid[0].shape[-1]
        if d < self.rule.n:
            raise ValueError(f"tokens of {d} bits have no position with a full context of width n={self.rule.n}")
        per_scale = torch.zeros(4, B, num_scales, dtype=torch.float64)
        if self.null == "model":
            scored = [s for s in range(num_scales) if self._scored(s)]
            per_scale[:, :, scored] = self.model_stats(pyramid, scored, mask)
        elif self.counting == "stream":
            if mask is not None:
                raise ValueError("stream counting reads every bit of the stream; it takes no mask")
            from bitmark.detectors.stream import stream_counts

            scored, green = stream_counts(pyramid, [s for s in range(num_scales) if self._scored(s)])
            per_scale[0], per_scale[1], per_scale[2], per_scale[3] = scored, green, scored / 2, scored / 4
        else:
            scored_scales, counts = self.cell_counts(pyramid, mask)
            if scored_scales:
                s0, s1 = scored_scales[0], scored_scales[-1] + 1
                where = slice(s0, s1) if s1 - s0 == len(scored_scales) else scored_scales  # a slice when contiguous
                per_scale[:, :, where] = self.scale_stats(counts, scored_scales)
        return per_scale

    def detect(self, pyramid: Sequence, mask: Sequence | None = None) -> Detection:
        """Score a pyramid: a list, per scale, of (B, h, w, d) bits (bool/0-1, torch or numpy).

        mask: optionally, per scale, a bool (B, h, w) of the positions to score (e.g. the tokens inside the part
        of the frame an undone crop filled). Chosen without the key, any mask keeps the null exact: the statistic
        is then the same one on a smaller image."""
        pyramid = check_pyramid(pyramid, self.key.config, self.rule.n, self.scales, self.weights)
        num_scales = len(pyramid)
        per_scale = self._scale_terms(pyramid, check_mask(mask, pyramid))
        scored, green, expected, _ = per_scale.sum(-1).numpy()
        if self.null == "binomial" and self.weights is None:
            z = stats.binomial_z(green, scored)
            log_p = stats.binomial_log_sf(green, scored)
        else:  # normal tail of the (weighted) excess of green bits over the null's expectation
            w = torch.ones(num_scales, dtype=torch.float64) if self.weights is None else self.weights[:num_scales]
            if len(w) < num_scales:
                raise ValueError(f"{len(w)} scale weights for a pyramid of {num_scales} scales")
            z, log_p = stats.weighted_z((per_scale[1] - per_scale[2]).numpy(), per_scale[3].numpy(), w.numpy())
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.where(scored > 0, green / np.maximum(scored, 1), 0.0)
        return Detection(
            is_watermarked=log_p <= np.log(self.fpr),
            z_score=z,
            p_value=np.exp(log_p),
            neg_log10_p=stats.neg_log10(log_p),
            num_scored=scored.astype(np.int64),
            num_green=green.astype(np.int64),
            green_fraction=fraction,
            expected_green=expected,
            scale_scored=per_scale[0].numpy().astype(np.int64),
            scale_green=per_scale[1].numpy().astype(np.int64),
            key_id=self._key_id,
            null=self.null,
            fpr=self.fpr,
        )

    __call__ = detect

    def green_status(self, pyramid: Sequence) -> list[torch.Tensor]:
        """Per scale, int8 (B, h, w, d): +1 where a scored bit is green, -1 where it is red, 0 where it is
        not scored. What a white-box attacker who holds the key sees (the oracle of `bitmark.attacks.whitebox`)."""
        out = []
        pyramid = check_pyramid(pyramid, self.key.config, self.rule.n, self.scales, self.weights)
        for s, bits in enumerate(pyramid):
            B, h, w, d = bits.shape
            status = torch.zeros(B, h * w, d, dtype=torch.int8)
            if self._scored(s):
                flat = bits.reshape(B, h * w, d)
                n = self.rule.n
                table = self.rule.token_tables(s, h, w, d, pyramid[:s])
                green = self.rule.green_values(table, contexts(flat, n)) == flat[..., n - 1 :]
                status[..., n - 1 :] = green.to(torch.int8) * 2 - 1
            out.append(status.view(B, h, w, d))
        return out


def fit_prior(pyramids: Sequence[Sequence], n: int, smoothing: float = 1.0) -> list[np.ndarray]:
    """P(bit = 1 | scale, j, context) of clean pyramids, pooled over positions and images: the prior of the
    self-normalised null. Key-independent (it needs only n); Laplace-smoothed."""
    tables = []
    for scale in zip(*[as_pyramid(p) for p in pyramids]):
        bits = torch.cat(scale)
        B, h, w, d = bits.shape
        flat = bits.reshape(B, h * w, d)
        ctx = contexts(flat, n).long()
        S, J = 1 << (n - 1), d - n + 1
        cell = (torch.arange(J).view(1, 1, J) * S + ctx).reshape(-1)
        N = torch.bincount(cell, minlength=J * S).double()
        K = torch.bincount(cell, weights=flat[..., n - 1 :].reshape(-1).double(), minlength=J * S)
        tables.append(((K + smoothing) / (N + 2 * smoothing)).view(J, S).numpy())
    return tables
