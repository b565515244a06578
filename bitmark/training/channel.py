"""A random image channel for training (issue 13): what a watermarked image meets between the generator and the
detector -- JPEG, WebP, resizing, blur, noise, colour jitter -- applied to float (B, 3, H, W) images in [0, 1].

Why: the tokenizer is trained so that encode(channel(decode(bits))) gives the bits back. Ops that have a
gradient (resize, blur, noise, jitter) pass it; real codecs (Pillow's JPEG and WebP) have none, so they pass
the gradient straight through (the forward value is the codec's, the backward is the identity) -- real
codecs rather than a surrogate, so the encoder learns what the attacks actually do.

Each image meets one op drawn uniformly from the registry, at a strength drawn uniformly in [0, ramp], where
`ramp` in [0, 1] grows from weak to full over the first part of training (see `ramp`). Every random draw
comes from the training step's torch generator, so a resumed run sees the same channel.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

Op = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]  # (1, 3, H, W), strength in [0, 1], rng
OPS: dict[str, Op] = {}


def op(name: str) -> Callable[[Op], Op]:
    def register(fn: Op) -> Op:
        OPS[name] = fn
        return fn

    return register


def _uniform(rng: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=rng))


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y's value with x's gradient (for ops without one)."""
    return x + (y - x).detach()


def _codec(x: torch.Tensor, fmt: str, quality: int) -> torch.Tensor:
    """Pillow's real encoder and decoder in memory, as the attacks run them (JPEG with 4:2:0 chroma)."""
    im = Image.fromarray((x[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    im.save(buf, format=fmt, quality=quality, **({"subsampling": "4:2:0"} if fmt == "JPEG" else {}))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255.0
    return straight_through(x, torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0))


@op("identity")
def identity(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    return x


@op("jpeg")
def jpeg(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    """Quality from 95 (s = 0) down to 40 (s = 1)."""
    return _codec(x, "JPEG", round(95 - 55 * s))


@op("webp")
def webp(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    """Quality from 95 (s = 0) down to 40 (s = 1)."""
    return _codec(x, "WEBP", round(95 - 55 * s))


@op("resize")
def resize(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    """Down by a factor from 1 (s = 0) to 0.5 (s = 1), antialiased, and back up (bicubic): differentiable."""
    h, w = x.shape[-2:]
    f = 1 - 0.5 * s
    small = F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)


@op("blur")
def blur(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    """Gaussian blur with sigma up to 1.2 px, reflect-padded, separable: differentiable."""
    sigma = 1.2 * s
    if sigma < 0.05:
        return x
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k, groups=3)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.transpose(-1, -2), groups=3)


@op("noise")
def noise(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise, sigma up to 0.06 on [0, 1]."""
    return x + 0.06 * s * torch.randn(x.shape, generator=rng)


@op("jitter")
def jitter(x: torch.Tensor, s: float, rng: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 - 0.4 s, 1 + 0.4 s] (as Pillow's
    ImageEnhance does: towards black, the mean grey and the grey image)."""
    b, c, sat = (_uniform(rng, 1 - 0.4 * s, 1 + 0.4 * s) for _ in range(3))
    x = x * b
    x = x.mean() + (x - x.mean()) * c
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return grey + (x - grey) * sat


def names() -> list[str]:
    return sorted(OPS)


def ramp(step: int, total: int, share: float = 0.3) -> float:
    """Channel strength at a step: linear from 0.2 to 1 over the first `share` of training, then 1
    (weak attacks first, so the decoder learns to carry the bits before it must carry them through JPEG 40)."""
    return 1.0 if share <= 0 else min(1.0, 0.2 + 0.8 * step / max(1.0, share * total))


def apply(x: torch.Tensor, strength: float, rng: torch.Generator, ops: list[str] | None = None) -> torch.Tensor:
    """One random op per image (from `ops`, default every registered op) at a random strength in
    [0, strength]; output clamped to [0, 1] and rounded to uint8 levels (straight-through), as a file stores it."""
    ops = ops or names()
    out = []
    for i in range(len(x)):
        name = ops[int(torch.randint(len(ops), (), generator=rng))]
        s = strength * float(torch.rand((), generator=rng))
        out.append(OPS[name](x[i : i + 1], s, rng))
    y = torch.cat(out).clamp(0, 1)
    return straight_through(y, (y * 255).round() / 255)
