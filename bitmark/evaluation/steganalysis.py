"""Keyless steganalysis: can someone without the key tell watermarked samples from clean ones? (issue 13)

An honest invisibility figure is the held-out accuracy of classifiers trained to separate the two, not a
quality distance alone. Two detectors, both trained only on labelled images (never the key):

* `residual_features` + `fit_logistic`: fixed high-pass filters per colour channel (the classical
  spatial-steganalysis recipe: the mark lives in high frequencies, the content mostly does not), and
  statistics of their residuals -- moments, a histogram and adjacent-pair co-occurrences of quantised,
  clipped residuals, and the residual energy and mean at each of the 16 positions of a 4x4 patch (the
  tokenizer's latent cell is 4x4 px and the known artefact is a texture of that period) -- standardised and
  fed to an L2-regularised logistic regression.
* `bitmark.evaluation.steganalysis_cnn`: a small CNN trained from scratch on the same folds.

`cross_validate` scores a detector by seeded, stratified k-fold: every image is predicted once by a model
that never saw it, and the accuracy over all of them gets a Wilson 95% interval (`wilson_interval`).
Everything here is a pure function of arrays and seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Fixed high-pass kernels (correlation, "valid" borders): first and second differences, the 3x3 "KB"
# kernel of spatial steganalysis and the 4-neighbour Laplacian. Their residuals of smooth content are
# near zero, so what is left is texture and noise -- where a sampling bias shows first.
KERNELS: dict[str, np.ndarray] = {
    "d1h": np.array([[1.0, -1.0]]),
    "d1v": np.array([[1.0], [-1.0]]),
    "d2h": np.array([[1.0, -2.0, 1.0]]),
    "d2v": np.array([[1.0], [-2.0], [1.0]]),
    "kb": np.array([[-1.0, 2.0, -1.0], [2.0, -4.0, 2.0], [-1.0, 2.0, -1.0]]) / 4,
    "lap": np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
}
PERIOD = 4  # pixels per latent cell of the shipped tokenizer (32 px / 8 cells): the period of its patch texture
STEP = 2.0  # quantisation step of residuals (grey levels) for histograms and co-occurrences
CLIP = 2  # quantised residuals are clipped to [-CLIP, CLIP]: 5 bins, 25 co-occurrence pairs


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: unlike the normal (Wald) interval it stays inside
    [0, 1] and keeps its coverage near 0 and 1, where a near-perfect classifier's accuracy sits."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def high_pass(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(B, H, W, C) images -> (B, C, H', W') residuals of a valid correlation with `kernel`."""
    x = np.asarray(images, np.float64).transpose(0, 3, 1, 2)
    kh, kw = kernel.shape
    h, w = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((*x.shape[:2], h, w))
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j]:
                out += kernel[i, j] * x[:, :, i : i + h, j : j + w]
    return out


