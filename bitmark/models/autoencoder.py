"""An independently trained autoencoder: the stand-in for the SD-VAE of the regeneration-attack literature.

The watermark never saw it: its own architecture (a continuous 8-channel latent at a quarter of the
resolution, a 6× bottleneck; no quantiser, no skip paths), its own seed, and a plain reconstruction loss.
A round trip through it keeps what a good autoencoder keeps of natural images and nothing else, which is
the question the attack asks of the mark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from bitmark.io.images import fit
from bitmark.models.tokenizer import ResBlock, to_uint8, to_unit


@dataclass
class AutoencoderConfig:
    latent_channels: int = 8
    widths: tuple[int, ...] = (32, 64, 128)  # at full, half and quarter resolution
    image_size: int = 32

    def __post_init__(self):
        self.widths = tuple(self.widths)


class Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        a, b, c = cfg.widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, a, 3, padding=1), ResBlock(a), nn.Conv2d(a, b, 3, 2, 1), ResBlock(b),
            nn.Conv2d(b, c, 3, 2, 1), ResBlock(c), nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, cfg.latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, c, 3, padding=1), ResBlock(c), nn.Upsample(scale_factor=2),
            nn.Conv2d(c, b, 3, padding=1), ResBlock(b), nn.Upsample(scale_factor=2),
            nn.Conv2d(b, a, 3, padding=1), ResBlock(a), nn.GroupNorm(8, a), nn.SiLU(), nn.Conv2d(a, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W) -> reconstructions (not clamped, so the loss sees the overshoot)."""
        return (self.decoder(self.encoder(x * 2 - 1)) + 1) / 2

    @torch.no_grad()
    def roundtrip(self, images) -> np.ndarray:
        """uint8 images of any size (fitted to image_size) -> uint8 reconstructions (B, S, S, 3)."""
        fitted = [fit(np.asarray(im), self.cfg.image_size) for im in images]
        return np.concatenate([to_uint8(self(to_unit(fitted[i : i + 256]))) for i in range(0, len(fitted), 256)])
