"""Infinity (FoundationVision) adapter: watermark its sampler in place, and read bits back with its BSQ VAE.

Embedding. Infinity's `autoregressive_infer_cfg` samples each scale's bits with one call of the
module-level function `infinity.models.infinity.sample_with_top_k_top_p_also_inplace_modifying_logits_`,
which it looks up at call time. `watermarked(sampler, schedule)` swaps that function for the sampler for the
duration of a `with` block:

    with watermarked(WatermarkSampler(key), schedule, seed=0) as run:
        infinity.autoregressive_infer_cfg(..., scale_schedule=schedule, ...)
    run.pyramid  # the sampled bits, per scale (B, h, w, d); Infinity itself does not return them

What the wrapper receives, and what it does with it:

* logits `(B, h*w*d, 2)` for the conditional batch only, already divided by the temperature and mixed with
  classifier-free guidance (on logits or on a block's output, depending on `cfg_insertion_layer`), so the
  watermark's bias lands after both -- and before top-k/top-p, which the sampler applies per bit after the
  bias. The flat index is `(row*w + col)*d + c`.
* `top_k` / `top_p` as Infinity passes them. On a two-way distribution top-k >= 2 keeps both values and only
  top_k = 1 (greedy) matters; top_p = 0 means "off" in Infinity and 1.0 in bitmark. They are translated, and
  a sampler built with a different truncation is refused rather than silently overridden.
* `rng`, Infinity's generator (seeded by `g_seed`). It is *not* used: the watermark's uniforms come from the
  run's own `torch.Generator` (`seed=` or `generator=`), so the mark's randomness is separate from the
  model's and `g_seed` no longer decides the image inside the block -- `seed=` does.
* Infinity's original masks the logits in place. The wrapper does the same for the distribution it actually
  sampled from: it adds the watermark's bias (half to each side of the pair, so the difference moves by the
  bias) and sets the values removed by top-k/top-p to -inf. Infinity does not read the logits afterwards;
  this keeps the documented contract for anything that does.
* It returns `(B, h*w*d, 1)` int64 indices (index 1 = bit 1, the VAE's positive code), as the original.

The scale is found from the call order and checked against the schedule and the logits' length; after the
last scale the next call starts a new image (`run.pyramids` keeps every finished one). Infinity-8B samples
2x2-patchified tokens of 4*14 = 56 bits (channel `c*4 + dy*2 + dx`): pass the schedule given to
`autoregressive_infer_cfg` (the patchified one) and the pyramid is in that token layout, which is the layout
`InfinityEncoder(..., patchify=True)` reads back.

Detection. `InfinityEncoder(vae, resolution)` resizes and centre-crops images as Infinity's own
preprocessing does, scales them to [-1, 1], calls `vae.encode(x, scale_schedule=...)` and takes its fourth
return value, the per-scale bits `(B, 1, h, w, d)`.

Nothing here imports Infinity until it is used; a missing Infinity raises `InfinityNotAvailable`.
Checkpoints are never downloaded: the loaders read files the user already has.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import logging
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bitmark.pyramid import Pyramid
from bitmark.rules import contexts
from bitmark.sampler import PlainSampler, WatermarkSampler, log_odds

log = logging.getLogger(__name__)

MODEL_MODULE = "infinity.models.infinity"
VAE_MODULE = "infinity.models.bsq_vae.vae"
SAMPLING_FUNCTION = "sample_with_top_k_top_p_also_inplace_modifying_logits_"
_EXPECTED_KEYWORDS = ("top_k", "top_p", "rng", "num_samples")
_WRAPPER_MARK = "__bitmark_watermark_wrapper__"
_ACTIVE: set[int] = set()  # id() of the modules whose function is wrapped right now

PIXELS_PER_TOKEN = 16  # Infinity's VAE stride (2B: stride 16; 8B: stride 8 with 2x2 patchify)
# Square schedules (h = w). The 1:1 sides, coarse to fine, and how many of them each resolution uses.
SQUARE_SIDES = (1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)
SCALES_PER_RESOLUTION = {256: 7, 512: 10, 768: 12, 1024: 13}
RESOLUTION_NAMES = {"0.06M": 256, "0.25M": 512, "0.60M": 768, "1M": 1024}  # Infinity's `pn` names


class InfinityNotAvailable(ImportError):
    """Infinity's code (FoundationVision/Infinity) cannot be imported."""


