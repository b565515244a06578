"""Does the mark survive decoding? Bit recovery of the shipped tokenizer and generator through PNG files.

* tokenizer: held-out PSNR; per scale, bit and whole-token agreement between encode(x) and
  encode(PNG(decode(encode(x)))) on held-out real crops;
* generator: N watermarked and N clean samples (same seeds and classes) written as PNG, re-loaded and
  re-encoded: per-scale agreement between sampled and re-encoded bits, z-scores, TPR at the detector's
  analytic 1% threshold, and the FPR of that threshold on the clean samples and on held-out real crops.

* sample quality on the frozen classifier's features: class accuracy, Fréchet distance and KID to held-out
  real crops, for clean and watermarked samples and, as the floor, real training crops.

Run: `bitmark bench recoverability [--num 200] [--json]`. The key is a fixed benchmark key
(`benchmarks.null_calibration.fixed_key(0)`), so runs are reproducible.
"""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import torch
from PIL import Image

from benchmarks.metrics import psnr
from bitmark.images import fit


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
    from benchmarks.null_calibration import fixed_key
    from bitmark.sampler import PlainSampler, WatermarkSampler
    from detectors import BitDetector

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


def quality_figures(gen, tok, clf, train, heldout: np.ndarray, num: int = 200, seed: int = 0) -> dict:
    """Frozen-classifier figures of `num` clean and `num` watermarked samples (classes round-robin):
    accuracy on the requested class, Fréchet distance and KID to held-out real crops, next to the same
    for `num` real training crops (the floor: what a perfect copy of the training data would score)."""
    from benchmarks.null_calibration import fixed_key
    from bitmark.generate import sample_images
    from bitmark.quality import frechet_distance, kernel_inception_distance

    classes = torch.arange(num) % gen.cfg.num_classes
    held_features, _ = clf.embed(heldout)
    pick = np.random.default_rng(seed).choice(len(train.labels), num, replace=False)
    sets = {"real_train": (train.images[pick], train.labels[pick])}
    for name, key in (("clean", None), ("watermarked", fixed_key(0))):
        images, _ = sample_images(gen, tok, classes, key=key, seed=seed, progress=False)
        sets[name] = (images, classes.numpy())
    out = {}
    for name, (images, labels) in sets.items():
        features, predicted = clf.embed(images)
        kid, kid_std = kernel_inception_distance(features, held_features, subset_size=min(100, num))
        out[name] = {
            "class_accuracy": round(float(np.mean(predicted == labels)), 3),
            "fd_to_heldout": round(frechet_distance(features, held_features), 2),
            "kid_to_heldout": round(kid, 4), "kid_std": round(kid_std, 4),
        }
    return out


def run(data: str = "photos", num: int = 200, as_json: bool = False) -> dict:
    from bitmark.data import load_dataset
    from bitmark.models import load_classifier, load_generator

    torch.set_num_threads(1)
    gen, tok = load_generator(data)
    heldout = load_dataset(data, "heldout").images
    r = {
        "tokenizer": tokenizer_figures(tok, heldout),
        "generator": generator_figures(gen, tok, num, heldout=heldout),
        "quality": quality_figures(gen, tok, load_classifier(data), load_dataset(data, "train"), heldout, num),
    }
    print(json.dumps(r) if as_json else json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="photos")
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    run(a.data, a.num, a.json)
