"""The toy world: a 1-D Gaussian fitted by maximum likelihood, run through the same loop, regimes and arms.

Real data are N(0, 1). A generation fits (mean, standard deviation) by maximum likelihood (ddof = 0) to
its pool -- the whole pool: a fixed training budget has no meaning for a closed-form fit -- and samples
from the fit. The known behaviour (Shumailov et al. 2024; Gerstgrasser et al. 2024): in `replace` the
fitted variance shrinks, E[s_t^2] = ((n-1)/n)^t, and the error random-walks away; in `accumulate` the
error stays bounded.

The toy watermark detector is a stand-in, since a real number carries no bits: each synthetic item's
z-score is N(`strength`, 1) and a real item's N(0, 1) (drawn reproducibly from the item's value), and an
item is flagged when its one-sided p-value is at most the FPR; with `marked_share` < 1 only the marked
synthetic items carry it. The toy has no pixels, so the channel does not apply (`transmit` passes items
unchanged). Its Fréchet distance is exact:
FD(N(m, s^2), N(0, 1)) = m^2 + (s - 1)^2.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from scipy import stats

from bitmark.benchmarks.collapse.batch import Batch
from bitmark.benchmarks.collapse.config import CollapseConfig
from bitmark.benchmarks.collapse.loop import marked_mask, step_seed


class GaussianWorld:
    name = "toy-gaussian"

    def __init__(self, cfg: CollapseConfig, strength: float = 4.0):
        self.cfg, self.strength = cfg, strength

    def real(self, seed: int, start: int, n: int) -> Batch:
        x = np.random.default_rng([seed, start, 11]).standard_normal((n, 1))
        return Batch(x, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool))

    def sample(self, model: tuple[float, float], n: int, seed: int) -> Batch:
        mu, sigma = model
        x = mu + sigma * np.random.default_rng([seed, 5]).standard_normal((n, 1))
        marked = marked_mask(n, self.cfg.marked_share, seed)
        return Batch(x, np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), marked=marked)

    def transmit(self, batch: Batch, seed) -> Batch:
        return batch

    def fit(self, model, pool: Batch, seed: int) -> tuple[tuple[float, float], dict[str, Any]]:
        x = pool.items[:, 0]
        return (float(x.mean()), float(x.std())), {}

    def generation_zero(self, seed: int):
        real = self.real(seed, 10**6, self.cfg.samples)  # generation 0: fitted to real data
        model, _ = self.fit(None, real, seed)
        samples = self.sample(model, self.cfg.samples, step_seed(seed, 0))
        return model, samples, self.measure(model, samples, real)

    def flagged(self, batch: Batch, fpr: float) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(batch.items.tobytes()))
        z = rng.standard_normal(len(batch)) + self.strength * batch.marked
        return stats.norm.sf(z) <= fpr

    def selection_features(self, batch: Batch) -> np.ndarray:
        return batch.items

    def log_likelihood(self, model, batch: Batch) -> np.ndarray:
        mu, sigma = model
        return stats.norm.logpdf(batch.items[:, 0], mu, max(sigma, 1e-12))

    def measure(self, model, samples: Batch, pool: Batch) -> dict[str, Any]:
        mu, sigma = model
        return {"mean": mu, "variance": sigma**2, "fd": mu**2 + (sigma - 1) ** 2}
