"""Removing a model's positional structure before the key-calibrated test (bitmark.detectors.structure)."""

import numpy as np
import pytest

from bitmark.detectors import BitDetector, structure, suspect
from bitmark.evaluation.keys import fixed_key

N_CTX = 2
D = 8
GRID = (8, 8)


def _signs(i):
    return structure.key_signs(fixed_key(i), [GRID], [0], D)[0]  # (64, D - 1, 2) +-1


def _sample(rng, num, bias, signs=None, eps=0.0):
    """Bits (num, 8, 8, D), drawn bit by bit: P(bit j = 1) = 0.5 + bias[p, j] (+ eps towards the key's green value
    in the bit's context, the inherited mark)."""
    L = GRID[0] * GRID[1]
    bits = np.zeros((num, L, D), bool)
    bits[..., 0] = rng.random((num, L)) < 0.5 + bias[:, 0]
    for j in range(1, D):
        mark = 0.0 if signs is None else eps * signs[np.arange(L), j - 1, bits[..., j - 1].astype(int)]
        p = 0.5 + bias[:, j] + mark
        bits[..., j] = rng.random((num, L)) < p
    return bits.reshape(num, *GRID, D)


def _test_b(res, owner, others):
    """(owner mean z, tau, key-calibrated z) of residuals."""
    z, m = structure.image_z(res, owner), structure.mean_z(res, others)
    return float(z.mean()), suspect.pair_shift(m, len(z)), suspect.key_calibrated(float(z.mean()), m)[0]


@pytest.fixture(scope="module")
def keys():
    return [_signs(0)], [[_signs(100 + i)] for i in range(200)]  # per key, one table per scale


def test_plain_residuals_give_the_detector_z():
    """method none is the self-normalised detector's statistic, to rounding, on a two-scale pyramid."""
    rng = np.random.default_rng(0)
    pyramid = [rng.random((5, 1, 1, D)) < 0.5, rng.random((5, 4, 4, D)) < 0.3]
    key = fixed_key(3)
    res = structure.residuals(pyramid, N_CTX)
    signs = structure.key_signs(key, res.grids, [0, 1], D)
    np.testing.assert_allclose(structure.image_z(res, signs), BitDetector(key).detect(pyramid).z_score, atol=1e-12)
    mean = structure.mean_z(structure.remove_structure(res, "none"), [signs])[0]
    assert mean == pytest.approx(structure.image_z(res, signs).mean(), abs=1e-12)


def test_the_corrected_z_stays_exact_for_a_random_key():
    """m_hat is a function of the bits only, so one image's z' over 400 random keys has mean 0 and variance 1:
    with 400 keys the mean's standard error is 0.05 and the variance's about 0.07, so 0.2 and 0.3 are > 4 SE."""
    rng = np.random.default_rng(1)
    bias = 0.2 * np.sin(np.linspace(0, 3, 64))[:, None] * np.ones((1, D))
    res = structure.remove_structure(structure.residuals([_sample(rng, 64, bias)], N_CTX), "neighbours+context")
    z = np.array([structure.image_z(res, [_signs(1000 + i)])[0] for i in range(400)])
    assert abs(z.mean()) < 0.2 and abs(z.var() - 1) < 0.3


def test_neighbours_remove_a_smooth_positional_bias_and_keep_a_white_mark(keys):
    """A smooth bias shared by all outputs leaves a floor tau under the plain statistic; the neighbour estimate
    removes it, while a mark that follows the owner key (white over positions) is still found."""
    owner, others = keys
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:8, 0:8]
    smooth = 0.2 * np.cos((yy + xx) / 5.0).reshape(64, 1) * np.cos(np.arange(D) * 1.3)  # slow over positions
    plain = structure.residuals([_sample(rng, 400, smooth)], N_CTX)
    _, tau_plain, _ = _test_b(plain, owner, others)
    _, tau_fixed, _ = _test_b(structure.remove_structure(plain, "neighbours"), owner, others)
    # the smooth bias leaves tau ~0.10 (three seeds: 0.100-0.106; 200 keys estimate it to ~10%); what a smooth
    # field minus its neighbours' mean leaves is a fraction of it (0.015-0.036), so half is a loose bound
    assert tau_plain > 0.08 and tau_fixed < tau_plain / 2
    marked = structure.residuals([_sample(rng, 400, smooth, owner[0], eps=0.05)], N_CTX)
    _, _, kz_plain = _test_b(marked, owner, others)
    mean_fixed, _, kz_fixed = _test_b(structure.remove_structure(marked, "neighbours"), owner, others)
    # eps = 0.05 on each of the 448 scored bits gives a mean z near 0.05 * 448 / sqrt(448 / 4) ~ 2.1, far above
    # the key spread (~0.09 after removal): z over keys > 10 is a loose bound (three seeds: 21-24); under the
    # plain statistic the floor adds to the spread, so its z is lower (15-16)
    assert mean_fixed > 0.8 and kz_fixed > 10 and kz_fixed > kz_plain


def test_a_reference_removes_a_rough_shared_bias(keys):
    """A bias that is rough over positions (no neighbour can predict it) but shared with reference images that
    never saw the key: the reference method removes it and keeps the mark; the neighbour method cannot."""
    owner, others = keys
    rng = np.random.default_rng(3)
    rough = rng.uniform(-0.15, 0.15, (64, D))
    ref = structure.cell_means(structure.residuals([_sample(rng, 1600, rough)], N_CTX))
    plain = structure.residuals([_sample(rng, 400, rough)], N_CTX)
    _, tau_plain, _ = _test_b(plain, owner, others)
    _, tau_nb, _ = _test_b(structure.remove_structure(plain, "neighbours"), owner, others)
    _, tau_ref, _ = _test_b(structure.remove_structure(plain, "reference", [ref]), owner, others)
    # the reference's own noise (1,600 images) is a quarter of the suspect's, so the floor left is small (three
    # seeds: tau 0.12-0.14 plain, 0.025-0.030 with the reference, 0.13-0.15 with the neighbours)
    assert tau_ref < tau_plain / 2 and tau_nb > 0.8 * tau_plain
    marked = structure.residuals([_sample(rng, 400, rough, owner[0], eps=0.05)], N_CTX)
    mean_ref, _, kz_ref = _test_b(structure.remove_structure(marked, "reference", [ref]), owner, others)
    assert mean_ref > 0.8 and kz_ref > 10  # as in the test above


def test_unknown_method_and_missing_reference_are_refused():
    res = structure.residuals([np.zeros((2, 2, 2, D), bool)], N_CTX)
    with pytest.raises(ValueError, match="unknown structure method"):
        structure.remove_structure(res, "same-position")
    with pytest.raises(ValueError, match="reference table"):
        structure.remove_structure(res, "reference")
