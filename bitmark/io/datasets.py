"""Built-in data sets, made offline from what ships inside installed packages, and image folders.

* ``photos`` -- 32x32 crops of scikit-image's bundled colour photographs, one class per photograph. Each
  photo is first downscaled (shorter side 128 px) so that a crop holds structure. The split is by region:
  the right-most 30% of every photo's columns is held out, so no held-out crop overlaps a training crop.
  At another crop size S the photo side and the crop stride scale with S/32 (256 px and 8 px at 64), so a
  crop holds the same part of the scene and the set has the same crops, only sharper.
* ``digits`` -- scikit-learn's 8x8 handwritten digits, upscaled to 32x32 grey RGB; every fifth is held out.
* a folder -- class = sub-folder (or one class when there are none); images fitted to 32x32 as in
  `bitmark.io.images`; a file is held out when a hash of its relative path says so (1 in 5), so the split
  does not change when files are added.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bitmark.io.extras import require
from bitmark.io.images import ImageError, iter_image_files, load_image

log = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "stereo_motorcycle",
)
PHOTO_SIDE = 128  # shorter side after downscaling, for 32x32 crops (scaled with the crop size)
PHOTO_STRIDE = 4  # pixels between 32x32 crops (scaled with the crop size)
HELDOUT_SHARE = 0.3


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, H, W, 3), int64 labels (N,), and the class names the labels index."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def _need(module: str, name: str):
    return require(module, "data", f"the {name!r} data set")


def require_extras(name: str) -> None:
    """Raise MissingExtra now if data set `name` needs an extra that is not installed (before a long run)."""
    if name == "photos":
        _need("skimage.data", name)
    elif name == "digits":
        _need("sklearn.datasets", name)


def _photo(name: str, side: int = PHOTO_SIDE) -> np.ndarray:
    img = getattr(_need("skimage.data", "photos"), name)()
    if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
        img = img[0]
    h, w = img.shape[:2]
    scale = side / min(h, w)
    return np.asarray(Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS))


def crop_boxes(h: int, w: int, size: int, stride: int, split: str) -> list[tuple[int, int]]:
    """Top-left corners of the crops of one photo: training crops end left of the cut, held-out start at it."""
    cut = round(w * (1 - HELDOUT_SHARE))
    xs = range(0, cut - size + 1, stride) if split == "train" else range(cut, w - size + 1, stride)
    return [(y, x) for y in range(0, h - size + 1, stride) for x in xs]


def photos(split: str = "train", size: int = 32, stride: int | None = None) -> ImageSet:
    """`size`-px crops of the bundled photographs, `stride` pixels apart (default: 4 px scaled by size/32).

    The photos are downscaled to a shorter side of 128 * size/32 px, so a crop shows the same share of a
    photo at every size; the crop grid then scales too, and every size has the same number of crops."""
    _check_split(split)
    stride = stride or max(1, round(PHOTO_STRIDE * size / 32))
    side = round(PHOTO_SIDE * size / 32)
    images, labels = [], []
    for label, name in enumerate(PHOTOS):
        photo = _photo(name, side)
        for y, x in crop_boxes(*photo.shape[:2], size, stride, split):
            images.append(photo[y : y + size, x : x + size])
            labels.append(label)
    return ImageSet(np.stack(images), np.array(labels, dtype=np.int64), PHOTOS)


def digits(split: str = "train", size: int = 32) -> ImageSet:
    _check_split(split)
    d = _need("sklearn.datasets", "digits").load_digits()
    keep = (np.arange(len(d.target)) % 5 == 0) == (split == "heldout")
    images = []
    for x in d.images[keep]:
        grey = Image.fromarray(np.round(x * (255 / 16)).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
        images.append(np.repeat(np.asarray(grey)[..., None], 3, axis=2))
    return ImageSet(np.stack(images), d.target[keep].astype(np.int64), tuple(str(c) for c in range(10)))


def folder(root: str | Path, split: str = "train", size: int = 32) -> ImageSet:
    """Images under `root`, class = first-level sub-folder; unreadable files are logged and skipped."""
    _check_split(split)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = tuple(subdirs) or (root.name,)
    images, labels, skipped = [], [], 0
    for path in iter_image_files([root]):
        rel = path.relative_to(root)
        if subdirs and len(rel.parts) == 1:
            log.warning("skipping %s: files beside class folders have no class", path)
            continue
        heldout = hashlib.sha1(rel.as_posix().encode()).digest()[0] % 5 == 0
        if heldout != (split == "heldout"):
            continue
        try:
            images.append(load_image(path, size=size))
        except ImageError as e:
            skipped += 1
            log.warning("skipping %s", e)
            continue
        labels.append(classes.index(rel.parts[0]) if subdirs else 0)
    if skipped:
        log.warning("%s: skipped %d unreadable file(s)", root, skipped)
    if not images:
        raise ValueError(f"{root}: no readable images in the {split} split")
    return ImageSet(np.stack(images), np.array(labels, dtype=np.int64), classes)


def load_dataset(name: str, split: str = "train", size: int = 32) -> ImageSet:
    """`photos`, `digits`, or the path of a folder of images."""
    if name == "photos":
        return photos(split, size)
    if name == "digits":
        return digits(split, size)
    if Path(name).is_dir():
        return folder(name, split, size)
    raise ValueError(f"unknown data set {name!r}: use 'photos', 'digits' or a folder of images")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
