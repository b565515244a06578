"""The toy Gaussian through the collapse loop shows the known behaviour, and the filters do what they say.

replace: each generation refits (mean, sd) by maximum likelihood to n samples of the last fit, so
E[s_t^2 / s_0^2] = ((n-1)/n)^t exactly: with n = 20 and T = 8 that is 0.663. Over 100 seeds the mean ratio
has a standard error of about 0.04 (measured below, not assumed), so "shrinks" is asserted as the mean
lying more than 4 standard errors below 1, and "as theory says" as within 4 standard errors of 0.663.
accumulate: the pool keeps every generation's samples next to the real data, so the error stays bounded
(Gerstgrasser et al. 2024): its mean FD at T is asserted to stay within 2x its FD at t = 1 and far below
replace's.
"""

import numpy as np

from bitmark.benchmarks.collapse.config import CollapseConfig
from bitmark.benchmarks.collapse.filters import farthest_points
from bitmark.benchmarks.collapse.loop import run_cell
from bitmark.benchmarks.collapse.toy import GaussianWorld

CFG = CollapseConfig(generations=8, seeds=100, samples=20, fresh_pool=40, accumulate_real=20)


def _curves(regime: str, arm: str = "none", matched=None) -> np.ndarray:
    world = GaussianWorld(CFG)
    rows = [run_cell(world, CFG, regime, arm, s, world.generation_zero(s), matched and matched[s]) for s in range(CFG.seeds)]
    return rows


def _metric(rows, name):
    return np.array([[r[name] for r in cell] for cell in rows])


def test_replace_variance_shrinks_as_theory_says():
    var = _metric(_curves("replace"), "variance")
    ratio = var[:, -1] / var[:, 0]
    se = ratio.std(ddof=1) / np.sqrt(len(ratio))
    theory = ((CFG.samples - 1) / CFG.samples) ** CFG.generations
    assert ratio.mean() < 1 - 4 * se
    assert abs(ratio.mean() - theory) < 4 * se


def test_accumulate_error_stays_bounded():
    acc, rep = _metric(_curves("accumulate"), "fd").mean(0), _metric(_curves("replace"), "fd").mean(0)
    assert acc[-1] <= 2 * acc[1]
    assert acc.max() < rep[-1] / 3


def test_oracle_and_watermark_filters_keep_only_real_in_fresh():
    oracle = _curves("fresh", "oracle")
    assert all(r["synthetic_kept"] == 0 and r["real_dropped"] == 0 for cell in oracle for r in cell[1:])
    wm = _curves("fresh", "watermark@0.01")
    real_in = sum(r["real_in"] for cell in wm for r in cell[1:])
    dropped = sum(r["real_dropped"] for cell in wm for r in cell[1:])
    assert dropped / real_in < 0.03  # the toy detector's 1% FPR, with room for 16,000 draws' noise
    matched = {s: {r["generation"]: r["kept"] for r in cell[1:]} for s, cell in enumerate(wm)}
    rand = _curves("fresh", "random", matched)
    assert [[r["kept"] for r in c[1:]] for c in rand] == [[r["kept"] for r in c[1:]] for c in wm]
    assert sum(r["synthetic_kept"] for c in rand for r in c[1:]) > 0  # same counts, but blind to the mark


def test_farthest_points_picks_spread_out_candidates():
    cands = np.array([[0.0], [0.1], [5.0], [10.0], [10.1]])
    assert farthest_points(cands, np.array([[0.05]]), 2).tolist() == [4, 2]  # 10.1 first, then 5 (not 10)
    assert sorted(farthest_points(cands, None, 5).tolist()) == [0, 1, 2, 3, 4]  # each candidate once
