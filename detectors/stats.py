"""Pure statistics of the detector: z-scores, one-sided p-values in log space, thresholds, error control.

Everything here is a function of counts; nothing knows about keys, images or models. Only `scipy.special`
is used (importing `scipy.stats` costs most of a second of `bitmark detect`'s start-up): the binomial tail is
the regularised incomplete beta function `betainc` (cephes' `bdtrc` is off by 1e-6 relative at 10^6 bits),
its log-pmf terms come from `gammaln`, and the normal tail is `log_ndtr` -- what `scipy.stats` evaluates
(tests/test_stats_special.py compares the two).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

LN10 = math.log(10.0)


def binomial_z(green, scored, gamma: float = 0.5) -> np.ndarray:
    """z = (G - gamma T) / sqrt(T gamma (1 - gamma)); 0 where nothing was scored."""
    green, scored = np.asarray(green, dtype=float), np.asarray(scored, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (green - gamma * scored) / np.sqrt(scored * gamma * (1 - gamma))
    return np.where(scored > 0, z, 0.0)


def binomial_log_pmf(k, n, gamma: float = 0.5) -> np.ndarray:
    """log P(X = k), X ~ Binomial(n, gamma), from log-gamma functions (exact in log space, no underflow)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    log_choose = special.gammaln(n + 1) - (special.gammaln(k + 1) + special.gammaln(n - k + 1))
    return log_choose + special.xlogy(k, gamma) + special.xlog1py(n - k, -gamma)


def _far_tail_log_sf(k: int, n: int, gamma: float) -> float:
    """log P(X >= k) by summing pmf terms in log space; for k far above the mean, where sf underflows.

    Past the mean the terms shrink at least geometrically, so a window of terms that ends in a term
    1e-40 of the first holds all of the sum that a float can see; the window doubles until it does.
    """
    width = 1024
    while True:
        ks = np.arange(k, min(n, k + width) + 1)
        terms = binomial_log_pmf(ks, n, gamma)
        if ks[-1] == n or terms[-1] < terms[0] - 92.0:
            return float(special.logsumexp(terms))
        width *= 2


def binomial_log_sf(green, scored, gamma: float = 0.5) -> np.ndarray:
    """Natural log of the exact one-sided p-value P(X >= G), X ~ Binomial(T, gamma); never underflows."""
    shape = np.broadcast_shapes(np.shape(green), np.shape(scored))
    green, scored = np.broadcast_arrays(np.atleast_1d(green).astype(np.int64), np.atleast_1d(scored).astype(np.int64))
    a, b = np.clip(green, 1, None).astype(float), np.clip(scored - green + 1, 1, None).astype(float)
    with np.errstate(divide="ignore"):  # P(X >= G) = I_gamma(G, T - G + 1); its log is -inf where it underflows
        out = np.log(special.betainc(a, b, gamma))
    out = np.where(green <= 0, 0.0, np.where(green > scored, -np.inf, out))
    for i in zip(*np.nonzero((out < -700) & (green <= scored))):  # sf underflowed (or nearly): sum the tail
        out[i] = _far_tail_log_sf(int(green[i]), int(scored[i]), gamma)
    return out.reshape(shape) if shape else out[0]


def normal_log_sf(z) -> np.ndarray:
    """Natural log of the one-sided normal tail P(Z >= z), accurate far into the tail."""
    return special.log_ndtr(-np.asarray(z, dtype=float))


def weighted_z(excess, variance, weights) -> tuple[np.ndarray, np.ndarray]:
    """z = sum_s w_s X_s / sqrt(sum_s w_s^2 V_s) and its log normal tail, per row; (0, log 1) where the spread is 0.

    excess X (B, S): green minus expected green per scale; variance V (B, S): its variance under the null;
    weights (S,). With key-independent weights, X_s = sum over the scale's positions of a random sign times
    (b - q), so for a random key the numerator has mean 0 and variance exactly the denominator squared.
    """
    X, V, w = np.asarray(excess, dtype=float), np.asarray(variance, dtype=float), np.asarray(weights, dtype=float)
    excess_w, spread = (X * w).sum(-1), (V * w**2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, excess_w / np.sqrt(spread), 0.0)
    return z, np.where(spread > 0, normal_log_sf(z), 0.0)


def scale_weights(excess, variance) -> np.ndarray:
    """Per-scale weights that maximise the mean weighted z on calibration images: w_s ∝ mean X_s / mean V_s.

    For independent scales with mean excess m_s and null variance V_s, the mean of sum w X / sqrt(sum w^2 V)
    is largest at w_s ∝ m_s / V_s (Cauchy-Schwarz). Learn them on watermarked calibration images whose
    keys and seeds are not the test ones; a scale with no mean excess gets 0. Normalised to max 1.
    """
    X, V = np.asarray(excess, dtype=float), np.asarray(variance, dtype=float)
    if X.ndim != 2 or X.shape != V.shape or len(X) == 0:
        raise ValueError(f"excess and variance are (images, scales) arrays of one shape, got {X.shape} and {V.shape}")
    mean_v = V.mean(0)
    w = np.where(mean_v > 0, np.maximum(X.mean(0), 0.0) / np.where(mean_v > 0, mean_v, 1.0), 0.0)
    if not w.max() > 0:
        raise ValueError("no scale shows a mean excess of green bits: these calibration images carry no mark")
    return w / w.max()


def neg_log10(log_p) -> np.ndarray:
    """-log10 p from ln p: higher means more watermarked."""
    return -np.asarray(log_p, dtype=float) / LN10


def bonferroni(fpr: float, num_tests: int) -> float:
    """Per-test level that keeps the family-wise error rate at most `fpr` over `num_tests` tests."""
    check_fpr(fpr)
    if num_tests < 1:
        raise ValueError("need at least one test")
    return fpr / num_tests


def check_fpr(fpr: float) -> None:
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"a false-positive rate must lie strictly between 0 and 1, got {fpr!r}")