def _phase_index(kernel: np.ndarray, h: int, w: int, period: int) -> np.ndarray:
    """(h, w) index 0..period²-1 of each residual's position in the patch (taken at the kernel's centre)."""
    ys = (np.arange(h) + kernel.shape[0] // 2) % period
    xs = (np.arange(w) + kernel.shape[1] // 2) % period
    return ys[:, None] * period + xs[None, :]


def _per_phase(values: np.ndarray, phase: np.ndarray, period: int) -> np.ndarray:
    """Mean of (B, C, h, w) values at each of the period² patch positions -> (B, C, period²)."""
    flat, idx = values.reshape(*values.shape[:2], -1), phase.ravel()
    counts = np.bincount(idx, minlength=period * period)
    sums = np.stack([flat[..., idx == k].sum(-1) for k in range(period * period)], -1)
    return sums / counts


def residual_statistics(r: np.ndarray, kernel: np.ndarray, period: int = PERIOD) -> np.ndarray:
    """Features of one filter's residuals (B, C, h, w) -> (B, F): per channel, 3 moments, a 5-bin
    histogram, period² patch-position energies (relative, log) and as many patch-position means (16 each for
    the shipped 4x4 cell); and the 25-bin
    co-occurrence of horizontally and vertically adjacent quantised residuals, pooled over channels."""
    b, c, h, w = r.shape
    eps = 1e-6
    flat = r.reshape(b, c, -1)
    energy = (flat**2).mean(-1) + eps
    moments = [np.log(energy), np.abs(flat).mean(-1) / np.sqrt(energy), (flat**4).mean(-1) / energy**2]
    q = np.clip(np.rint(r / STEP), -CLIP, CLIP).astype(np.int64) + CLIP  # 0..2*CLIP
    bins = 2 * CLIP + 1
    hist = np.stack([(q == v).reshape(b, c, -1).mean(-1) for v in range(bins)], -1)  # (B, C, 5)
    pairs = np.concatenate([(q[..., :, :-1] * bins + q[..., :, 1:]).reshape(b, -1),
                            (q[..., :-1, :] * bins + q[..., 1:, :]).reshape(b, -1)], 1)
    cooc = np.stack([np.bincount(p, minlength=bins * bins) for p in pairs]) / pairs.shape[1]  # (B, 25)
    phase = _phase_index(kernel, h, w, period)
    phase_energy = np.log(_per_phase(r**2, phase, period) + eps) - np.log(energy)[..., None]  # texture vs overall
    phase_mean = _per_phase(r, phase, period) / np.sqrt(energy)[..., None]  # a fixed patch pattern, signed
    per_channel = np.concatenate([np.stack(moments, -1), hist, phase_energy, phase_mean], -1)  # (B, C, 8 + 2 period²)
    return np.concatenate([per_channel.reshape(b, -1), cooc], 1)


def residual_features(images: np.ndarray, period: int = PERIOD) -> np.ndarray:
    """(B, H, W, 3) uint8 images -> (B, F) float features: every kernel's `residual_statistics`.

    period: the tokenizer's latent cell in pixels (image size / finest token grid)."""
    return np.concatenate([residual_statistics(high_pass(images, k), k, period) for k in KERNELS.values()], 1)


@dataclass(frozen=True)
class Standardiser:
    """Per-feature centring and scaling learned on a training fold only (a test image must not shape it)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        std = x.std(0)
        return cls(x.mean(0), np.where(std > 1e-12, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Weights and bias minimising mean log-loss + l2/(2n) ||w||^2 (the bias is not penalised), by L-BFGS.

    Convex, so the optimum does not depend on the start; with standardised features l2 ~ 1-100 is the
    useful range for a few hundred images and a few hundred features."""
    from scipy.optimize import minimize

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, d = x.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        m = x @ w + b
        value = np.logaddexp(0.0, m).sum() - y @ m + 0.5 * l2 * w @ w
        g = 1.0 / (1.0 + np.exp(-m)) - y
        return value / n, np.concatenate([x.T @ g + l2 * w, [g.sum()]]) / n

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:d], float(res.x[d])


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number 0..k-1 of each sample; each class is shuffled (seeded) and dealt round-robin, so every
    fold holds the classes in the same proportion."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        folds[rng.permutation(idx)] = np.arange(len(idx)) % k
    return folds


Trainer = Callable[[np.ndarray, np.ndarray, int], Callable[[np.ndarray], np.ndarray]]  # (x, y, seed) -> P(y=1|x)


def logistic_trainer(l2_grid: tuple[float, ...] = (1.0, 10.0, 100.0), inner_folds: int = 3) -> Trainer:
    """A residual-feature trainer: standardise, pick l2 from `l2_grid` by an inner k-fold on the training
    data only (the outer test fold never chooses a setting), refit on all of it."""

    def train(x: np.ndarray, y: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        best, best_acc = l2_grid[0], -1.0
        if len(l2_grid) > 1:
            inner = stratified_folds(y, inner_folds, seed)
            for l2 in l2_grid:
                right = 0
                for f in range(inner_folds):
                    tr, te = inner != f, inner == f
                    s = Standardiser.fit(x[tr])
                    w, b = fit_logistic(s(x[tr]), y[tr], l2)
                    right += int(((s(x[te]) @ w + b > 0) == (y[te] == 1)).sum())
                if right / len(y) > best_acc:
                    best, best_acc = l2, right / len(y)
        s = Standardiser.fit(x)
        w, b = fit_logistic(s(x), y, best)
        return lambda z: 1.0 / (1.0 + np.exp(-(s(z) @ w + b)))

    return train


@dataclass(frozen=True)
class Score:
    """Held-out accuracy of one detector: every image predicted once by a model that did not train on it."""

    accuracy: float
    n: int
    low: float
    high: float
    folds: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "n": self.n, "ci_low": self.low, "ci_high": self.high, "folds": self.folds}


def cross_validate(x: np.ndarray, y: np.ndarray, train: Trainer, k: int = 5, seed: int = 0,
                   on_fold: Callable[[], None] | None = None) -> Score:
    """Seeded stratified k-fold accuracy of `train`'s models (threshold 0.5) with its Wilson 95% interval.

    x: features or images, indexed on the first axis; y: 0/1 labels (1 = watermarked)."""
    y = np.asarray(y, np.int64)
    folds = stratified_folds(y, k, seed)
    right = 0
    for f in range(k):
        tr, te = folds != f, folds == f
        predict = train(x[tr], y[tr], seed + 1 + f)
        right += int(((predict(x[te]) > 0.5) == (y[te] == 1)).sum())
        if on_fold is not None:
            on_fold()
    low, high = wilson_interval(right, len(y))
    return Score(right / len(y), len(y), low, high, k)
