"""Remove a suspect model's own positional structure before testing its outputs for a key.

The self-normalised null scores a bit by its residual r = b - q, q the image's share of ones in its cell
(scale, bit index j, context); per image z = sum sign * r / sqrt(sum r^2), with sign = +1 where the key's green
value is 1 at that (scale, position, j, context), else -1. For one image and a random key this is exact. For
the mean z of *one model's* n outputs it is not: the outputs share positional structure (position p tends
to have bit j set more than the rest of its grid), so the mean residual M of a cell (scale, p, j, context)
does not vanish with n, and one fixed key's signs line up with it by chance. That is the floor tau of the
key-calibrated test (`bitmark.detectors.suspect.pair_shift`).

An inherited mark is also a per-cell bias of the mean residual, eps * sign, but white: the key draws its green
values independently per position and per context. So the model's structure at a cell is estimated from
*other* cells that the key treats independently -- the grid neighbours of p (same scale, j, context) and/or the
other contexts of the same position and j -- and subtracted: r' = r - m_hat. Never from the cell itself: that
would subtract the mark too. m_hat is a function of the bits only, never of the key, so per image
z' = sum sign * r' / sqrt(sum r'^2) still has mean 0 and variance 1 exactly over random keys, and the
key-calibrated test stays valid; what changes is how much of a model's structure is left for a fixed key to
line up with. Pure numpy apart from `key_signs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

METHODS = ("none", "neighbours", "context", "neighbours+context", "reference")


@dataclass(frozen=True)
class Residuals:
    """Self-normalised residuals of a model's outputs on the scored scales.

    ctx: per scale (B, L, J) int contexts of the scored bits j = n-1 .. d-1; r: per scale (B, L, J) float64
    residuals b - q; grids: per scale (h, w) with L = h * w; num_contexts: 2^(n-1)."""

    ctx: tuple[np.ndarray, ...]
    r: tuple[np.ndarray, ...]
    grids: tuple[tuple[int, int], ...]
    num_contexts: int

    @property
    def num_images(self) -> int:
        return self.r[0].shape[0]


def contexts(bits: np.ndarray, n: int) -> np.ndarray:
    """Context integers of bits j = n-1 .. d-1 of (..., d) bits (bit j-1 least significant), as in
    `bitmark.core.rules.contexts`."""
    b = np.asarray(bits).astype(np.int64)
    J = b.shape[-1] - n + 1
    ctx = b[..., n - 2 : n - 2 + J].copy()
    for k in range(2, n):
        ctx |= b[..., n - 1 - k : n - 1 - k + J] << (k - 1)
    return ctx


def _one_hot(ctx: np.ndarray, S: int) -> np.ndarray:
    return (ctx[..., None] == np.arange(S)).astype(np.float64)


def residuals(scales: Sequence[np.ndarray], n: int, probs: Sequence[np.ndarray] | None = None) -> Residuals:
    """The residuals b - q of the scored scales' bits, each (B, h, w, d) bool. q: the image's own share of ones
    in the bit's cell (j, context) over the scale's positions (the self-normalised null), or, with `probs`
    (per scale (B, h, w, d) P(bit = 1) computed without the key, e.g. `GeneratorPredictor`), that (the model null)."""
    S, ctxs, rs, grids = 1 << (n - 1), [], [], []
    if probs is not None and len(probs) != len(scales):
        raise ValueError(f"{len(probs)} probability tables for {len(scales)} scales")
    for i, bits in enumerate(scales):
        bits = np.asarray(bits).astype(bool)
        B, h, w, d = bits.shape
        flat = bits.reshape(B, h * w, d)
        ctx = contexts(flat, n)
        b = flat[..., n - 1 :].astype(np.float64)
        if probs is not None:
            q = np.asarray(probs[i], dtype=np.float64)
            if q.shape != bits.shape:
                raise ValueError(f"probabilities of shape {q.shape} for bits of shape {bits.shape}")
            q_at = np.clip(q.reshape(B, h * w, d)[..., n - 1 :], 0.0, 1.0)
        else:
            hot = _one_hot(ctx, S)  # (B, L, J, S)
            N, K = hot.sum(1), (hot * b[..., None]).sum(1)  # (B, J, S) positions and ones per cell
            q = np.divide(K, N, out=np.zeros_like(K), where=N > 0)
            q_at = np.take_along_axis(q[:, None].repeat(h * w, 1), ctx[..., None], -1)[..., 0]
        ctxs.append(ctx)
        rs.append(b - q_at)
        grids.append((h, w))
    return Residuals(tuple(ctxs), tuple(rs), tuple(grids), S)


def positional_sums(ctx: np.ndarray, r: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum of residuals and number of images per cell (position, j, context) over a model's outputs: (L, J, S) each."""
    hot = _one_hot(ctx, S)
    return (hot * r[..., None]).sum(0), hot.sum(0)


