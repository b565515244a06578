import numpy as np
import pytest

from bitmark.evaluation.quality import (
    frechet_distance,
    kernel_inception_distance,
    precision_recall_density_coverage,
)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    b = rng.normal(size=(4000, 8)) + np.array([1.0] + [0.0] * 7)
    c = rng.normal(size=(4000, 8)) * 2.0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(1.0, abs=0.1)  # mean shift of 1: FD = 1
    assert frechet_distance(a, c) == pytest.approx(8.0, abs=0.5)  # scale 2: FD = d (2 - 1)^2 = 8


def test_kid_is_near_zero_for_same_distribution_and_positive_otherwise():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    same, _ = kernel_inception_distance(a, b)
    shifted, _ = kernel_inception_distance(a, b + 0.5)
    assert abs(same) < 0.01 and shifted > 10 * abs(same) + 0.01


def test_precision_recall_of_a_collapsed_generator():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(500, 4))
    collapsed = rng.normal(size=(500, 4)) * 0.1  # all samples in the centre of the real data
    m = precision_recall_density_coverage(real, collapsed)
    assert m["precision"] > 0.95 and m["recall"] < 0.2 and m["coverage"] < 0.3
    same = precision_recall_density_coverage(real, rng.normal(size=(500, 4)))
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and 0.7 < same["density"] < 1.3
