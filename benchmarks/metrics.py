"""Benchmark metrics beyond the detector's own statistics (DESIGN §8): pure functions.

Empirical thresholds, TPRs and the Mann–Whitney AUC live in `bitmark.detectors.suspect`; this adds the
benchmarks' rule for reporting a TPR and the PSNR of attacked images.
"""

from __future__ import annotations

import numpy as np

from bitmark.detectors import suspect


def tpr_at_fpr(positives: np.ndarray, negatives: np.ndarray, fpr: float) -> float | None:
    """`bitmark.detectors.suspect.tpr_at_fpr`, or None when there are fewer than 10/fpr negatives (DESIGN §8)."""
    if len(negatives) < round(10 / fpr):
        return None
    return suspect.tpr_at_fpr(positives, negatives, fpr)[0]


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive score > negative score) + P(tie)/2: the AUC of `bitmark.detectors.suspect.mann_whitney_greater`."""
    return suspect.mann_whitney_greater(positives, negatives)[1]


