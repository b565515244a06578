"""Reading images from disk into the uint8 RGB arrays the tokenizer expects.

Conversion, in this order:
* any mode becomes 8-bit RGB: 16- and 32-bit integer images are scaled to 8 bits, greyscale is
  replicated to three channels, palette images are expanded, and transparency is composited over white
  (what a viewer shows on a white page); a fully opaque RGBA image is therefore unchanged;
* if a `size` is asked for, the shorter side is resized to it (Lanczos) and the centre is cropped to a
  square; an image already `size` × `size` is left untouched, so a saved sample round-trips exactly.

Every failure is an `ImageError` with the file's name and the reason, so a folder scan can record it in
the file's row and go on.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MIN_SIDE = 8  # smaller images hold too few pixels to carry (or fake) a mark
MAX_PIXELS = 200_000_000  # beyond this, decoding alone needs gigabytes


class ImageError(ValueError):
    """An image file that cannot be used."""


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a = np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = np.clip(np.round(a * 255.0 if a.max(initial=0) <= 1.0 else a), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def fit(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to `size` (Lanczos) and centre-crop to size x size; identity if already so."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[top : top + size, left : left + size]


def load_image(path: str | Path, size: int | None = None, data: bytes | None = None) -> np.ndarray:
    """Read one image file as uint8 RGB (H, W, 3), optionally fitted to size x size (see module doc).

    `data`: the file's bytes, already read (a table of image bytes); `path` then only names it in errors."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{path}: {w}x{h} is over the {MAX_PIXELS:,}-pixel limit")
                if min(w, h) < MIN_SIDE:
                    raise ImageError(f"{path}: {w}x{h} is too small (each side must be at least {MIN_SIDE} px)")
                if size is not None and img.format == "JPEG":
                    img.draft("RGB", (size * 2, size * 2))  # decode a huge JPEG at reduced size
                img.load()
                array = _to_rgb8(img)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot decode ({e}); the file may be truncated or corrupt") from e
    return fit(array, size) if size is not None else array


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 RGB array as PNG (lossless, so the bits the sampler drew can be re-read)."""
    path = Path(path)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")
    return path


def iter_image_files(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Expand files and folders (recursively, sorted) into image paths; files are passed on as given."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield p
