"""Classical image attacks: compression, geometry and value changes (DESIGN §7 grids).

Geometric attacks resize back to the input size (Lanczos), so a detector sees the same grid.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from bitmark.attacks.base import Attack


class Identity(Attack):
    name, unit, range, neutral, grid = "none", "-", (0.0, 0.0), 0.0, (0.0,)
    description = "no change (the reference row of a benchmark)"


def _reencode(image: Image.Image, fmt: str, **options) -> Image.Image:
    """Encode and decode in memory with Pillow's real codec."""
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


class JPEG(Attack):
    name, unit, range, neutral = "jpeg", "quality", (10.0, 100.0), None
    grid = (90.0, 75.0, 50.0, 30.0, 10.0)
    description = "Pillow's JPEG encoder in memory, 4:2:0 chroma subsampling; even quality 100 is lossy"

    def apply(self, image, rng):
        return _reencode(image, "JPEG", quality=int(round(self.strength)), subsampling="4:2:0")


class WebP(Attack):
    name, unit, range, neutral = "webp", "quality", (10.0, 100.0), None
    grid = (90.0, 75.0, 50.0, 30.0, 10.0)
    description = "Pillow's lossy WebP encoder in memory"

    def apply(self, image, rng):
        return _reencode(image, "WEBP", quality=int(round(self.strength)))


def _crop_resize(image: Image.Image, keep: float, left_frac: float, top_frac: float) -> Image.Image:
    w, h = image.size
    cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
    left, top = round((w - cw) * left_frac), round((h - ch) * top_frac)
    return image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.LANCZOS)


class CenterCrop(Attack):
    name, unit, range, neutral = "crop", "kept side fraction", (0.5, 1.0), 1.0
    grid = (0.95, 0.9, 0.75, 0.71, 0.5)
    description = "centre crop keeping this fraction of each side, resized back"

    def apply(self, image, rng):
        return _crop_resize(image, self.strength, 0.5, 0.5)


class RandomCrop(Attack):
    name, unit, range, neutral = "random_crop", "kept side fraction", (0.5, 1.0), 1.0
    grid = (0.95, 0.9, 0.75, 0.5)
    description = "crop at a random place keeping this fraction of each side, resized back"

    def apply(self, image, rng):
        return _crop_resize(image, self.strength, rng.random(), rng.random())


class Aspect(Attack):
    name, unit, range, neutral = "aspect", "kept width fraction", (0.5, 1.0), 1.0
    grid = (0.9, 0.8, 0.7)
    description = "keep this fraction of the width (centred, full height), stretched back to the input size: an aspect change"

    def apply(self, image, rng):
        w, h = image.size
        cw = max(1, round(w * self.strength))
        left = round((w - cw) / 2)
        return image.crop((left, 0, left + cw, h)).resize((w, h), Image.Resampling.LANCZOS)


class Resize(Attack):
    name, unit, range, neutral = "resize", "scale", (0.25, 1.0), 1.0
    grid = (0.9, 0.75, 0.5)
    description = "downscale by this factor (Lanczos) and back up to the input size"

    def apply(self, image, rng):
        w, h = image.size
        small = image.resize((max(1, round(w * self.strength)), max(1, round(h * self.strength))), Image.Resampling.LANCZOS)
        return small.resize((w, h), Image.Resampling.LANCZOS)


class Rotate(Attack):
    name, unit, range, neutral = "rotate", "degrees", (0.0, 90.0), 0.0
    grid = (5.0, 15.0, 30.0, 45.0)  # 90 is allowed, but on a square it is a lossless permutation, not "more"
    description = "rotate counter-clockwise about the centre, bilinear, corners filled with black"

    def apply(self, image, rng):
        return image.rotate(self.strength, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


class HFlip(Attack):
    name, unit, range, neutral, grid = "hflip", "0 = off, 1 = on", (0.0, 1.0), 0.0, (1.0,)
    description = "mirror left to right"

    def apply(self, image, rng):
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.strength >= 0.5 else image


class Blur(Attack):
    name, unit, range, neutral = "blur", "Gaussian radius (sigma) in pixels", (0.0, 4.0), 0.0
    grid = (0.5, 1.0, 2.0)
    description = "Pillow's Gaussian blur with this standard deviation"

    def apply(self, image, rng):
        return image.filter(ImageFilter.GaussianBlur(radius=self.strength))


class Noise(Attack):
    name, unit, range, neutral = "noise", "sigma on [0, 1]", (0.0, 0.3), 0.0
    grid = (0.02, 0.05, 0.1)
    description = "additive Gaussian noise in float, clipped to [0, 1] (never wrapped), rounded to uint8"

    def apply(self, image, rng):
        x = np.asarray(image, dtype=np.float64) / 255.0
        x = np.clip(x + rng.normal(0.0, self.strength, x.shape), 0.0, 1.0)
        return Image.fromarray(np.round(x * 255.0).astype(np.uint8))


class _Enhance(Attack):
    unit, range, neutral = "factor", (0.25, 4.0), 1.0
    grid = (0.5, 0.75, 1.5, 2.0)
    enhancer = ImageEnhance.Brightness

    def apply(self, image, rng):
        return self.enhancer(image).enhance(self.strength)


class Brightness(_Enhance):
    name, enhancer = "brightness", ImageEnhance.Brightness
    description = "scale brightness (Pillow ImageEnhance); 1 = unchanged"


class Contrast(_Enhance):
    name, enhancer = "contrast", ImageEnhance.Contrast
    description = "scale contrast about the mean grey (Pillow ImageEnhance); 1 = unchanged"


class Saturation(_Enhance):
    name, enhancer = "saturation", ImageEnhance.Color
    description = "scale colour saturation (Pillow ImageEnhance.Color); 1 = unchanged"
