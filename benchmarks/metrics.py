"""Detection metrics from scores of positives and negatives: pure functions (DESIGN §8)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from detectors.suspect import threshold_at_fpr


def tpr_at_fpr(positives: np.ndarray, negatives: np.ndarray, fpr: float) -> float | None:
    """TPR at the empirical threshold of `fpr` (`detectors.suspect.threshold_at_fpr`), or None when there
    are fewer than 10/fpr negatives (DESIGN §8)."""
    if len(negatives) < round(10 / fpr):
        return None
    return float(np.mean(np.asarray(positives) > threshold_at_fpr(negatives, fpr)))


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive score > negative score) + P(tie)/2, from the Mann-Whitney U statistic."""
    u = stats.mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    return float(u / (len(positives) * len(negatives)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the PSNR (dB) between uint8 batches; identical images count as 100 dB."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0)))
