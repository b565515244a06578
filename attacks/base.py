"""The attack interface and its registry.

An attack is a small class: a `name`, a strength with a `unit` and a valid `range`, the `neutral` strength
that leaves images unchanged (None when there is none, e.g. JPEG: even quality 100 alters pixels), a
default `grid` of strengths for benchmarks (mild to strong), and `apply(image, rng)` on one PIL image --
or, for attacks that run a model and are faster on a whole batch, `apply_batch(images, seed)`. Calling an
attack on a batch -- a uint8 array (B, H, W, 3) or a list of PIL images -- returns the same type;
randomised attacks draw from generators seeded by (seed, index in batch), so a batch is reproducible.
Extra arguments that an attack needs (a white-box attacker's green oracle, observed images) are keyword
arguments of its constructor, passed through `get(name, strength, **options)`.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np
from PIL import Image

REGISTRY: dict[str, type["Attack"]] = {}


class AttackError(ValueError):
    """An unknown attack, a malformed spec or a strength outside an attack's range."""


class Attack:
    name: ClassVar[str]
    unit: ClassVar[str]
    range: ClassVar[tuple[float, float]]
    neutral: ClassVar[float | None]
    grid: ClassVar[tuple[float, ...]]
    description: ClassVar[str] = ""
    changes_size: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()  # keyword arguments of the constructor beyond the strength

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def __init__(self, strength: float):
        self.check_strength(strength)
        self.strength = float(strength)

    @classmethod
    def check_strength(cls, strength: float) -> None:
        lo, hi = cls.range
        if not lo <= strength <= hi:
            raise AttackError(f"{cls.name}: strength {strength} is outside {lo}..{hi} ({cls.unit})")

    def __repr__(self) -> str:
        return f"{self.name}:{self.strength:g}"

    @property
    def spec(self) -> str:
        return repr(self)

    def apply(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        raise NotImplementedError

    def apply_batch(self, images: list[Image.Image], seed: int | Sequence[int]) -> list[Image.Image]:
        """Attack RGB images; the default applies `apply` to each with generator (seed, index)."""
        seed = [seed] if isinstance(seed, int) else list(seed)
        return [self.apply(p, np.random.default_rng([*seed, i])) for i, p in enumerate(images)]

    def __call__(self, images, seed: int = 0):
        """Attack a batch: uint8 (B, H, W, 3) array -> same; list of PIL images -> list of PIL images."""
        as_array = isinstance(images, np.ndarray)
        if as_array and (images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3):
            raise AttackError(f"expected uint8 images (B, H, W, 3), got {images.dtype} {images.shape}")
        pil = [Image.fromarray(x) for x in images] if as_array else list(images)
        if self.neutral is not None and self.strength == self.neutral:
            out = [p.copy() for p in pil]
        else:
            out = self.apply_batch([p.convert("RGB") for p in pil], seed)
        return np.stack([np.asarray(p, dtype=np.uint8) for p in out]) if as_array else out


class Chain(Attack):
    """Several attacks in order, written `jpeg:50+crop:0.7+brightness:1.3`."""

    unit, range, neutral, grid = "-", (0.0, 0.0), None, ()

    def __init__(self, parts: Sequence[Attack]):
        self.parts, self.strength = list(parts), 0.0
        self.changes_size = any(p.changes_size for p in self.parts)

    def __repr__(self) -> str:
        return "+".join(repr(p) for p in self.parts)

    def apply_batch(self, images: list[Image.Image], seed: int | Sequence[int]) -> list[Image.Image]:
        seed = [seed] if isinstance(seed, int) else list(seed)
        for k, p in enumerate(self.parts):  # part k draws from (seed, k, index): parts are independent
            if p.neutral is None or p.strength != p.neutral:
                images = p.apply_batch(images, [*seed, k])
        return images


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str, strength: float | None = None, **options) -> Attack:
    """An attack by name at a strength (default: the middle of its grid); `options` go to its constructor."""
    cls = _class(name)
    if strength is None:
        strength = cls.grid[len(cls.grid) // 2]
    return cls(strength, **options)


def parse(spec: str, **options) -> Attack:
    """`name:strength` or a chain `a:1+b:2`; a bare name takes its default strength. `options` go to
    every part that accepts them (e.g. `oracle=` for the white-box attacks)."""
    parts = []
    for name, strength in _items(spec):
        accepted = getattr(REGISTRY.get(name), "options", ())
        parts.append(get(name, strength, **{k: v for k, v in options.items() if k in accepted}))
    return parts[0] if len(parts) == 1 else Chain(parts)


def check(spec: str) -> None:
    """Refuse a spec with an unknown name or a strength out of range, as `parse` would, but without building
    the attacks (no models loaded, no oracle or observed images needed): for checking settings up front."""
    for name, strength in _items(spec):
        cls = _class(name)
        cls.check_strength(cls.grid[len(cls.grid) // 2] if strength is None else strength)


def _class(name: str) -> type[Attack]:
    cls = REGISTRY.get(name)
    if cls is None:
        raise AttackError(f"unknown attack {name!r}; known attacks: {', '.join(names())}")
    return cls


def _items(spec: str) -> list[tuple[str, float | None]]:
    """The (name, strength or None) of each part of a spec."""
    items = []
    for item in spec.split("+"):
        name, _, value = item.strip().partition(":")
        try:
            strength = float(value) if value else None
        except ValueError:
            raise AttackError(f"{item!r}: strength must be a number, as in jpeg:50") from None
        items.append((name.strip(), strength))
    if not items:
        raise AttackError("empty attack spec")
    return items
