"""Put a model, not an image, on trial: thresholds from negatives, and per-image z-scores combined over n outputs.

A model trained on watermarked images may carry the mark into its own outputs only weakly: each image's z
is shifted a little, far below a per-image 1% threshold, but the shift adds up over many images. Stouffer's
combined z = sum(z_i - mu0) / (sigma0 sqrt(n)) is N(0, 1) when each z_i has mean mu0 and spread sigma0
under H0; mu0 = 0, sigma0 = 1 is the detector's exact null (over random keys), and a control model's
empirical mean and spread calibrate it for one fixed key. Pure functions of arrays of z-scores.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

CONVICT_P = 1e-6  # the p-value at which a suspect model counts as convicted


def threshold_at_fpr(negatives, fpr: float) -> float:
    """The lowest threshold t for which at most a share `fpr` of `negatives` has z > t (empirical FPR)."""
    neg = np.sort(np.asarray(negatives, dtype=float))[::-1]
    if len(neg) == 0 or not 0.0 < fpr < 1.0:
        raise ValueError("need negatives and 0 < fpr < 1")
    return float(neg[min(math.floor(fpr * len(neg)), len(neg) - 1)])


def tpr_at_fpr(positives, negatives, fpr: float) -> tuple[float, float]:
    """(TPR, threshold): the share of `positives` above the empirical `fpr` threshold of `negatives`."""
    t = threshold_at_fpr(negatives, fpr)
    return float(np.mean(np.asarray(positives, dtype=float) > t)), t


def stouffer(z, mu0: float = 0.0, sigma0: float = 1.0) -> float:
    """Combined z over the images: sum(z - mu0) / (sigma0 sqrt(n)); N(0, 1) under H0."""
    z = np.asarray(z, dtype=float)
    if len(z) == 0 or sigma0 <= 0:
        raise ValueError("need at least one z-score and sigma0 > 0")
    return float((z - mu0).sum() / (sigma0 * math.sqrt(len(z))))


def combined_log10_p(z, mu0: float = 0.0, sigma0: float = 1.0) -> float:
    """-log10 of the one-sided p-value of the Stouffer statistic (no underflow)."""
    return float(-special.log_ndtr(-stouffer(z, mu0, sigma0)) / math.log(10))


def n_to_convict(mean: float, mu0: float = 0.0, sigma0: float = 1.0, p: float = CONVICT_P,
                 power: float = 0.5, sigma: float | None = None, tau: float = 0.0) -> float:
    """Smallest n at which the Stouffer statistic of n outputs with mean z `mean` (spread `sigma`) reaches
    p with probability `power`: n = ((z_p sigma0 + z_power sigma) / (mean - mu0))^2, rounded up.

    power = 0.5 is "the expected statistic crosses the threshold" and needs no sigma. `tau` is a floor
    under the null spread of the mean z that more images do not shrink (the pair shift of one key and
    one model, `pair_shift`): the test is then (mean - mu0) / sqrt(tau^2 + sigma0^2 / n) >= z_p, so
    n = sigma0^2 / (((mean - mu0) / z_p)^2 - tau^2) (power 0.5 only). inf when the mean does not
    exceed the null's, or not by z_p tau.
    """
    if mean <= mu0:
        return math.inf
    z_p = float(-special.ndtri(p))  # the normal isf
    z_power = float(special.ndtri(power))
    if z_power != 0.0 and sigma is None:
        raise ValueError("a power other than 0.5 needs the spread sigma of the suspect's z")
    if tau > 0:
        if z_power != 0.0:
            raise ValueError("tau is supported at power 0.5 only")
        room = ((mean - mu0) / z_p) ** 2 - tau**2
        return float(max(1, math.ceil(sigma0**2 / room))) if room > 0 else math.inf
    root = (z_p * sigma0 + z_power * (sigma or 0.0)) / (mean - mu0)
    return float(max(1, math.ceil(root**2))) if root > 0 else 1.0


def pair_shift(other_key_means, n: int) -> float:
    """tau: the spread of one model's mean z (over its n outputs) across random keys beyond the 1/sqrt(n)
    that independent images would give. Each image's z has variance exactly 1 over random keys, so
    tau^2 = var_keys(mean z) - 1/n; it is > 0 when the outputs share structure that a key lines up with."""
    m = np.asarray(other_key_means, dtype=float)
    if len(m) < 2 or n < 1:
        raise ValueError("need the mean z of at least two keys and n >= 1")
    return float(math.sqrt(max(0.0, m.var(ddof=1) - 1.0 / n)))


def key_calibrated(owner_mean: float, other_key_means) -> tuple[float, float, float]:
    """The owner key's mean z over a model's outputs against the same outputs' mean z under unrelated
    random keys (the owner's key is one more random key if the model never saw its marks): (z, -log10 p
    from the normal tail, empirical p = (1 + #keys at least as high) / (K + 1)). Needs no control model."""
    m = np.asarray(other_key_means, dtype=float)
    if len(m) < 2:
        raise ValueError("need the mean z of at least two unrelated keys")
    z = float(owner_mean / m.std(ddof=1))
    return z, float(-special.log_ndtr(-z) / math.log(10)), float((1 + np.sum(m >= owner_mean)) / (len(m) + 1))


def conviction_rate(z, n: int, mu0: float = 0.0, sigma0: float = 1.0, p: float = CONVICT_P,
                    draws: int = 2000, seed: int = 0) -> float:
    """Share of `draws` random sets of n of the images (drawn with replacement) whose Stouffer statistic
    reaches p: an empirical check of `n_to_convict` that does not assume normal z."""
    z = np.asarray(z, dtype=float)
    rng = np.random.default_rng(seed)
    sums = z[rng.integers(0, len(z), size=(draws, n))].sum(1)
    combined = (sums - n * mu0) / (sigma0 * math.sqrt(n))
    return float(np.mean(combined >= -special.ndtri(p)))


def mann_whitney_greater(arm, control) -> tuple[float, float]:
    """(p, AUC) of the one-sided Mann-Whitney U test that `arm`'s z-scores tend to exceed `control`'s;
    AUC = U / (n m) is the probability that a random arm image outscores a random control image."""
    arm, control = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    from scipy import stats  # only here: importing scipy.stats costs most of a second

    res = stats.mannwhitneyu(arm, control, alternative="greater")
    return float(res.pvalue), float(res.statistic / (len(arm) * len(control)))
