"""Round-trip figures: do bits survive decode -> PNG file -> re-encode? Used by the weights cards of the
training recipes and by `bitmark bench recoverability`."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from bitmark.evaluation.quality import psnr
from bitmark.io.images import fit


def png_round_trip(images: np.ndarray) -> np.ndarray:
    """Write each uint8 image as a PNG in memory and read it back (lossless, but literally through a file)."""
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG")
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.stack(out)


def agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> dict:
    """Bit and whole-token agreement per scale and overall between two pyramids of the same shape."""
    per_scale, same_bits, bits, same_tokens, tokens = [], 0, 0, 0, 0
    for x, y in zip(a, b):
        eq = x == y
        per_scale.append({"side": x.shape[1], "bits": round(eq.float().mean().item(), 4), "tokens": round(eq.all(-1).float().mean().item(), 4)})
        same_bits, bits = same_bits + int(eq.sum()), bits + eq.numel()
        same_tokens, tokens = same_tokens + int(eq.all(-1).sum()), tokens + eq[..., 0].numel()
    return {"bits": round(same_bits / bits, 4), "tokens": round(same_tokens / tokens, 4), "per_scale": per_scale}


def tokenizer_figures(tok, heldout: np.ndarray) -> dict:
    images = np.stack([fit(x, tok.cfg.image_size) for x in heldout])
    bits = tok.encode(images)
    decoded = png_round_trip(tok.decode(bits))
    return {
        "heldout_psnr": round(psnr(decoded, images), 2),
        "heldout_psnr_continuous": round(psnr(tok.roundtrip(images), images), 2),
        "real_roundtrip_agreement": agreement(bits, tok.encode(decoded)),
        "n": len(images),
    }


def generator_figures(gen, tok, num: int = 200, seed: int = 0, heldout: np.ndarray | None = None) -> dict:
    """Round-trip figures of `num` watermarked and `num` clean samples (classes round-robin)."""
    from bitmark.core.sampler import PlainSampler, WatermarkSampler
    from bitmark.detectors import BitDetector
    from bitmark.evaluation.keys import fixed_key

    key = fixed_key(0)
    detector = BitDetector(key, fpr=0.01)
    classes = torch.arange(num) % gen.cfg.num_classes
    result = {"n": num, "key_config": key.config.to_dict()}
    for name, sampler in (("watermarked", WatermarkSampler(key)), ("clean", PlainSampler())):
        drawn = gen.sample(classes, sampler=sampler, generator=torch.Generator().manual_seed(seed))
        reread = tok.encode(png_round_trip(tok.decode(drawn)))
        sampled_det, reread_det = detector.detect(drawn), detector.detect(reread)
        result[name] = {
            "agreement": agreement(drawn, reread),
            "z_sampled_mean": round(float(sampled_det.z_score.mean()), 2),
            "z_png_mean": round(float(reread_det.z_score.mean()), 2),
            "z_png_std": round(float(reread_det.z_score.std()), 2),
            "flagged_at_1pct": round(float(reread_det.is_watermarked.mean()), 4),
        }
    if heldout is not None:
        real = detector.detect(tok.encode(heldout))
        result["heldout_real"] = {
            "n": len(heldout),
            "z_mean": round(float(real.z_score.mean()), 2),
            "z_std": round(float(real.z_score.std()), 2),
            "flagged_at_1pct": round(float(real.is_watermarked.mean()), 4),
        }
    return result