class ScheduleMismatch(ValueError):
    """A sampling call whose logits do not fit the scale that the call order and the schedule predict."""


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


# ---------------------------------------------------------------------------------------------- schedules


def infinity_schedule(resolution: int | str = 1024, h_div_w: float = 1.0) -> list[tuple[int, int, int]]:
    """Infinity's scale schedule `[(1, h, w), ...]` for a resolution (256/512/768/1024 or its `pn` name).

    Square schedules are built in. Other aspect ratios come from Infinity's own table
    (`infinity.utils.dynamic_resolution`), so they need Infinity importable.
    """
    pixels = RESOLUTION_NAMES.get(resolution, resolution) if isinstance(resolution, str) else resolution
    if isinstance(pixels, str) and pixels.isdigit():
        pixels = int(pixels)
    if pixels not in SCALES_PER_RESOLUTION:
        names = ", ".join([str(r) for r in SCALES_PER_RESOLUTION] + list(RESOLUTION_NAMES))
        raise ValueError(f"unknown Infinity resolution {resolution!r}; choose one of {names}")
    if abs(h_div_w - 1.0) < 1e-3:
        return [(1, s, s) for s in SQUARE_SIDES[: SCALES_PER_RESOLUTION[pixels]]]
    table = import_infinity("infinity.utils.dynamic_resolution")
    templates = np.asarray(table.h_div_w_templates, dtype=float)
    nearest = float(templates[np.argmin(np.abs(templates - h_div_w))])
    name = {v: k for k, v in RESOLUTION_NAMES.items()}[pixels]
    return [(1, int(h), int(w)) for _, h, w in table.dynamic_resolution_h_w[nearest][name]["scales"]]


def schedule_grids(schedule: int | str | Sequence) -> list[tuple[int, int]]:
    """Token grids `(h, w)` per scale from a resolution or a schedule of sides, (h, w) or Infinity's (1, h, w)."""
    if isinstance(schedule, (int, str)):
        schedule = infinity_schedule(schedule)
    grids: list[tuple[int, int]] = []
    for s, item in enumerate(schedule):
        item = (int(item),) * 2 if isinstance(item, (int, np.integer)) else tuple(int(v) for v in item)
        if len(item) == 3:
            if item[0] != 1:
                raise ValueError(
                    f"scale {s}: {item} has t = {item[0]}; images need t = 1 (Infinity's scripts pass "
                    "[(1, h, w) for (_, h, w) in dynamic_resolution_h_w[ratio][pn]['scales']])"
                )
            item = item[1:]
        if len(item) != 2 or min(item) < 1:
            raise ValueError(f"scale {s}: expected a side, (h, w) or (1, h, w), got {item!r}")
        grids.append((item[0], item[1]))
    if not grids:
        raise ValueError("a scale schedule needs at least one scale")
    return grids


# ---------------------------------------------------------------------------------------------- embedding


