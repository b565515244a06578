"""Reading images from disk into the uint8 RGB arrays the tokenizer expects.

Conversion, in this order:
* any mode becomes 8-bit RGB: 16- and 32-bit integer images are scaled to 8 bits, greyscale is
  replicated to three channels, palette images are expanded, and transparency is composited over white
  (what a viewer shows on a white page); a fully opaque RGBA image is therefore unchanged;
* if a `size` is asked for, the shorter side is resized to it (Lanczos) and the centre is cropped to a
  square; an image already `size` × `size` is left untouched, so a saved sample round-trips exactly.

Decoding is bounded: an image that would decode to more than `MAX_PIXELS` pixels is refused from its header
(a JPEG counts at the reduced scale it is decoded at when a target size is known), and a `MemoryError` while
decoding one file is that file's error. Every failure is an `ImageError` with the file's name and the reason,
so a folder scan can record it in the file's row and go on.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bitmark.io.folders import IMAGE_SUFFIXES, Entry, iter_entries, iter_image_files, unreadable_reason  # noqa: F401

log = logging.getLogger(__name__)

MIN_SIDE = 8  # smaller images hold too few pixels to carry (or fake) a mark
# Decoded pixels per image (after a JPEG's reduced-scale decode). 40 MP holds an 8K UHD frame (33.2 MP) and the
# JPEGs of every camera once decoded at reduced scale; decoding and converting 40 MP takes about 0.55 GB at peak
# (a 6,300 x 6,300 RGB PNG: 573 MB max RSS, 2 s), where a 13,000 x 13,000 PNG bomb (169 MP) took 2.1 GB and 14 s.
MAX_PIXELS = 40_000_000


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


def load_image(
    path: str | Path, size: int | None = None, data: bytes | None = None, *, draft: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Read one image file as uint8 RGB (H, W, 3), optionally fitted to size x size (see module doc).

    `data`: the file's bytes, already read (a table of image bytes); `path` then only names it in errors.
    `draft` (default: `size`) is the side the image will be fitted to: a JPEG is then decoded at a reduced
    scale (1/2 to 1/8) that keeps at least twice that side. An image that would still decode to more than
    `max_pixels` pixels is refused from its header, before any pixel is decoded.
    """
    path = Path(path)
    problem = unreadable_reason(path) if data is None else None
    if problem:
        raise ImageError(f"{path}: {problem}")
    draft = size if draft is None else draft
    w = h = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                if draft is not None and img.format == "JPEG":
                    img.draft("RGB", (draft * 2, draft * 2))  # decode a big JPEG at reduced size
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(_too_many_pixels(path, w, h, max_pixels, img.format == "JPEG" and draft is None))
                if min(w, h) < MIN_SIDE:
                    raise ImageError(f"{path}: {w}x{h} is too small (each side must be at least {MIN_SIDE} px)")
                img.load()
                array = _to_rgb8(img)
            return fit(array, size) if size is not None else array
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{path}: out of memory decoding {w}x{h} pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise ImageError(f"{path}: refused, its header claims more than {limit:,} pixels") from None
    except Exception as e:  # corrupt files raise OSError, SyntaxError, struct.error, EOFError, ...
        reason = f"{type(e).__name__}: {e}"
        raise ImageError(f"{path}: cannot decode ({reason}); the file may be truncated or corrupt") from e


def _too_many_pixels(path: Path, w: int, h: int, limit: int, jpeg_full: bool) -> str:
    hint = "; a JPEG decodes smaller when a target size is given" if jpeg_full else ""
    return (f"{path}: {w}x{h} ({w * h / 1e6:.0f} megapixels) is over the limit of {limit / 1e6:.0f} megapixels "
            f"decoded per image (MAX_PIXELS){hint}; refused without decoding")


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 RGB array as PNG (lossless, so the bits the sampler drew can be re-read)."""
    path = Path(path)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")
    return path
