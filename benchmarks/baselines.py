"""The post-hoc baseline: invisible-watermark (`pip install 'bitmark[baselines]'`), DWT-DCT-SVD and RivaGAN.

Its encoder refuses images under 256×256, so it runs on the samples upscaled to 256² (Lanczos) and every
attack is applied at that size; its rows say so. It embeds a fixed 32-bit message; the detection score
is the binomial z of the decoded bits that match it, z = (matches − 16) / √8, so its rows have the same
columns as ours (with 32 bits, z can reach at most 5.66).
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from bitmark.io.extras import missing, require

log = logging.getLogger(__name__)

METHODS = ("dwtDctSvd", "rivaGan")
SIDE = 256
MESSAGE = [int(b) for b in np.random.default_rng(2025).integers(0, 2, 32)]


def available(method: str = "dwtDctSvd") -> str | None:
    """None when `method` can run here, else the reason its rows are skipped (RivaGAN also needs onnxruntime)."""
    purpose = f"the invisible-watermark baseline {method}"
    modules = ("imwatermark", "onnxruntime") if method == "rivaGan" else ("imwatermark",)
    for module in modules:
        reason = missing(module, "baselines", purpose)
        if reason:
            return reason + "; its rows are skipped"
    return None


def upscale(images: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(x).resize((SIDE, SIDE), Image.Resampling.LANCZOS)) for x in images])


class PostHoc:
    """One invisible-watermark method: `embed` uint8 RGB images, `score` them (binomial z of matched bits)."""

    def __init__(self, method: str):
        if method not in METHODS:
            raise ValueError(f"unknown invisible-watermark method {method!r}; choose from {', '.join(METHODS)}")
        imwatermark = require("imwatermark", "baselines", f"the invisible-watermark baseline {method}")
        WatermarkDecoder, WatermarkEncoder = imwatermark.WatermarkDecoder, imwatermark.WatermarkEncoder
        if method == "rivaGan":
            require("onnxruntime", "baselines", "the invisible-watermark baseline rivaGan")
            WatermarkEncoder.loadModel()
        self.method = method
        self.encoder = WatermarkEncoder()
        self.encoder.set_watermark("bits", MESSAGE)
        self.decoder = WatermarkDecoder("bits", len(MESSAGE))

    def embed(self, images: np.ndarray) -> np.ndarray:
        """The library works on BGR arrays (OpenCV order); we hand it RGB flipped to BGR and back."""
        return np.stack([self.encoder.encode(np.ascontiguousarray(x[..., ::-1]), self.method)[..., ::-1] for x in images])

    def score(self, images: np.ndarray) -> np.ndarray:
        matches = []
        for x in images:
            try:
                bits = self.decoder.decode(np.ascontiguousarray(x[..., ::-1]), self.method)
                matches.append(int(np.sum(np.asarray(bits, int) == MESSAGE)))
            except Exception as e:  # the library can fail on degenerate images: score it at chance (z = 0)
                log.warning("%s could not decode an image: %s", self.method, e)
                matches.append(len(MESSAGE) // 2)
        n = len(MESSAGE)
        return (np.asarray(matches, np.float64) - n / 2) / np.sqrt(n / 4)
