"""Pure functions: per-generation metrics beyond `bitmark.evaluation.quality`, and the run's summary statistics."""

from __future__ import annotations

import math

import numpy as np

from bitmark.evaluation.quality import pairwise_distances


def class_coverage(predicted: np.ndarray, num_classes: int) -> float:
    """Share of classes that receive at least half of a uniform share (1 / 2K) of the predictions: a class
    the model has all but lost counts as lost, which "predicted at least once" would hide."""
    share = np.bincount(predicted, minlength=num_classes)[:num_classes] / max(1, len(predicted))
    return float(np.mean(share >= 0.5 / num_classes))


def class_entropy(predicted: np.ndarray, num_classes: int) -> float:
    """Entropy of the predicted-class histogram, normalised by log K: 1 = uniform, 0 = one class."""
    p = np.bincount(predicted, minlength=num_classes)[:num_classes] / max(1, len(predicted))
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(num_classes)) if num_classes > 1 else 0.0


def nearest_distance(a: np.ndarray, b: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each row of a, the Euclidean distance to its nearest row of b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    best = np.full(len(a), np.inf)
    for i in range(0, len(b), chunk):
        best = np.minimum(best, pairwise_distances(a, b[i : i + chunk]).min(1))
    return best


def memorization_ratio(samples: np.ndarray, heldout: np.ndarray, pool: np.ndarray) -> float:
    """Median distance of a sample to its nearest training-pool image over the same for held-out real images
    (features of the frozen classifier). About 1: samples sit as close to the pool as new real data do;
    well below 1: the model is copying its training pool."""
    ref = np.median(nearest_distance(heldout, pool))
    return float(np.median(nearest_distance(samples, pool)) / ref) if ref > 0 else float("nan")


def excess_area(generations: np.ndarray, values: np.ndarray) -> float:
    """Area between a metric's curve and its generation-0 value (trapezoids, one unit per generation)."""
    t, v = np.asarray(generations, float), np.asarray(values, float)
    order = np.argsort(t)
    t, v = t[order], v[order] - v[order][0]
    return float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(t)))


def generations_to_threshold(generations: np.ndarray, values: np.ndarray, factor: float = 2.0) -> int | None:
    """First generation t at which the metric reaches `factor` times its generation-0 value; None if never."""
    t, v = np.asarray(generations), np.asarray(values, float)
    order = np.argsort(t)
    t, v = t[order], v[order]
    hit = np.flatnonzero(v >= factor * v[0])
    hit = hit[t[hit] > t[0]]
    return int(t[hit[0]]) if len(hit) else None


def gap_closed(none: float, arm: float, oracle: float) -> float | None:
    """Share of the no-filter -> oracle gap (in excess area) that an arm closes: 0 = no better than no
    filter, 1 = as good as the oracle. None when there is no gap to close (oracle not better than none)."""
    gap = none - oracle
    return None if gap <= 0 else float((none - arm) / gap)