class InfinityRun:
    """One `with watermarked(...)` block: the bits it sampled and the state of the call order.

    pyramid:  the current (after generation: the last) image batch's bits, per scale (B, h, w, d) bool on CPU.
    pyramids: every finished pyramid of the block, in order.
    seed:     the seed of the watermark's own generator (None when a generator was passed in).
    """

    def __init__(self, sampler: PlainSampler, grids: list[tuple[int, int]], seed: int | None, generator):
        self.sampler, self.schedule, self.seed = sampler, grids, seed
        self.pyramid: Pyramid = []
        self.pyramids: list[Pyramid] = []
        self.calls = 0
        self.bits_per_token: int | None = None
        self._generator: torch.Generator | None = generator
        self._variants: dict[tuple[int, float], PlainSampler] = {}

    @property
    def complete(self) -> bool:
        return len(self.pyramid) == len(self.schedule)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        if self._generator.device.type != device.type:
            raise ValueError(
                f"the watermark generator is on {self._generator.device} but Infinity's logits are on {device}; "
                "pass a generator on the logits' device, or seed= to let the adapter make one"
            )
        return self._generator

    def _variant(self, top_k: int, top_p: float) -> PlainSampler:
        """The user's sampler with Infinity's truncation (shares its key and green tables; records nothing)."""
        own = (self.sampler.top_k, self.sampler.top_p)
        if own != (0, 1.0) and own != (top_k, top_p):
            raise ValueError(
                f"the sampler was built with top_k={own[0]}, top_p={own[1]} but Infinity asks for "
                f"top_k={top_k}, top_p={top_p} (after translation); build the sampler without top_k/top_p "
                "and pass them to autoregressive_infer_cfg, or make them agree"
            )
        variant = self._variants.get((top_k, top_p))
        if variant is None:
            variant = copy.copy(self.sampler)
            variant.top_k, variant.top_p, variant.record, variant.pyramid = top_k, top_p, False, []
            self._variants[(top_k, top_p)] = variant
        return variant

    def _grid_for_call(self, length: int) -> tuple[int, int, int, int]:
        """(scale, h, w, d) of this call, checked against the schedule and the logits' length."""
        if self.complete:
            self.pyramid = []
        s = len(self.pyramid)
        h, w = self.schedule[s]
        d = self.bits_per_token
        if d is None and length % (h * w) == 0:
            d = length // (h * w)
        if d is None or length != h * w * d:
            expected = f"{h * w} tokens x {d} bits = {h * w * d}" if d else f"a multiple of {h * w}"
            hint = ""
            if s > 0 and d and length == self.schedule[0][0] * self.schedule[0][1] * d:
                hint = f"; the previous generation stopped after {s} of {len(self.schedule)} scales (trunk_scale?)"
            raise ScheduleMismatch(
                f"Infinity's sampling call {self.calls} should be scale {s} ({h}x{w}: {expected} bit logits) but "
                f"has {length}; pass watermarked() the scale_schedule given to autoregressive_infer_cfg "
                f"(for Infinity-8B the patchified one){hint}"
            )
        self.bits_per_token = d
        return s, h, w, d

    def sample(self, logits: torch.Tensor, top_k: Any, top_p: Any, num_samples: int) -> torch.Tensor:
        """One of Infinity's per-scale calls: watermark, record, mask the logits in place, return indices."""
        if num_samples != 1:
            raise ValueError(f"the watermark draws one sample per bit; Infinity asked for num_samples={num_samples}")
        if logits.dim() != 3 or logits.shape[-1] != 2:
            raise ValueError(
                f"expected Infinity's bit logits (B, h*w*d, 2), got shape {tuple(logits.shape)}; "
                "only bit-label models (use_bit_label=1) can be watermarked"
            )
        B, length, _ = logits.shape
        s, h, w, d = self._grid_for_call(length)
        k = 1 if int(top_k or 0) == 1 else 0  # top-k >= 2 keeps both values of a bit
        p = float(top_p) if top_p and 0.0 < float(top_p) < 1.0 else 1.0
        variant = self._variant(k, p)
        pairs = logits.view(B, h * w, d, 2)
        bits = variant(pairs, scale=s, grid=(h, w), generator=self._generator_for(logits.device))
        _mask_like_sampled(pairs, bits, variant, s, h, w)
        self.calls += 1
        self.pyramid.append(bits.view(B, h, w, d).cpu())
        if self.complete:
            self.pyramids.append(self.pyramid)
        return bits.reshape(B, length, 1).to(torch.long)


