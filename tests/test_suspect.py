import math

import numpy as np
import pytest
from scipy import stats

from bitmark.detectors import suspect


def test_threshold_and_tpr_from_negatives():
    neg = np.arange(100, dtype=float)  # 0..99: at 1% one negative may lie above the threshold
    assert suspect.threshold_at_fpr(neg, 0.01) == 98.0
    assert suspect.threshold_at_fpr(neg, 0.05) == 94.0
    assert np.mean(neg > suspect.threshold_at_fpr(neg, 0.01)) <= 0.01
    tpr, t = suspect.tpr_at_fpr([97.0, 98.0, 98.5, 200.0], neg, 0.01)
    assert t == 98.0 and tpr == 0.5  # strictly above the threshold
    with pytest.raises(ValueError):
        suspect.threshold_at_fpr([], 0.01)


def test_stouffer_and_its_p_value():
    assert suspect.stouffer([1.0, 1.0, 1.0, 1.0]) == pytest.approx(2.0)
    assert suspect.stouffer([1.5, 0.5], mu0=0.5, sigma0=2.0) == pytest.approx(1.0 / (2.0 * math.sqrt(2)))
    assert suspect.combined_log10_p([1.0] * 4) == pytest.approx(-math.log10(stats.norm.sf(2.0)))
    assert suspect.combined_log10_p([3.0] * 400) > 100  # z = 60: no underflow


def test_n_to_convict():
    z6 = stats.norm.isf(1e-6)  # 4.753
    assert suspect.n_to_convict(1.0) == math.ceil(z6**2)  # 23
    assert suspect.n_to_convict(0.3, mu0=0.1, sigma0=1.2) == math.ceil((z6 * 1.2 / 0.2) ** 2)
    assert suspect.n_to_convict(-0.1) == math.inf and suspect.n_to_convict(0.1, mu0=0.1) == math.inf
    n95 = suspect.n_to_convict(0.5, power=0.95, sigma=1.0)
    assert n95 == math.ceil(((z6 + stats.norm.ppf(0.95)) / 0.5) ** 2)
    with pytest.raises(ValueError):
        suspect.n_to_convict(0.5, power=0.95)
    # at the 95%-power n, normal z with that mean convicts about 95% of the time
    z = np.random.default_rng(0).normal(0.5, 1.0, 20_000)
    assert suspect.conviction_rate(z, int(n95), draws=4000) == pytest.approx(0.95, abs=0.02)
    assert suspect.conviction_rate(np.random.default_rng(1).normal(0, 1, 5000), 200, draws=2000) == 0.0


def test_mann_whitney_greater():
    rng = np.random.default_rng(0)
    control, same, shifted = rng.normal(0, 1, 300), rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    p, auc = suspect.mann_whitney_greater(shifted, control)
    assert p < 1e-6 and 0.6 < auc < 0.72  # AUC of a 0.5-sigma shift is Phi(0.5 / sqrt 2) = 0.64
    assert suspect.mann_whitney_greater(same, control)[0] > 0.01
    assert suspect.mann_whitney_greater([3.0, 4.0], [1.0, 2.0])[1] == 1.0


def test_pair_shift_floor_and_key_calibration():
    z6 = stats.norm.isf(1e-6)
    # no pair shift: the floor is the plain Stouffer n; a floor tau needs mean > z6 * tau at any n
    assert suspect.n_to_convict(0.5, tau=1e-12) == suspect.n_to_convict(0.5)
    assert suspect.n_to_convict(0.5, tau=0.05) == math.ceil(1 / ((0.5 / z6) ** 2 - 0.05**2))
    assert suspect.n_to_convict(0.2, tau=0.05) == math.inf  # 0.2 < 4.75 * 0.05
    rng = np.random.default_rng(0)
    n = 400
    independent = rng.normal(0, 1 / math.sqrt(n), 2000)  # mean z of n independent N(0, 1) images per key
    assert suspect.pair_shift(independent, n) < 0.01
    shifted = independent + rng.normal(0, 0.1, 2000)  # plus a per-key shift of spread 0.1
    assert suspect.pair_shift(shifted, n) == pytest.approx(0.1, abs=0.01)
    z, neg_log10_p, empirical = suspect.key_calibrated(0.25, independent)
    assert z == pytest.approx(5.0, rel=0.05) and neg_log10_p > 6 and empirical == 1 / 2001
    assert suspect.key_calibrated(0.0, independent)[2] == pytest.approx(0.5, abs=0.05)
