"""The generator-backend protocol shared by the benchmarks and the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from bitmark.core.keys import WatermarkKey
from bitmark.core.pyramid import Pyramid
from bitmark.core.sampler import PlainSampler, WatermarkSampler


class NotSupported(ValueError):
    """A benchmark or option that this backend cannot run (the message says why)."""


@dataclass
class Samples:
    """What one `sample` call drew: RGB uint8 images (N, H, W, 3), the sampled bits per scale (N, h, w, d), and
    each image's conditioning (a class index for the embedded model, a prompt for Infinity)."""

    images: np.ndarray
    pyramid: Pyramid
    conditioning: list[Any] = field(default_factory=list)


@runtime_checkable
class GeneratorBackend(Protocol):
    """A generator the benchmarks can sample and read back.

    kind: "embedded" or "infinity"; conditioning: "class" or "prompt"; retrainable: whether bitmark can train
    this generator (radioactivity and collapse retrain it); description: what exactly runs, for the records.
    """

    kind: str
    conditioning: str
    retrainable: bool
    description: str

    def default_conditioning(self, n: int) -> list[Any]: ...

    def sample(self, sampler: PlainSampler, n: int, conditioning: Sequence[Any] | None = None, seed: int = 0,
               progress: bool = True) -> Samples: ...

    def encode(self, images: np.ndarray) -> Pyramid: ...

    def real_images(self, n: int, seed: int = 0) -> np.ndarray | None: ...


def make_sampler(key: WatermarkKey | None, top_k: int = 0, top_p: float = 1.0, bias_from: int | None = None,
                 min_entropy: float = 0.0) -> PlainSampler:
    """The watermark sampler of `key`, or a plain one for key=None (same uniforms, so the same image at δ = 0)."""
    if key is None:
        return PlainSampler(top_k=top_k, top_p=top_p)
    return WatermarkSampler(key, top_k=top_k, top_p=top_p, bias_from=bias_from, min_entropy=min_entropy)


def require(backend: GeneratorBackend, what: str, *, retrainable: bool = False, kind: str | None = None) -> None:
    """Refuse with a clear message when `what` (a benchmark) needs something this backend lacks."""
    if retrainable and not backend.retrainable:
        raise NotSupported(
            f"{what} retrains the generator on watermarked images, and bitmark cannot train {backend.kind} "
            f"({backend.description}); it runs with --backend embedded only"
        )
    if kind is not None and backend.kind != kind:
        raise NotSupported(f"{what} needs the {kind} backend, not {backend.kind} ({backend.description})")


def as_rgb_uint8(images: Any) -> np.ndarray:
    """A batch of images (tensor or array, (N, H, W, 3) uint8) as a numpy array."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    return images