def _mask_like_sampled(pairs: torch.Tensor, bits: torch.Tensor, sampler: PlainSampler, s: int, h: int, w: int) -> None:
    """Rewrite logit pairs (B, L, d, 2) in place into the distribution each bit was drawn from."""
    lo = log_odds(pairs)
    if isinstance(sampler, WatermarkSampler) and sampler.key.config.watermarks(s) and sampler.key.config.delta:
        n, d = sampler.rule.n, bits.shape[-1]
        green = sampler.rule.green_values(sampler.rule.table(s, h, w, d), contexts(bits, n)).to(lo.device)
        bias = torch.zeros_like(lo)
        bias[..., n - 1 :] = sampler.key.config.delta * (2.0 * green.to(lo.dtype) - 1.0)
        lo = lo + bias
        half = (bias / 2).to(pairs.dtype)
        pairs[..., 1] += half
        pairs[..., 0] -= half
    if sampler.top_k == 1:
        weak = torch.ones_like(lo, dtype=torch.bool)
    elif sampler.top_p < 1.0:
        weak = torch.sigmoid(-lo.abs()) <= 1.0 - sampler.top_p  # the same cut as bitmark.sampler.bit_probability
    else:
        return
    pairs[..., 1].masked_fill_(weak & (lo < 0), float("-inf"))  # ties keep 1, as the sampler does
    pairs[..., 0].masked_fill_(weak & (lo >= 0), float("-inf"))


def _check_signature(fn: Any) -> None:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot read the signature of Infinity's {SAMPLING_FUNCTION}: {e}") from e
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = tuple(p.name for p in params[1:])
    if not params or params[0].kind not in positional or names != _EXPECTED_KEYWORDS:
        raise TypeError(
            f"Infinity's {SAMPLING_FUNCTION} has the signature {inspect.signature(fn)}, not the expected "
            f"(logits, {', '.join(_EXPECTED_KEYWORDS)}); this Infinity version is not supported, refusing to wrap it"
        )


@contextmanager
def watermarked(
    sampler: PlainSampler,
    schedule: int | str | Sequence = 1024,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    module: Any = None,
) -> Iterator[InfinityRun]:
    """Route Infinity's per-scale sampling through `sampler` inside the block; yields the `InfinityRun`.

    sampler:   a WatermarkSampler (or a PlainSampler, for a same-rng unwatermarked baseline).
    schedule:  the scale_schedule passed to autoregressive_infer_cfg, or a resolution (1024, "1M", ...).
    seed / generator: the watermark's own randomness; with neither, a fresh random seed (kept in run.seed).
    module:    the module holding the function (default: import infinity.models.infinity).
    The original function is restored on exit, also after an exception. Nesting is refused.
    """
    if not isinstance(sampler, PlainSampler):
        raise TypeError(f"expected a WatermarkSampler or PlainSampler, got {type(sampler).__name__}")
    if seed is not None and generator is not None:
        raise ValueError("pass seed= or generator=, not both")
    grids = schedule_grids(schedule)
    mod = import_infinity() if module is None else module
    original = getattr(mod, SAMPLING_FUNCTION, None)
    if original is None:
        raise TypeError(f"{getattr(mod, '__name__', mod)!r} has no function {SAMPLING_FUNCTION}; is it Infinity's?")
    if id(mod) in _ACTIVE or getattr(original, _WRAPPER_MARK, False):
        raise RuntimeError("Infinity's sampler is already watermarked by an enclosing block; nesting is refused")
    _check_signature(original)
    if generator is None and seed is None:
        seed = secrets.randbits(63)
    run = InfinityRun(sampler, grids, seed, generator)

    @functools.wraps(original)
    def wrapper(logits_BlV, top_k=0, top_p=0.0, rng=None, num_samples=1):
        return run.sample(logits_BlV, top_k, top_p, num_samples)

    setattr(wrapper, _WRAPPER_MARK, True)
    _ACTIVE.add(id(mod))
    setattr(mod, SAMPLING_FUNCTION, wrapper)
    log.debug("watermarking Infinity's sampler (%d scales, seed %s)", len(grids), seed)
    try:
        yield run
    finally:
        if getattr(mod, SAMPLING_FUNCTION, None) is not wrapper:
            log.warning("Infinity's %s was replaced inside the block; restoring the original", SAMPLING_FUNCTION)
        setattr(mod, SAMPLING_FUNCTION, original)
        _ACTIVE.discard(id(mod))
        if run.pyramid and not run.complete:
            log.warning("the block ended after %d of %d scales of a generation", len(run.pyramid), len(grids))


