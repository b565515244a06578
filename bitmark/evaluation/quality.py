"""Sample-quality metrics on feature vectors (DESIGN §8), pure functions of two feature sets.

Features come from the frozen domain classifier (`bitmark.classifier`); nothing here needs outside weights.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of the Gaussians fitted to two feature sets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu, sa, sb = a.mean(0) - b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(sa @ sb)
    if not np.isfinite(root).all():  # near-singular product: regularise, as is customary
        eps = 1e-6 * np.eye(len(sa))
        root = linalg.sqrtm((sa + eps) @ (sb + eps))
    return float(mu @ mu + np.trace(sa + sb - 2 * root.real))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 20, subset_size: int = 200, seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = ~np.eye(m, dtype=bool)
        values.append(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    dist = pairwise_distances(x, x)
    return np.sort(dist, axis=1)[:, k]  # column 0 is the point itself


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(x), len(y)) between the rows of two arrays."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.maximum(sq, 0.0))


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """k-NN manifold estimates: precision/recall (Kynkäänniemi et al.), density/coverage (Naeem et al.)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    r_real, r_fake = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    d = pairwise_distances(real, fake)  # (R, F)
    inside_real = d <= r_real[:, None]
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d <= r_fake[None, :]).any(1).mean()),
        "density": float(inside_real.sum(0).mean() / k),
        "coverage": float((d.min(1) <= r_real).mean()),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the PSNR (dB) between uint8 batches; identical images count as 100 dB."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0)))
