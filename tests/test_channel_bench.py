"""The key-free steganalyst of the channel benchmark sees a 4x4 texture and nothing in its absence."""

import numpy as np

from bitmark.benchmarks.channel_robustness import residual_features, steganalysis_accuracy


def _smooth(n, seed):
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, (n, 4, 4, 3))
    return np.kron(base, np.ones((1, 8, 8, 1)))  # 32x32 blocky-smooth images


def test_steganalyst_sees_a_cell_texture_and_not_noise():
    clean, other = _smooth(200, 0), _smooth(200, 1)
    texture = np.tile(np.array([[3, -3, 3, -3], [-3, 3, -3, 3]] * 2, float)[None, :, :, None], (1, 8, 8, 3))
    marked = (other + texture).clip(0, 255).astype(np.uint8)
    assert residual_features(marked).shape == (200, 48 + 3 + 4 * 3)
    assert steganalysis_accuracy(clean.astype(np.uint8), marked) > 0.95
    # the same distribution on both sides: 400 samples, 5 folds; the 95% band of chance is about 0.5 +- 0.05
    assert abs(steganalysis_accuracy(clean.astype(np.uint8), other.astype(np.uint8)) - 0.5) < 0.08
