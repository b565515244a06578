"""The embedded tokenizer: a small conv autoencoder whose d-channel latent grid is quantised by multi-scale
residual binary spherical quantisation (BSQ) over a scale schedule.

Quantisation, coarse to fine: area-downsample the residual to the scale's grid, take the sign of each
token's vector (BSQ: the sign of the l2-normalised vector, code +-1/sqrt(d)), upsample it (nearest) back to
the latent grid, scale it by the scale's gain and subtract it from the residual. The decoder sees the sum.

Why these choices (DESIGN §5, "recoverability decides everything"): with scales that divide each other,
nearest upsampling and area downsampling (downsample∘upsample = identity) and gains that halve from scale
to scale, a coarse code outweighs all finer ones together, so greedy re-quantisation of a pyramid's own
latent returns exactly that pyramid -- re-encoding can then only lose bits through the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bitmark.io.images import fit


@dataclass
class TokenizerConfig:
    schedule: tuple[int, ...] = (1, 2, 4, 8)  # token-grid sides, coarse to fine; the last is the latent grid
    d: int = 32  # bits per token
    gain_ratio: float = 0.75  # gain of scale s is gain_ratio ** s (<= 0.5: re-quantisation is exact)
    channels: tuple[int, ...] = (0, 48, 96)  # widths at full, half, quarter resolution; 0 skips the first
    image_size: int = 32
    skip: bool = True  # linear patch paths pixels <-> latent beside the conv nets (see Tokenizer)

    def __post_init__(self):
        self.schedule, self.channels = tuple(self.schedule), tuple(self.channels)
        grid = self.schedule[-1]
        if self.image_size % grid or any(grid % s for s in self.schedule):
            raise ValueError(f"every scale must divide the latent grid {grid}, and the grid the image size")

    @property
    def gains(self) -> list[float]:
        return [self.gain_ratio**s for s in range(len(self.schedule))]

    @property
    def bits_per_image(self) -> int:
        return self.d * sum(s * s for s in self.schedule)


def schedule_for(image_size: int) -> tuple[int, ...]:
    """The default scale schedule of an image size: sides 1, 2, 4, ... up to a latent grid of a quarter of
    the image (the encoder downsamples by 4): (1, 2, 4, 8) at 32 (2,720 bits at d = 32), (1, 2, 4, 8, 16)
    at 64 (10,912 bits). Halving sides keep every scale a divisor of the next (exact re-quantisation)."""
    grid = image_size // 4
    if image_size % 4 or grid & (grid - 1):
        raise ValueError(f"image size must be 4 times a power of two, got {image_size}")
    return tuple(2**k for k in range(grid.bit_length()))


def config_for_size(image_size: int = 32, **overrides) -> TokenizerConfig:
    """The default tokenizer at `image_size` (the schedule from `schedule_for`; 32 gives TokenizerConfig())."""
    return TokenizerConfig(**{"schedule": schedule_for(image_size), "image_size": image_size, **overrides})


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


def _encoder(cfg: TokenizerConfig) -> nn.Sequential:
    c0, c1, c2 = cfg.channels
    stem = [nn.Conv2d(3, c0, 3, padding=1), ResBlock(c0), nn.Conv2d(c0, c1, 4, 2, 1)] if c0 else [nn.Conv2d(3, c1, 4, 2, 1)]
    return nn.Sequential(
        *stem, ResBlock(c1),
        nn.Conv2d(c1, c2, 4, 2, 1), ResBlock(c2), ResBlock(c2),
        nn.GroupNorm(8, c2), nn.SiLU(), nn.Conv2d(c2, cfg.d, 1),
    )


def _decoder(cfg: TokenizerConfig) -> nn.Sequential:
    c0, c1, c2 = cfg.channels
    if c0:
        tail = [nn.Upsample(scale_factor=2), nn.Conv2d(c1, c0, 3, padding=1), ResBlock(c0),
                nn.GroupNorm(8, c0), nn.SiLU(), nn.Conv2d(c0, 3, 3, padding=1)]
    else:
        tail = [nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, 12, 3, padding=1), nn.PixelShuffle(2)]
    return nn.Sequential(
        nn.Conv2d(cfg.d, c2, 3, padding=1), ResBlock(c2), ResBlock(c2),
        nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 3, padding=1), ResBlock(c1), *tail,
    )


class Quantizer:
    """Multi-scale residual BSQ on (B, d, G, G) latents; bits are bool (B, h, w, d) per scale."""

    def __init__(self, cfg: TokenizerConfig):
        self.schedule, self.gains, self.d, self.grid = cfg.schedule, cfg.gains, cfg.d, cfg.schedule[-1]

    def up(self, code: torch.Tensor) -> torch.Tensor:
        return code if code.shape[-1] == self.grid else F.interpolate(code, size=(self.grid,) * 2, mode="nearest")

    @staticmethod
    def down(x: torch.Tensor, side: int) -> torch.Tensor:
        return x if x.shape[-1] == side else F.adaptive_avg_pool2d(x, side)

    def code(self, bits: torch.Tensor) -> torch.Tensor:
        """bool (B, h, w, d) -> codes (B, d, h, w) of +-1/sqrt(d)."""
        return (bits.permute(0, 3, 1, 2).float() * 2 - 1) / math.sqrt(self.d)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Greedy coarse-to-fine quantisation: (quantised latent with straight-through gradient, bits)."""
        residual, zq, bits = z.detach(), torch.zeros_like(z), []
        for side, gain in zip(self.schedule, self.gains):
            b = (self.down(residual, side) >= 0).permute(0, 2, 3, 1)
            step = gain * self.up(self.code(b))
            zq, residual = zq + step, residual - step
            bits.append(b.contiguous())
        return z + (zq - z).detach(), bits

    def latent(self, bits: Sequence[torch.Tensor]) -> torch.Tensor:
        """The quantised latent of a pyramid (the decoder's input)."""
        return sum(gain * self.up(self.code(b)) for b, gain in zip(bits, self.gains))


