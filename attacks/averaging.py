"""Pixel averaging (DESIGN §7): no model, no bits, no key -- only N observed watermarked images.

A mark whose green values are fixed per position leaves the same faint texture in every image. Averaging
the high-frequency residual (image minus its Gaussian blur) of N observed images cancels their content and
keeps that texture. The attacker then adds it to a clean image (`average_forge`) or subtracts it from a
watermarked one (`average_remove`), scaled so that the change has a target PSNR (default 30 dB).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from bitmark.attacks.base import Attack, AttackError
from bitmark.attacks.regeneration import to_array

BLUR_RADIUS = 1.0  # PIL GaussianBlur radius (pixels) of the low-pass that the residual removes


def residual(image: np.ndarray) -> np.ndarray:
    """float32 high-frequency residual of one uint8 RGB image: the image minus its Gaussian blur."""
    low = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)), dtype=np.float32)
    return image.astype(np.float32) - low


def average_pattern(images, reference=None) -> np.ndarray:
    """Mean residual of the observed images (minus that of `reference` clean images, when given), unit RMS."""
    arrays = to_array(images)
    if len({a.shape for a in arrays}) != 1:
        raise AttackError("pixel averaging needs observed images of one size")
    pattern = np.mean([residual(a) for a in arrays], axis=0)
    if reference is not None:
        pattern = pattern - np.mean([residual(a) for a in to_array(reference)], axis=0)
    rms = float(np.sqrt(np.mean(pattern**2)))
    return pattern / rms if rms > 0 else pattern


class _Averaging(Attack):
    unit, range, neutral, grid = "watermarked images observed", (1.0, 1e6), None, (10.0, 100.0, 1000.0)
    options = ("observed", "reference", "psnr")
    sign = +1.0  # +1 adds the pattern (forgery), -1 subtracts it (removal)

    def __init__(self, strength: float, observed=None, reference=None, psnr: float = 30.0):
        super().__init__(strength)
        if observed is None or len(observed) < strength:
            have = 0 if observed is None else len(observed)
            raise AttackError(f"{self.name}:{strength:g} needs observed= at least {math.ceil(strength)} watermarked images (got {have})")
        self.pattern = average_pattern(observed[: int(strength)], reference)
        self.amplitude = 255.0 * 10 ** (-psnr / 20)  # RMS change in pixel levels for that PSNR
        self.psnr = psnr

    def apply(self, image, rng):
        x = np.asarray(image, dtype=np.float32)
        p = self.pattern
        if p.shape != x.shape:  # another size: resize each channel of the pattern
            p = np.stack([np.asarray(Image.fromarray(p[..., c]).resize(image.size, Image.Resampling.BILINEAR)) for c in range(3)], -1)
        out = x + self.sign * self.amplitude * p
        return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


class AverageForge(_Averaging):
    name = "average_forge"
    description = "pixel averaging: add the mean high-frequency residual of N watermarked images (observed=) at 30 dB"


class AverageRemove(_Averaging):
    name = "average_remove"
    description = "pixel averaging: subtract the mean high-frequency residual of N watermarked images (observed=) at 30 dB"
    sign = -1.0
