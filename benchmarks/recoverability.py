"""Does the mark survive decoding? Bit recovery of the shipped tokenizer and generator through PNG files.

* tokenizer: held-out PSNR; per scale, bit and whole-token agreement between encode(x) and
  encode(PNG(decode(encode(x)))) on held-out real crops;
* generator: N watermarked and N clean samples (same seeds and classes) written as PNG, re-loaded and
  re-encoded: per-scale agreement between sampled and re-encoded bits, z-scores, TPR at the detector's
  analytic 1% threshold, and the FPR of that threshold on the clean samples and on held-out real crops.

* sample quality on the frozen classifier's features: class accuracy, Fréchet distance and KID to held-out
  real crops, for clean and watermarked samples and, as the floor, real training crops.

Run: `bitmark bench recoverability [--num 200] [--json]`. The key is a fixed benchmark key
(`bitmark.benchmarks.null_calibration.fixed_key(0)`), so runs are reproducible.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from bitmark.evaluation.roundtrip import generator_figures, tokenizer_figures


def quality_figures(gen, tok, clf, train, heldout: np.ndarray, num: int = 200, seed: int = 0) -> dict:
    """Frozen-classifier figures of `num` clean and `num` watermarked samples (classes round-robin):
    accuracy on the requested class, Fréchet distance and KID to held-out real crops, next to the same
    for `num` real training crops (the floor: what a perfect copy of the training data would score)."""
    from bitmark.evaluation.keys import fixed_key
    from bitmark.evaluation.quality import frechet_distance, kernel_inception_distance
    from bitmark.models.sampling import sample_images

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


def backend_figures(backend, num: int = 200, seed: int = 0) -> dict:
    """The generator round trip on any backend: `num` watermarked and `num` clean samples (same conditioning
    and seeds) written as PNG, re-loaded and re-encoded; agreement, z-scores and flags at the analytic 1%."""
    from bitmark.backends import make_sampler
    from bitmark.detectors import BitDetector
    from bitmark.evaluation.keys import fixed_key
    from bitmark.evaluation.roundtrip import agreement, png_round_trip

    key = fixed_key(0)
    detector = BitDetector(key, fpr=0.01)
    result = {"n": num, "key_config": key.config.to_dict(), "backend": backend.description}
    for name, k in (("watermarked", key), ("clean", None)):
        drawn = backend.sample(make_sampler(k), num, seed=seed, progress=False)
        reread = backend.encode(png_round_trip(drawn.images))
        sampled_det, reread_det = detector.detect(drawn.pyramid), detector.detect(reread)
        result[name] = {
            "agreement": agreement(drawn.pyramid, reread),
            "z_sampled_mean": round(float(sampled_det.z_score.mean()), 2),
            "z_png_mean": round(float(reread_det.z_score.mean()), 2),
            "z_png_std": round(float(reread_det.z_score.std()), 2),
            "flagged_at_1pct": round(float(reread_det.is_watermarked.mean()), 4),
        }
    return result


def run(data: str = "photos", num: int = 200, as_json: bool = False, backend=None) -> dict:
    """backend: None or embedded -- every figure; another backend -- the generator round trip only (the
    tokenizer figures and the classifier's quality figures exist for the embedded models only)."""
    from bitmark.models import dataset_of, load_classifier, load_generator, real_data

    if backend is not None and backend.kind != "embedded":
        r = {"generator": backend_figures(backend, num)}
        print(json.dumps(r) if as_json else json.dumps(r, indent=2))
        return r
    gen, tok = load_generator(data)
    heldout = real_data(data, "heldout").images  # the data set and image size the generator's card names
    r = {
        "tokenizer": tokenizer_figures(tok, heldout),
        "generator": generator_figures(gen, tok, num, heldout=heldout),
        "quality": quality_figures(gen, tok, load_classifier(dataset_of(data)), real_data(data, "train"), heldout, num),
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