def to_unit(images) -> torch.Tensor:
    """uint8 images, (B, H, W, 3) array or list of (H, W, 3) arrays -> float (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(list(images)))).permute(0, 3, 1, 2).float() / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3), rounded as a PNG would store it."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class Tokenizer(nn.Module):
    """Conv autoencoder + quantiser. With `skip`, a linear map from each latent cell to its pixel patch is
    added to the decoder (and the transpose direction to the encoder). Without it the autoencoder is a
    projector onto natural images: decoding a code the sampler perturbed and re-encoding it returns the
    *unperturbed* bits, exactly the ones the watermark moved. The linear path keeps every code visible in
    the pixels (measured: 8-19% of flipped bits came back without it, 69-89% with it)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = _encoder(cfg), _decoder(cfg)
        self.quantizer = Quantizer(cfg)
        patch = cfg.image_size // cfg.schedule[-1]
        self.patch = patch
        if cfg.skip:  # zero-initialised, so training starts from the plain autoencoder
            self.encoder_skip = nn.Conv2d(3 * patch * patch, cfg.d, 1)
            self.decoder_skip = nn.Conv2d(cfg.d, 3 * patch * patch, 1)
            for layer in (self.encoder_skip, self.decoder_skip):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def skip_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder_skip.parameters(), *self.decoder_skip.parameters()] if self.cfg.skip else []

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W) -> continuous latent (B, d, G, G)."""
        x = x * 2 - 1
        z = self.encoder(x)
        return z + self.encoder_skip(F.pixel_unshuffle(x, self.patch)) if self.cfg.skip else z

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> images in about [0, 1] (not clamped, so losses see the overshoot)."""
        x = self.decoder(z)
        if self.cfg.skip:
            x = x + F.pixel_shuffle(self.decoder_skip(z), self.patch)
        return (x + 1) / 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        zq, bits = self.quantizer.quantize(self.encode_latent(x))
        return self.decode_latent(zq), bits

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) that `encode` fits images to."""
        return (self.cfg.image_size, self.cfg.image_size)

    def fit_image(self, image) -> np.ndarray:
        """The fit `encode` applies (readers call it as soon as a file is decoded, to hold small images only)."""
        return fit(np.asarray(image), self.cfg.image_size)

    @torch.no_grad()
    def encode(self, images) -> list[torch.Tensor]:
        """uint8 RGB images of any size (fitted to image_size, see `bitmark.io.images.fit`) -> bit pyramid."""
        fitted = [fit(np.asarray(im), self.cfg.image_size) for im in images]
        return self.quantizer.quantize(self.encode_latent(to_unit(fitted)))[1]

    @torch.no_grad()
    def decode(self, bits: Sequence[torch.Tensor]) -> np.ndarray:
        """Bit pyramid -> uint8 images (B, H, W, 3)."""
        return to_uint8(self.decode_latent(self.quantizer.latent(bits)))

    @torch.no_grad()
    def roundtrip(self, images) -> np.ndarray:
        """Through the continuous path (encode, decode, no quantisation): the autoencoder-regeneration attack."""
        fitted = [fit(np.asarray(im), self.cfg.image_size) for im in images]
        return to_uint8(self.decode_latent(self.encode_latent(to_unit(fitted))))

