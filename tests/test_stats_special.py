"""The detector's statistics use scipy.special only; they agree with scipy.stats wherever both are finite,
keep going (in log space) where scipy.stats underflows, and `import bitmark.detectors` skips scipy.stats."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from bitmark.detectors.stats import binomial_log_pmf, binomial_log_sf, normal_log_sf


def test_binomial_tail_equals_scipy_stats_on_a_grid():
    rng = np.random.default_rng(0)
    T = np.concatenate([np.arange(1, 60), rng.integers(60, 2_000_000, 300)])
    G = np.concatenate([rng.integers(0, t + 1, 4) for t in T] + [T, T // 2, T // 2 + 3 * np.sqrt(T).astype(int)])
    T = np.concatenate([np.repeat(T, 4), T, T, T])
    ours = binomial_log_sf(G, T)
    with np.errstate(divide="ignore"):
        ref = stats.binom.logsf(G - 1, T, 0.5)
    finite = ref > -700  # where scipy.stats has not underflowed (below it ours sums the tail instead)
    assert finite.sum() > 800
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(ours[G <= T]))


def test_far_tail_matches_scipy_stats_where_it_is_still_finite_and_continues_past_it():
    T = 1_000_000
    G = np.arange(500_000 + 18_500, 500_000 + 19_800, 10)  # log p from about -680 to -790
    ref = stats.binom.logsf(G - 1, T, 0.5)
    ours = binomial_log_sf(G, np.full_like(G, T))
    # where ours sums the tail (below -700) and scipy's sf is still a normal double (above about -708;
    # further down it is subnormal and loses digits, then underflows to -inf)
    ok = (ref < -700) & (ref > -708)
    assert ok.sum() >= 3
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9)
    assert np.all(np.isfinite(ours)) and np.all(np.diff(ours) < 0)


def test_log_pmf_and_normal_tail_equal_scipy_stats():
    k = np.arange(0, 1001)
    np.testing.assert_allclose(binomial_log_pmf(k, 1000), stats.binom.logpmf(k, 1000, 0.5), rtol=1e-12, atol=1e-12)
    z = np.concatenate([np.linspace(-40, 40, 801), [100.0, 1e3, 1e4, -np.inf, np.inf]])
    np.testing.assert_array_equal(normal_log_sf(z), stats.norm.logsf(z))


@pytest.mark.parametrize("module", ["bitmark.detectors", "bitmark.detectors.suspect"])
def test_detectors_do_not_import_scipy_stats(module):
    code = f"import sys, {module}; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