def _neighbour_total(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum over the 8 grid neighbours of each position (the position itself excluded) of x (L, ...)."""
    grid = x.reshape(h, w, *x.shape[1:])
    pad = np.pad(grid, [(1, 1), (1, 1)] + [(0, 0)] * (grid.ndim - 2))
    total = sum(pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    return np.asarray(total).reshape(x.shape)


def structure_estimate(sums: np.ndarray, counts: np.ndarray, grid: tuple[int, int], method: str,
                       reference: Sequence[np.ndarray] = ()) -> np.ndarray:
    """m_hat (L, J, S): the model's mean residual at each cell estimated from cells the key treats independently
    of it; 0 where they hold no image.

    neighbours: the 8 grid neighbours, same j and context, pooled (their residuals' sum over their images);
    context: the same position and j, other contexts; neighbours+context: both sets; reference: a least-squares
    combination (weighted by the cell's images) of `reference`, mean residual tables (L, J, S) of other images
    that never saw the key (the owner's real images, its own unwatermarked outputs: `cell_means`), fitted to
    this model's means -- the structure a model of this domain and tokenizer shares; none: 0 (the plain statistic)."""
    if method not in METHODS:
        raise ValueError(f"unknown structure method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "none":
        return np.zeros_like(sums)
    if method == "reference":
        if not len(reference):
            raise ValueError("the reference method needs at least one reference table")
        X = np.stack([np.broadcast_to(np.asarray(r, dtype=np.float64), sums.shape).reshape(-1) for r in reference], 1)
        w, y = counts.reshape(-1), np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0).reshape(-1)
        coef = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        return (X @ coef).reshape(sums.shape)
    h, w = grid
    num, den = np.zeros_like(sums), np.zeros_like(counts)
    if "neighbours" in method:
        num, den = num + _neighbour_total(sums, h, w), den + _neighbour_total(counts, h, w)
    if "context" in method:
        num = num + sums.sum(-1, keepdims=True) - sums
        den = den + counts.sum(-1, keepdims=True) - counts
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def cell_means(res: Residuals) -> list[np.ndarray]:
    """Per scale the mean residual of each cell (L, J, S) over the images (0 where a cell holds none): a
    reference table for `structure_estimate`."""
    out = []
    for ctx, r in zip(res.ctx, res.r):
        sums, counts = positional_sums(ctx, r, res.num_contexts)
        out.append(np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0))
    return out


def remove_structure(res: Residuals, method: str, references: Sequence[Sequence[np.ndarray]] = ()) -> Residuals:
    """The residuals with each cell's structure estimate subtracted: r' = r - m_hat[position, j, context].
    references: for the reference method, one `cell_means` list (per scale) per reference set."""
    out = []
    for i, (ctx, r, grid) in enumerate(zip(res.ctx, res.r, res.grids)):
        m_hat = structure_estimate(*positional_sums(ctx, r, res.num_contexts), grid, method,
                                   [ref[i] for ref in references])  # (L, J, S)
        out.append(r - _at(m_hat, ctx))
    return replace(res, r=tuple(out))


def _at(table: np.ndarray, ctx: np.ndarray) -> np.ndarray:
    """A per-cell table (L, J, S) read at each image's bits: (B, L, J), by the bit's context."""
    return np.take_along_axis(np.broadcast_to(table, (len(ctx), *table.shape)), ctx[..., None], -1)[..., 0]


def _spread(res: Residuals) -> np.ndarray:
    """sqrt(sum r^2) per image: the null spread of its signed sum over random keys."""
    return np.sqrt(sum((r**2).sum((1, 2)) for r in res.r))


def image_z(res: Residuals, signs: Sequence[np.ndarray]) -> np.ndarray:
    """Per image z = sum sign * r / sqrt(sum r^2) for one key's signs, per scale (L, J, S) of +-1; 0 where the
    spread is 0. With `method='none'` residuals this is the self-normalised detector's z (equal weights)."""
    total = sum((_at(sg, ctx) * r).sum((1, 2)) for sg, ctx, r in zip(signs, res.ctx, res.r))
    spread = _spread(res)
    return np.divide(total, spread, out=np.zeros_like(spread), where=spread > 0)


def mean_z(res: Residuals, signs: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """The mean over images of `image_z` for each of K keys (signs[k] per scale (L, J, S)): (K,). One pass over the
    images; then a dot product per key: mean z = sum over cells of sign * A, A = mean_i [cell] r_i / spread_i."""
    spread = _spread(res)
    inv = np.divide(1.0, spread, out=np.zeros_like(spread), where=spread > 0)[:, None, None, None]
    cells = [(_one_hot(ctx, res.num_contexts) * (r[..., None] * inv)).mean(0) for ctx, r in zip(res.ctx, res.r)]
    return np.array([sum(float((np.asarray(sg) * a).sum()) for sg, a in zip(per_scale, cells)) for per_scale in signs])


def key_signs(key, grids: Sequence[tuple[int, int]], scales: Sequence[int], d: int) -> list[np.ndarray]:
    """+-1 signs (L, J, S) of a keyed-spatial key's green values on the given scales and grids (the scored bits)."""
    from bitmark.core.rules import GreenRule

    rule = GreenRule(key)
    if not rule.spatial:
        raise ValueError("structure removal needs the keyed-spatial rule: with one green value per cell for all "
                         "positions the neighbours share the key's sign")
    return [rule.table(s, h, w, d)[:, rule.n - 1 :, :].numpy().astype(np.int8) * 2 - 1
            for s, (h, w) in zip(scales, grids)]
