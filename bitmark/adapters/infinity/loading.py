"""Importing Infinity's code and reading a user's checkpoints (never downloaded)."""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

MODEL_MODULE = "infinity.models.infinity"
VAE_MODULE = "infinity.models.bsq_vae.vae"


class InfinityNotAvailable(ImportError):
    """Infinity's code (FoundationVision/Infinity) cannot be imported."""


def import_infinity(name: str = MODEL_MODULE) -> Any:
    """Import one of Infinity's modules, or raise InfinityNotAvailable saying what to do."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing = getattr(e, "name", None) or ""
        hint = (
            f"its model code imports {missing!r}, which is not installed"
            if missing and not missing.startswith("infinity")
            else "put a clone of https://github.com/FoundationVision/Infinity on PYTHONPATH (it is not a pip package)"
        )
        raise InfinityNotAvailable(
            f"bitmark's Infinity adapter needs FoundationVision's Infinity code importable as {name!r}: {hint}. "
            f"Infinity's models also need its requirements (flash_attn, timm, einops, ...). Original error: {e}"
        ) from e


def _vae_shape_from_name(path: Path) -> tuple[int, bool] | None:
    """(codebook_dim, patchify) from Infinity's file names: infinity_vae_d32reg.pth, ..._d56_f8_14_patchify.pth."""
    name = path.name.lower()
    if "patchify" in name:
        m = re.search(r"f8_(\d+)", name)
        return (int(m.group(1)) if m else 14), True
    m = re.search(r"_d(\d+)", name)
    return (int(m.group(1)), False) if m else None


def _read_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from a .pth/.bin file, a .safetensors file, or a folder of shards."""
    if path.is_dir():
        shards = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if not shards:
            raise FileNotFoundError(f"{path}: no .safetensors or .bin shards in this folder")
        state: dict[str, Any] = {}
        for shard in shards:
            state.update(_read_state_dict(shard))
        return state
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles of training state (optimizers, argparse) are not plain weights
        raise ValueError(f"{path}: not a plain weights file ({e}); save the model's state dict and load that") from e


def load_infinity_vae(
    path: str | Path,
    *,
    codebook_dim: int | None = None,
    patchify: bool | None = None,
    device: str | torch.device = "cpu",
) -> Any:
    """Build Infinity's BSQ VAE from a user's checkpoint (a dict whose "vae" entry holds the weights).

    codebook_dim / patchify default to what the file name says (d32: 32 bits at stride 16; the 8B
    "d56_f8_14_patchify" VAE: 14 bits at stride 8). Works on CPU or GPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Infinity VAE checkpoint {path} not found (bitmark never downloads checkpoints)")
    guessed = _vae_shape_from_name(path)
    if codebook_dim is None:
        if guessed is None:
            raise ValueError(f"cannot tell the VAE's bits per token from the name {path.name!r}; pass codebook_dim=")
        codebook_dim = guessed[0]
    if patchify is None:
        patchify = guessed[1] if guessed else False
    vae_module = import_infinity(VAE_MODULE)
    state = _read_state_dict(path)
    if not isinstance(state, dict) or "vae" not in state:
        raise ValueError(f"{path}: expected Infinity's VAE checkpoint, a dict with a 'vae' entry")
    mult = [1, 2, 4, 4] if patchify else [1, 2, 4, 4, 4]
    vae = vae_module.vae_model(
        state, "dynamic", codebook_dim, 2**codebook_dim,
        patch_size=8 if patchify else 16, encoder_ch_mult=mult, decoder_ch_mult=mult, test_mode=True,
    )
    log.info("loaded Infinity VAE %s (%d bits, stride %d)", path.name, codebook_dim, 8 if patchify else 16)
    return vae.to(device)

TRANSFORMERS = {
    "infinity-2b": dict(depth=32, embed_dim=2048, num_heads=16, mlp_ratio=4, drop_path_rate=0.1, block_chunks=8),
    "infinity-8b": dict(depth=40, embed_dim=3584, num_heads=28, mlp_ratio=4, drop_path_rate=0.1, block_chunks=8),
}


def load_infinity_transformer(
    path: str | Path,
    vae: Any,
    *,
    model: str = "infinity-2b",
    resolution: str = "1M",
    device: str | torch.device = "cuda",
    bf16: bool = True,
) -> Any:
    """Build Infinity's transformer with its published inference settings and load a user's weights.

    path: a state-dict file (infinity_2b_reg.pth) or a folder of shards (infinity_8b_weights/). A training
    checkpoint (with a "trainer" entry) is read from its model entry. Infinity's model code needs a GPU
    and flash_attn in practice.
    """
    if model not in TRANSFORMERS:
        raise ValueError(f"unknown Infinity model {model!r}; choose one of {', '.join(TRANSFORMERS)}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Infinity checkpoint {path} not found (bitmark never downloads checkpoints)")
    Infinity = import_infinity(MODEL_MODULE).Infinity
    net = Infinity(
        vae_local=vae, text_channels=2048, text_maxlen=512, shared_aln=True, raw_scale_schedule=None,
        checkpointing="full-block", customized_flash_attn=False, fused_norm=True, pad_to_multiplier=128,
        use_flex_attn=False, add_lvl_embeding_only_first_block=1, use_bit_label=1, rope2d_each_sa_layer=1,
        rope2d_normalized_by_hw=2, pn=resolution, apply_spatial_patchify=int(model == "infinity-8b"),
        inference_mode=True, train_h_div_w_list=[1.0], **TRANSFORMERS[model],
    )
    state = _read_state_dict(path)
    if "trainer" in state:
        state = state["trainer"]["gpt_fsdp"]
    result = net.load_state_dict(state, strict=False)
    missing = getattr(result, "missing_keys", [])
    if missing:
        log.warning("%s: %d parameters missing from the checkpoint, e.g. %s", path.name, len(missing), missing[:3])
    if bf16:
        for block in getattr(net, "unregistered_blocks", []):
            block.bfloat16()
    net = net.to(device).eval().requires_grad_(False)
    net.rng = torch.Generator(device=device)
    return net
