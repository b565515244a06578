"""The frozen domain classifier (DESIGN §8): a small CNN whose penultimate features feed the quality
metrics (Fréchet distance, KID, precision/recall) and whose predictions give class accuracy and coverage.

It is trained once on the *held-out* real images only, so that it has never seen the generator's training
data; its accuracy on the training split is then an honest out-of-sample figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ClassifierConfig:
    num_classes: int
    width: int = 32
    feature_dim: int = 128
    image_size: int = 32  # the size it was trained at (the network pools globally; callers fit to this)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())

        self.body = nn.Sequential(
            block(3, w), block(w, w), nn.AvgPool2d(2),  # 16x16
            block(w, 2 * w), block(2 * w, 2 * w), nn.AvgPool2d(2),  # 8x8
            block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, cfg.feature_dim), nn.SiLU(),
        )
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, feature_dim) and predicted classes (N,) of uint8 images, in eval mode."""
        self.eval()
        feats, preds = [], []
        for i in range(0, len(images), batch):
            f = self.features(to_tensor(images[i : i + batch]))
            feats.append(f.numpy())
            preds.append(self.head(f).argmax(1).numpy())
        return np.concatenate(feats), np.concatenate(preds)


def augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 2 px (reflect-padded): cheap, label-preserving."""
    flip = torch.rand(x.shape[0], generator=rng) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=rng))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return padded[..., 2 + dy : 2 + dy + x.shape[-2], 2 + dx : 2 + dx + x.shape[-1]]


def classifier_loss(images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """A `training.train` loss over (N, 3, H, W) images and (N,) labels."""

    def loss_fn(model: Classifier, step: int, rng: torch.Generator):
        idx = torch.randint(0, len(labels), (batch_size,), generator=rng)
        logits = model(augment(images[idx], rng))
        loss = F.cross_entropy(logits, labels[idx])
        return loss, {"loss": loss.item(), "acc": (logits.argmax(1) == labels[idx]).float().mean().item()}

    return loss_fn
