"""The shipped bitmark generator as a world for the collapse loop.

* generation 0 is the shipped photos generator (trained on the whole training split); its watermarked
  samples and metrics are shared by every arm and regime of a seed;
* `fit` fine-tunes a copy of the previous generation's model with `bitmark.training.recipes.fit_generator` for the
  fixed budget steps x batch, on a uniform draw of at most steps x batch distinct pool images (training
  draws its batches from them with replacement, so each draw is still uniform over the whole pool; this
  keeps the tokenizer's encoding cost independent of the pool's size);
* samples are drawn *with the watermark* of a fixed benchmark key, classes round-robin -- a share
  `marked_share` of them; the others by the same model with the plain sampler (an unmarked copy of it);
* every scraped image passes the run's channel (`channel.Channel`) before any filter sees it;
* the watermark filter re-encodes the pixels (`bitmark.detectors.WatermarkFilter`), never the sampled bits;
* real images come from a per-seed permutation of the training split (the "scrape").
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bitmark.benchmarks.collapse.batch import Batch
from bitmark.benchmarks.collapse.channel import Channel
from bitmark.benchmarks.collapse.config import CollapseConfig
from bitmark.benchmarks.collapse.loop import marked_mask, step_seed
from bitmark.benchmarks.collapse.metrics import (
    class_coverage,
    class_entropy,
    memorization_ratio,
)

log = logging.getLogger(__name__)


@torch.no_grad()
def bit_log_likelihood(gen, tok, images: np.ndarray, classes: np.ndarray, batch: int = 128) -> np.ndarray:
    """Mean log-likelihood per bit of each image's tokenizer code under `gen`, teacher-forced and
    class-conditional (no guidance): the model's own confidence in an image."""
    out = []
    for i in range(0, len(images), batch):
        bits = tok.encode(images[i : i + batch])
        c = torch.as_tensor(classes[i : i + batch], dtype=torch.long)
        logits = gen.forward(bits[:-1], c)
        target = torch.cat([b.flatten(1, 2) for b in bits], dim=1).float()
        ll = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2))
        out.append(ll.numpy())
    return np.concatenate(out)


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Images area-downsampled to 8x8 in [0, 1] (192 numbers): the space of the entropy-raising filter,
    kept apart from the frozen classifier that scores the runs."""
    x = images.astype(np.float32) / 255.0
    n, h, w, c = x.shape
    return x.reshape(n, 8, h // 8, 8, w // 8, c).mean((2, 4)).reshape(n, -1)


class BitmarkWorld:
    name = "bitmark"

    def __init__(self, cfg: CollapseConfig, data: str = "photos", workdir: Path | None = None):
        from bitmark.evaluation.keys import fixed_key
        from bitmark.io.datasets import load_dataset
        from bitmark.models import load_classifier, load_generator

        self.cfg = cfg
        self.gen0, self.tok = load_generator(data)
        self.clf = load_classifier(data)
        self.num_classes = self.gen0.cfg.num_classes
        self.key = fixed_key(0)
        self.train = load_dataset(data, "train")
        held = load_dataset(data, "heldout").images
        if cfg.heldout is not None:
            held = held[np.random.default_rng(0).choice(len(held), cfg.heldout, replace=False)]
        self.heldout_features, _ = self.clf.embed(held)
        self.data, self.resync, self.null = data, cfg.resync, cfg.null
        self.filters = {f: self._filter(f) for f in (0.01, 0.1)}
        self.workdir = Path(workdir or tempfile.gettempdir())
        self.channel = Channel(cfg.channel)
        self._train_pool: Batch | None = None

    # ------------------------------------------------------------------ data and models

    def real(self, seed: int, start: int, n: int) -> Batch:
        order = np.random.default_rng([seed, 11]).permutation(len(self.train))[start : start + n]
        if len(order) < n:
            raise ValueError(f"the training split has {len(self.train)} images; asked for {start + n}")
        return Batch(self.train.images[order], self.train.labels[order].astype(np.int64), np.zeros(n, dtype=bool))

    def sample(self, model, n: int, seed: int) -> Batch:
        """n samples, classes round-robin; those of `marked_mask` with the watermark, the rest without (their
        sampling seed is offset by 500, apart from every generation's step seed while T < 500)."""
        from bitmark.models.sampling import sample_images

        classes = torch.arange(n) % self.num_classes
        marked = marked_mask(n, self.cfg.marked_share, seed)
        images = np.zeros((n, *self.train.images.shape[1:]), dtype=np.uint8)
        for mask, key, s in ((marked, self.key, seed), (~marked, None, seed + 500)):
            if mask.any():
                images[mask], _ = sample_images(model, self.tok, classes[torch.from_numpy(mask)], key=key, seed=s,
                                                progress=False)
        return Batch(images, classes.numpy().astype(np.int64), np.ones(n, dtype=bool), marked=marked)

    def transmit(self, batch: Batch, seed) -> Batch:
        return self.channel(batch, seed)

    def fit(self, model, pool: Batch, seed: int) -> tuple[Any, dict[str, Any]]:
        from bitmark.training.loop import TrainConfig
        from bitmark.training.recipes import fit_generator

        cfg = self.cfg
        budget = cfg.steps * cfg.batch_size
        pick = np.random.default_rng([seed, 13]).permutation(len(pool))[:budget]
        train_cfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, warmup=0,
                                checkpoint_every=10**9)
        run_dir = Path(tempfile.mkdtemp(prefix="collapse-fit-", dir=self.workdir))
        try:
            gen, summary = fit_generator(self.tok, pool.items[pick], pool.labels[pick], self.num_classes, train_cfg,
                                         run_dir, init=model, desc="fine-tune")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return gen, {"train_loss": round(summary["final"].get("bce", math.nan), 5), "train_s": summary["wall_s"]}

    def generation_zero(self, seed: int) -> tuple[Any, Batch, dict[str, Any]]:
        if self._train_pool is None:  # what the shipped generator was trained on
            n = len(self.train) if self.cfg.gen0_pool is None else self.cfg.gen0_pool
            pick = np.random.default_rng(0).permutation(len(self.train))[:n]
            self._train_pool = Batch(self.train.images[pick], self.train.labels[pick], np.zeros(n, dtype=bool))
        samples = self.sample(self.gen0, self.cfg.samples, seed=step_seed(seed, 0))
        return self.gen0, samples, self.measure(self.gen0, samples, self._train_pool)

    # ------------------------------------------------------------------ what the filters see

    def flagged(self, batch: Batch, fpr: float) -> np.ndarray:
        if fpr not in self.filters:
            self.filters[fpr] = self._filter(fpr)
        return ~self.filters[fpr].split(batch.items).keep_mask

    def _filter(self, fpr: float):
        from bitmark.detectors import WatermarkFilter

        return WatermarkFilter(self.key, fpr=fpr, encoder=self.tok, resync=self.resync, data=self.data, null=self.null)

    def selection_features(self, batch: Batch) -> np.ndarray:
        return pixel_features(batch.items)

    def log_likelihood(self, model, batch: Batch) -> np.ndarray:
        return bit_log_likelihood(model, self.tok, batch.items, batch.labels)

    # ------------------------------------------------------------------ metrics

    def features(self, batch: Batch) -> np.ndarray:
        if batch.features is None:
            batch.features, _ = self.clf.embed(batch.items)
        return batch.features

    def measure(self, model, samples: Batch, pool: Batch) -> dict[str, Any]:
        """DESIGN §8 on the samples: quality against held-out real images, classes, memorisation against
        the pool the model was trained on, and the z-scores of the model's own watermarked outputs (the
        marked samples only; NaN when none is), re-encoded from the pixels; the flagged share is of all samples."""
        from bitmark.evaluation.quality import (
            frechet_distance,
            kernel_inception_distance,
            precision_recall_density_coverage,
        )

        feats, pred = self.clf.embed(samples.items)
        samples.features = feats  # the next generation's pool may hold these samples: embed them once
        held = self.heldout_features
        kid, _ = kernel_inception_distance(feats, held, subsets=10, subset_size=min(100, len(feats)))
        prdc = precision_recall_density_coverage(held, feats, k=5)
        z = self.filters[0.01].split(samples.items)
        own = z.z_score[samples.marked] if samples.marked.any() else np.full(1, np.nan)
        return {
            "fd": round(frechet_distance(feats, held), 4), "kid": round(kid, 5),
            **{k: round(v, 4) for k, v in prdc.items()},
            "class_accuracy": round(float(np.mean(pred == samples.labels)), 4),
            "class_coverage": round(class_coverage(pred, self.num_classes), 4),
            "class_entropy": round(class_entropy(pred, self.num_classes), 4),
            "memorization_ratio": round(memorization_ratio(feats, held, self.features(pool)), 4),
            "z_mean": round(float(np.mean(own)), 3), "z_median": round(float(np.median(own)), 3),
            "z_std": round(float(np.std(own)), 3), "own_flagged_share": round(len(z.dropped) / len(samples), 4),
        }
