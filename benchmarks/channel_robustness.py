"""What a channel-robust tokenizer bought (issue 13): one compact table per generator/tokenizer pair.

For `num` clean samples and `num` watermarked ones at delta 2 and 0.5 (fixed benchmark key 0, fixed seeds,
classes round-robin), after each attack: per-scale agreement between the sampled bits and those re-encoded
from the attacked pixels, the mean z, and the TPR at a 1% FPR threshold taken empirically from the clean
samples plus the held-out real crops under the same attack. Besides: held-out PSNR of real crops, the FPR of
the analytic 1% threshold on clean samples and real crops (no attack: is the null still calibrated?), and
FD(watermarked, clean) on the frozen classifier's features next to the clean-vs-clean floor (two seeds), and
the 5-fold accuracy of a key-free linear steganalyst on residual statistics (0.5 = it sees nothing).

Run: `OMP_NUM_THREADS=1 python -m bitmark.benchmarks.channel_robustness --data photos|runs/X/X [--num 200] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

ATTACKS = ("none:0", "jpeg:75", "jpeg:50", "blur:1", "resize:0.5", "noise:0.05")


def _tpr_at(neg: np.ndarray, pos: np.ndarray, fpr: float = 0.01) -> float:
    """Share of positives above the negatives' (1 - fpr) quantile (the threshold a user would calibrate)."""
    return float(np.mean(pos > np.quantile(neg, 1 - fpr)))


def residual_features(images: np.ndarray) -> np.ndarray:
    """Key-free statistics of each image's high-pass residual (image minus its 3x3 mean), per colour channel:
    its energy per phase of the 4x4 latent-cell grid (where the skip paths' texture lives), its mean, and its
    lag-1 and lag-4 autocorrelations -- what a simple steganalyst would look at."""
    x = images.astype(np.float64).transpose(0, 3, 1, 2) / 255.0  # (N, 3, H, W)
    n, _, h, w = x.shape
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    r = x - sum(pad[..., i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9
    energy = (r**2).mean((2, 3)).clip(1e-12)
    feats = [(r.reshape(n, 3, h // 4, 4, w // 4, 4) ** 2).mean((2, 4)).reshape(n, 48), np.abs(r).mean((2, 3))]
    for lag in (1, 4):
        for a, b in ((r[..., lag:], r[..., :-lag]), (r[..., lag:, :], r[..., :-lag, :])):
            feats.append((a * b).mean((2, 3)) / energy)
    return np.concatenate(feats, 1)


def steganalysis_accuracy(clean: np.ndarray, marked: np.ndarray, seed: int = 0) -> float:
    """5-fold accuracy of a linear classifier telling watermarked from clean samples by `residual_features`
    (no key; 0.5 = invisible to it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([residual_features(clean), residual_features(marked)])
    y = np.r_[np.zeros(len(clean)), np.ones(len(marked))]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(model, x, y, cv=folds).mean())


def run(data: str = "photos", num: int = 200, attacks=ATTACKS, seed: int = 0, tokenizer: str | None = None) -> dict:
    """tokenizer: decode and re-encode with these weights instead of the generator's own (an old generator
    with a fine-tuned tokenizer)."""
    import bitmark.attacks as attack_registry
    from bitmark.detectors import BitDetector
    from bitmark.evaluation.keys import fixed_key
    from bitmark.evaluation.quality import frechet_distance
    from bitmark.evaluation.roundtrip import tokenizer_figures
    from bitmark.models import dataset_of, load_classifier, load_generator, load_tokenizer, real_data
    from bitmark.models.sampling import sample_images

    gen, tok = load_generator(data, tok=load_tokenizer(tokenizer) if tokenizer else None)
    heldout = real_data(data, "heldout").images
    clf = load_classifier(dataset_of(data))
    classes = torch.arange(num) % gen.cfg.num_classes
    key = fixed_key(0)
    sets = {"clean": sample_images(gen, tok, classes, seed=seed, progress=False)}
    for delta in (2.0, 0.5):
        sets[f"wm{delta:g}"] = sample_images(gen, tok, classes, key=fixed_key(0, delta=delta), seed=seed, progress=False)
    floor_images, _ = sample_images(gen, tok, classes, seed=seed + 99, progress=False)
    feats = {name: clf.embed(images)[0] for name, (images, _) in sets.items()}
    result = {
        "data": str(data), "tokenizer_weights": tokenizer, "n": num, "tokenizer": tokenizer_figures(tok, heldout)["heldout_psnr"],
        "fd": {"floor": round(frechet_distance(clf.embed(floor_images)[0], feats["clean"]), 2),
               **{name: round(frechet_distance(feats[name], feats["clean"]), 2) for name in ("wm2", "wm0.5")}},
        "steganalysis": {name: round(steganalysis_accuracy(sets["clean"][0], sets[name][0]), 3) for name in ("wm2", "wm0.5")},
        "attacks": {},
    }
    detector = BitDetector(key, fpr=0.01)  # the score does not depend on delta: one detector for every set
    for spec in attacks:
        attack = attack_registry.parse(spec)
        row, z = {}, {}
        for name, (images, pyramid) in sets.items():
            reread = tok.encode(attack(images, seed=1))
            det = detector.detect(reread)
            z[name] = det.z_score
            row[name] = {"agreement": [round(float((a == b).float().mean()), 3) for a, b in zip(pyramid, reread)],
                         "z_mean": round(float(det.z_score.mean()), 2)}
            if name == "clean":
                row[name]["flagged"] = round(float(det.is_watermarked.mean()), 4)
        real = detector.detect(tok.encode(attack(heldout, seed=1)))
        row["real"] = {"z_mean": round(float(real.z_score.mean()), 2), "flagged": round(float(real.is_watermarked.mean()), 4)}
        negatives = np.concatenate([z["clean"], real.z_score])
        row["tpr_at_1pct_empirical"] = {name: round(_tpr_at(negatives, z[name]), 3) for name in ("wm2", "wm0.5")}
        result["attacks"][spec] = row
        log.info("%s: %s", spec, row)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="photos", help="a shipped name or a generator weights path (runs/X/X)")
    ap.add_argument("--tokenizer", default=None, help="tokenizer weights to use instead of the generator's own")
    ap.add_argument("--num", type=int, default=200, help="samples of each kind")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(a.data, a.num, tokenizer=a.tokenizer)
    if a.json:
        print(json.dumps(result))
        return
    print(f"{result['data']}: held-out PSNR {result['tokenizer']} dB; FD wm2 {result['fd']['wm2']}, "
          f"wm0.5 {result['fd']['wm0.5']} vs floor {result['fd']['floor']}; steganalysis {result['steganalysis']}")
    for spec, row in result["attacks"].items():
        print(f"{spec:11s} agreement clean {row['clean']['agreement']} wm2 {row['wm2']['agreement']} | z clean "
              f"{row['clean']['z_mean']} wm2 {row['wm2']['z_mean']} wm0.5 {row['wm0.5']['z_mean']} | flagged clean "
              f"{row['clean']['flagged']} real {row['real']['flagged']} | TPR@1% wm2 {row['tpr_at_1pct_empirical']['wm2']} "
              f"wm0.5 {row['tpr_at_1pct_empirical']['wm0.5']}")


if __name__ == "__main__":
    main()
