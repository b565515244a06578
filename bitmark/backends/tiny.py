"""A tiny random configuration of an Infinity code tree, for plumbing checks without checkpoints.

Built only for bitmark's test stand-in (tests/fake_infinity, marked `BITMARK_STANDIN`): a fixed random
class-conditional map with Infinity's sampling call pattern and a random BSQ-like VAE, at a 5-scale
schedule up to 8x8 tokens (128x128 pixels). Prompts become its 4 class labels by a CRC-32 of the text.
Its VAE's decoder is not the inverse of its encoder: about half the sampled bits come back from pixels,
so any figure read from pixels is at chance by construction.
Every figure from it is about bitmark's plumbing, never about a real model; the backend's description
says so and the benchmarks record it.
"""

from __future__ import annotations

import importlib
import sys
import zlib
from pathlib import Path
from typing import Sequence

from bitmark.adapters.infinity.loading import MODEL_MODULE, VAE_MODULE, import_infinity
from bitmark.backends.base import NotSupported

TINY_SCHEDULE = [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 6, 6), (1, 8, 8)]


def use_source_tree(src: str | Path) -> None:
    """Import `infinity` from this folder from now on (a clone of Infinity, or tests/fake_infinity)."""
    src = Path(src).resolve()
    if not (src / "infinity" / "__init__.py").is_file() and not (src / "infinity" / "models").is_dir():
        raise FileNotFoundError(f"{src}: no infinity/ package in this folder (give the root of an Infinity clone)")
    for name in [m for m in sys.modules if m == "infinity" or m.startswith("infinity.")]:
        del sys.modules[name]
    if str(src) in sys.path:
        sys.path.remove(str(src))
    sys.path.insert(0, str(src))
    importlib.invalidate_caches()


def is_standin() -> bool:
    """Whether the importable `infinity` package is bitmark's test stand-in."""
    return bool(getattr(import_infinity("infinity"), "BITMARK_STANDIN", False))


def tiny_infinity_backend(src: str | Path | None = None, prompts: Sequence[str] | None = None, batch_size: int = 16,
                          bits: int = 16):
    """An InfinityBackend over a tiny random configuration of the stand-in at `src` (or the importable one)."""
    from bitmark.backends.infinity import InfinityBackend

    if src is not None:
        use_source_tree(src)
    if not is_standin():
        raise NotSupported(
            "a tiny random configuration is built only for bitmark's test stand-in (tests/fake_infinity); "
            "for Infinity's real code give its checkpoints (--vae, --infinity-model, --text-encoder)"
        )
    model_module, vae_module = import_infinity(MODEL_MODULE), import_infinity(VAE_MODULE)
    vae = vae_module.FakeBSQVAE(codebook_dim=bits, patch_size=16)
    model = model_module.Infinity(vae_local=vae, num_classes=4)
    origin = Path(model_module.__file__).resolve().parents[2]

    def labels(texts: Sequence[str]) -> list[int]:
        return [zlib.crc32(t.encode()) % model.num_classes for t in texts]

    return InfinityBackend(
        model, vae, TINY_SCHEDULE, labels, prompts=prompts, cfg=3.0, tau=1.0, batch_size=batch_size, module=model_module,
        description=f"the STAND-IN for Infinity at {origin} (tiny random configuration, {bits}-bit tokens, 128x128) -- "
                    "not Infinity: its random VAE does not invert its decoder (about 50% of the bits come back from pixels), "
                    "so figures from pixels are at chance by construction; they test bitmark's plumbing only",
    )
