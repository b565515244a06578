"""Reading bits back from images with Infinity's BSQ VAE."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bitmark.adapters.infinity.loading import load_infinity_vae
from bitmark.adapters.infinity.schedule import PIXELS_PER_TOKEN, schedule_grids
from bitmark.core.pyramid import Pyramid

log = logging.getLogger(__name__)


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

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) that `preprocess` fits images to."""
        return self.size

    def fit_image(self, image: np.ndarray) -> np.ndarray:
        """The fit `preprocess` applies to one RGB array (readers call it as soon as a file is decoded)."""
        from PIL import Image

        height, width = self.size
        if image.shape[:2] == (height, width):
            return image
        return np.asarray(fit_and_crop(Image.fromarray(image), height, width))

    def preprocess(self, images, bgr: bool = False) -> torch.Tensor:
        """Images -> float (B, 3, H, W) in [-1, 1], RGB, resized and centre-cropped to the schedule's size.

        bgr=True reads arrays as BGR, the channel order of the uint8 images Infinity's generator returns.
        """
        batch = []
        for arr in _as_rgb_list(images, bgr):
            arr = self.fit_image(arr)
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


def encoder_from_args(args: Any) -> InfinityEncoder:
    """An InfinityEncoder from the options of `add_cli_arguments`; errors say what is missing."""
    if not getattr(args, "vae", None):
        raise ValueError("--encoder infinity needs --vae PATH, your Infinity VAE checkpoint (bitmark downloads nothing)")
    return InfinityEncoder.from_checkpoint(
        args.vae, args.resolution, codebook_dim=args.vae_bits, patchify=args.patchify, device=args.vae_device
    )