# ---------------------------------------------------------------------------------------------- detection


def fit_and_crop(image, height: int, width: int):
    """Resize a PIL image to cover (height, width) with Lanczos, then cut out the centre.

    Follows Infinity's own preprocessing for its tokenizer: the side that limits the fit is matched exactly
    and the other one is truncated to an integer, then the crop offsets are rounded down.
    """
    from PIL import Image

    w, h = image.size
    aspect = w / h
    if aspect <= width / height:
        new_w, new_h = width, max(height, int(width / aspect))
    else:
        new_w, new_h = max(width, int(aspect * height)), height
    image = image.resize((new_w, new_h), resample=Image.LANCZOS)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return image.crop((left, top, left + width, top + height))


def _as_rgb_list(images, bgr: bool) -> list[np.ndarray]:
    """PIL images, uint8 HWC arrays/tensors (or a batch BHWC) -> list of RGB uint8 (H, W, 3) arrays."""
    from PIL import Image

    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor)):
        images = [images] if not (hasattr(images, "ndim") and images.ndim == 4) else list(images)
    out = []
    for i, im in enumerate(images):
        if isinstance(im, Image.Image):
            out.append(np.asarray(im.convert("RGB")))  # PIL images are RGB; `bgr` is for arrays only
            continue
        arr = im.detach().cpu().numpy() if isinstance(im, torch.Tensor) else np.asarray(im)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise ValueError(f"image {i}: expected an (H, W, 3) array, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"image {i}: expected uint8 pixels, got {arr.dtype}")
        arr = arr[..., :3]
        out.append(np.ascontiguousarray(arr[..., ::-1] if bgr else arr))
    if not out:
        raise ValueError("no images given")
    return out


def _vae_patchifies(vae: Any) -> bool:
    """Infinity-8B's VAE has stride 8 and is read as 2x2-patchified tokens; the 2B family has stride 16."""
    patch = getattr(getattr(vae, "args", None), "patch_size", None)
    if patch in (8, 16):
        return patch == 8
    raise ValueError("cannot tell this VAE's stride (no vae.args.patch_size); pass patchify=True (8B) or False (2B)")


class InfinityEncoder:
    """Images -> bit pyramid with an Infinity BSQ VAE, in the token layout that Infinity's transformer samples.

    schedule_or_resolution: the transformer's scale schedule, or a resolution (256/512/768/1024, "1M", ...).
    patchify: Infinity-8B's 2x2 patchify (4*d bits per token); default: from the VAE's stride.
    """

    def __init__(
        self,
        vae: Any,
        schedule_or_resolution: int | str | Sequence = 1024,
        *,
        patchify: bool | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 4,
    ):
        self.vae = vae
        self.schedule = schedule_grids(schedule_or_resolution)
        self.patchify = _vae_patchifies(vae) if patchify is None else bool(patchify)
        r = 2 if self.patchify else 1
        self.vae_schedule = [(1, r * h, r * w) for h, w in self.schedule]
        h, w = self.schedule[-1]
        self.size = (PIXELS_PER_TOKEN * h, PIXELS_PER_TOKEN * w)  # (height, width) in pixels
        if device is None:
            param = next(iter(vae.parameters()), None) if hasattr(vae, "parameters") else None
            device = param.device if param is not None else "cpu"
        self.device, self.batch_size = torch.device(device), batch_size

    @classmethod
    def from_checkpoint(
        cls,
        vae_path: str | Path,
        schedule_or_resolution: int | str | Sequence = 1024,
        *,
        codebook_dim: int | None = None,
        patchify: bool | None = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> "InfinityEncoder":
        vae = load_infinity_vae(vae_path, codebook_dim=codebook_dim, patchify=patchify, device=device)
        return cls(vae, schedule_or_resolution, patchify=patchify, device=device, **kwargs)

    def preprocess(self, images, bgr: bool = False) -> torch.Tensor:
        """Images -> float (B, 3, H, W) in [-1, 1], RGB, resized and centre-cropped to the schedule's size.

        bgr=True reads arrays as BGR, the channel order of the uint8 images Infinity's generator returns.
        """
        from PIL import Image

        height, width = self.size
        batch = []
        for arr in _as_rgb_list(images, bgr):
            if arr.shape[:2] != (height, width):
                arr = np.asarray(fit_and_crop(Image.fromarray(arr), height, width))
            batch.append(torch.from_numpy(np.array(arr)).permute(2, 0, 1))  # a writable copy
        return torch.stack(batch).float().div_(127.5).sub_(1.0)

    @torch.no_grad()
    def encode_tensor(self, x: torch.Tensor) -> Pyramid:
        """Already preprocessed images (B, 3, H, W) in [-1, 1] -> bit pyramid (B, h, w, d) per scale."""
        out = self.vae.encode(x.to(self.device), scale_schedule=self.vae_schedule)
        per_scale = out[3]
        if len(per_scale) != len(self.schedule):
            raise ValueError(f"the VAE returned {len(per_scale)} scales of bits, the schedule has {len(self.schedule)}")
        pyramid = []
        for s, (bits, (_, vh, vw)) in enumerate(zip(per_scale, self.vae_schedule)):
            bits = bits.squeeze(1) if bits.dim() == 5 else bits  # (B, 1, h, w, d) -> (B, h, w, d)
            if bits.dim() != 4 or tuple(bits.shape[1:3]) != (vh, vw):
                raise ValueError(f"scale {s}: expected VAE bits (B, 1, {vh}, {vw}, d), got {tuple(bits.shape)}")
            bits = bits.to(torch.uint8)
            if self.patchify:  # (B, 2h, 2w, d) -> (B, h, w, 4d), channel c*4 + dy*2 + dx
                bits = F.pixel_unshuffle(bits.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
            pyramid.append(bits.bool().cpu())
        return pyramid

    def encode(self, images, bgr: bool = False) -> Pyramid:
        """Images (PIL, uint8 HWC arrays or tensors, any size) -> bit pyramid, batched `batch_size` at a time."""
        x = self.preprocess(images, bgr=bgr)
        parts = [self.encode_tensor(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return [torch.cat([p[s] for p in parts]) for s in range(len(self.schedule))]


# ---------------------------------------------------------------------------------------------- loading


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


def add_cli_arguments(parser: Any) -> None:
    """The options of `bitmark detect --encoder infinity` (kept here so the command layer stays small)."""
    g = parser.add_argument_group("--encoder infinity")
    g.add_argument("--vae", help="your Infinity BSQ VAE checkpoint, e.g. infinity_vae_d32reg.pth (never downloaded)")
    g.add_argument("--resolution", default="1024", help="256, 512, 768 or 1024 (or 0.06M, 0.25M, 0.60M, 1M)")
    g.add_argument("--vae-bits", type=int, default=None, help="bits per VAE token when the file name does not say")
    g.add_argument("--patchify", action="store_true", default=None, help="Infinity-8B's 2x2 patchify (default: by name)")
    g.add_argument("--vae-device", default="cpu", help="device for the VAE (cpu, cuda, ...)")


def encoder_from_args(args: Any) -> InfinityEncoder:
    """An InfinityEncoder from the options of `add_cli_arguments`; errors say what is missing."""
    if not getattr(args, "vae", None):
        raise ValueError("--encoder infinity needs --vae PATH, your Infinity VAE checkpoint (bitmark downloads nothing)")
    return InfinityEncoder.from_checkpoint(
        args.vae, args.resolution, codebook_dim=args.vae_bits, patchify=args.patchify, device=args.vae_device
    )


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


__all__ = [
    "InfinityEncoder",
    "add_cli_arguments",
    "encoder_from_args",
    "InfinityNotAvailable",
    "InfinityRun",
    "ScheduleMismatch",
    "infinity_schedule",
    "load_infinity_transformer",
    "load_infinity_vae",
    "schedule_grids",
    "watermarked",
]
