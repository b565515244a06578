"""The learned keyless detector of `bitmark.evaluation.steganalysis`: a small CNN trained from scratch.

Its first layer is fixed high-pass filtering (`steganalysis.KERNELS`, 3x3, per colour channel): a CNN that
starts from raw pixels spends its few hundred training images learning to ignore content. The residuals
are then folded 4x4 -> channels (`pixel_unshuffle`), so every channel is one filter at one position of the
tokenizer's 4x4 latent cell and the network sees the patch phase without having to infer it; a 1x1 and two
3x3 convolutions over the 8x8 cell grid, global average pooling and a linear read-out follow. No data
augmentation: flips and shifts would move the phase and the position-keyed pattern it is meant to find.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bitmark.evaluation.steganalysis import KERNELS, PERIOD

FIRST = ("kb", "lap", "d2h", "d2v")  # the fixed first layer: 4 residuals per colour channel


def _kernels3x3() -> torch.Tensor:
    """The FIRST kernels centred in 3x3 frames, (4, 1, 3, 3)."""
    out = torch.zeros(len(FIRST), 1, 3, 3)
    for i, name in enumerate(FIRST):
        k = torch.as_tensor(KERNELS[name], dtype=torch.float32)
        top, left = (3 - k.shape[0]) // 2, (3 - k.shape[1]) // 2
        out[i, 0, top : top + k.shape[0], left : left + k.shape[1]] = k
    return out


def residual_planes(images: np.ndarray, period: int = PERIOD) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3*4*period², H/period, W/period): fixed high-pass residuals (grey levels / 8),
    folded by the tokenizer's latent cell (`period` px).

    Computed once per image set, outside training: the layer is fixed, so it needs no gradient."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2)
    b, c = x.shape[:2]
    k = _kernels3x3()
    r = nn.functional.conv2d(x.reshape(b * c, 1, *x.shape[2:]), k, padding=1)  # (B*3, 4, H, W)
    r = r.reshape(b, c * len(FIRST), *x.shape[2:]) / 8.0
    return nn.functional.pixel_unshuffle(r, period)


class CellNet(nn.Module):
    """1x1 mixing of the folded residuals, two 3x3 convolutions over the cell grid, average pool, linear."""

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3))).squeeze(1)


def cnn_trainer(epochs: int = 30, width: int = 16, batch_size: int = 32, lr: float = 3e-3,
                weight_decay: float = 1e-3):
    """A `steganalysis.Trainer` over `residual_planes` tensors: Adam with a cosine schedule for a fixed
    number of epochs (no early stopping, which would need a validation split the outer fold must not lend)."""

    def train(x: torch.Tensor, y: np.ndarray, seed: int):
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
            torch.manual_seed(seed)
            net = CellNet(x.shape[1], width)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        steps = epochs * -(-len(y) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
        target = torch.as_tensor(y, dtype=torch.float32)
        rng = np.random.default_rng(seed)
        loss_fn = nn.BCEWithLogitsLoss()
        net.train()
        for _ in range(epochs):
            order = torch.as_tensor(rng.permutation(len(y)))
            for i in range(0, len(y), batch_size):
                idx = order[i : i + batch_size]
                if len(idx) < 2:  # batch norm needs two
                    continue
                opt.zero_grad()
                loss_fn(net(x[idx]), target[idx]).backward()
                opt.step()
                sched.step()
        net.eval()

        def predict(z: torch.Tensor) -> np.ndarray:
            with torch.no_grad():
                return torch.sigmoid(net(z)).numpy()

        return predict

    return train
