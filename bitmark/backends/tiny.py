"""A tiny random configuration of an Infinity code tree, for plumbing checks without checkpoints.

* bitmark's test stand-in (tests/fake_infinity, marked `BITMARK_STANDIN`): a fixed random class-conditional
  map with Infinity's sampling call pattern and a random BSQ-like VAE, at a 5-scale schedule up to 8x8 tokens
  (128x128 pixels). Prompts become its 4 class labels by a CRC-32 of the text. Its VAE's decoder is not the
  inverse of its encoder: about half the sampled bits come back from pixels, so any figure read from pixels
  is at chance by construction.
* Infinity's real code: its transformer with 2 blocks of width 64 and its BSQ VAE with 32 base channels and
  16-bit tokens, all weights random, at Infinity's 256x256 schedule (7 scales); prompts become text features by
  hashing their words (no T5). Infinity's own sampling loop, attention, RoPE and VAE run, nothing is trained.
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
    """An InfinityBackend over a tiny random configuration of the Infinity code at `src` (or the importable one):
    the stand-in, or Infinity's real code (which needs its requirements: flash_attn, timm, ...)."""
    from bitmark.backends.infinity import InfinityBackend

    if src is not None:
        use_source_tree(src)
    if not is_standin():
        return _real_tiny(prompts, batch_size, bits)
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


class HashedWordFeatures:
    """Prompts -> Infinity's packed text conditioning from a fixed random vector per word (a CRC-32 seed): a
    deterministic stand-in for T5 features, so that different prompts condition a random model differently."""

    def __init__(self, channels: int):
        self.channels = channels

    def __call__(self, prompts: Sequence[str]):
        import torch

        feats = []
        for p in prompts:
            words = p.split() or [""]
            feats.append(torch.stack([torch.randn(self.channels, generator=torch.Generator().manual_seed(zlib.crc32(w.encode())))
                                      for w in words]))
        lengths = [len(f) for f in feats]
        starts = torch.tensor([0] + lengths, dtype=torch.int32).cumsum(0, dtype=torch.int32)
        return torch.cat(feats), lengths, starts, max(lengths)


def _real_tiny(prompts: Sequence[str] | None, batch_size: int, bits: int):
    """Infinity's real transformer and VAE at a tiny random configuration (see the module docstring)."""
    import copy

    import torch

    from bitmark.adapters.infinity import infinity_schedule
    from bitmark.backends.infinity import InfinityBackend

    model_module, vae_module = import_infinity(MODEL_MODULE), import_infinity(VAE_MODULE)
    vqgan = import_infinity("infinity.models.bsq_vae.flux_vqgan")
    text_channels = 128  # Infinity's text pooling uses heads of 128 channels
    with torch.random.fork_rng(devices=[]):  # Infinity's constructors draw random weights from the global generator
        torch.manual_seed(0)
        full = vae_module.vae_model({}, "dynamic", bits, 2**bits, patch_size=16)  # no checkpoint: random weights
        args = copy.copy(full.args)
        args.base_ch, args.num_res_blocks = 32, 1  # the published architecture at 1/4 width, one block per level
        vae = vqgan.AutoEncoder(args).eval().requires_grad_(False)
        model = _build(model_module, vae, text_channels)
    model.rng = torch.Generator()
    origin = Path(model_module.__file__).resolve().parents[2]
    return InfinityBackend(
        model, vae, infinity_schedule(256), HashedWordFeatures(text_channels), prompts=prompts, cfg=3.0, tau=1.0,
        batch_size=batch_size, module=model_module,
        description=f"a tiny RANDOM configuration of Infinity's real code at {origin} (2 blocks of width 64, VAE at "
                    f"32 base channels, {bits}-bit tokens, 256x256, hashed-word text features instead of T5) -- random "
                    "weights: figures test bitmark on Infinity's real sampling loop, not a model",
    )


def _build(model_module, vae, text_channels: int):
    return model_module.Infinity(
        vae_local=vae, text_channels=text_channels, text_maxlen=64, embed_dim=64, depth=2, num_heads=2,
        shared_aln=True, raw_scale_schedule=None, checkpointing=None, customized_flash_attn=False, fused_norm=False,
        pad_to_multiplier=1, use_flex_attn=False, add_lvl_embeding_only_first_block=1, use_bit_label=1,
        rope2d_each_sa_layer=1, rope2d_normalized_by_hw=2, pn="0.06M", apply_spatial_patchify=0,
        inference_mode=True, train_h_div_w_list=[1.0], block_chunks=2,
    ).eval().requires_grad_(False)
