"""Detection metrics from scores of positives and negatives: pure functions (DESIGN §8)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def empirical_threshold(negatives: np.ndarray, fpr: float) -> float:
    """The score a positive must exceed so that at most floor(fpr * n) negatives do (ties count as not exceeding)."""
    neg = np.sort(np.asarray(negatives, np.float64))[::-1]
    allowed = int(np.floor(fpr * len(neg)))
    return float(neg[allowed]) if allowed < len(neg) else -np.inf


def tpr_at_fpr(positives: np.ndarray, negatives: np.ndarray, fpr: float) -> float | None:
    """TPR at the empirical threshold of `fpr`, or None when there are fewer than 10/fpr negatives (DESIGN §8)."""
    if len(negatives) < round(10 / fpr):
        return None
    return float(np.mean(np.asarray(positives) > empirical_threshold(negatives, fpr)))


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive score > negative score) + P(tie)/2, from the Mann-Whitney U statistic."""
    u = stats.mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    return float(u / (len(positives) * len(negatives)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the PSNR (dB) between uint8 batches; identical images count as 100 dB."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0)))
