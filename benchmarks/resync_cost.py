"""What the resynchronisation stage costs where nothing was moved, paired on the same images:
`python -m bitmark.benchmarks.resync_cost [--num N] SPEC ...`.

The robustness benchmark's images (N watermarked samples, N clean samples, N held-out real crops, the same
seeds and attack seeds); for each attack, the share of positives that each detector's own analytic 1% test
flags (what a user gets), with the images it loses and gains, and the TPR at the empirical 1% threshold of
the negatives (what the benchmark reports), plus how many of the negatives above that threshold owe their
score to a search candidate rather than the un-moved image.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def _fmt(tpr: float | None) -> str:
    return "n/a (needs >= 1k negatives)" if tpr is None else f"{tpr:.3f}"


def run(specs: list[str], num: int = 500, weights: tuple[float, ...] = (0.9, 0.95)) -> None:
    from bitmark import attacks
    from bitmark.benchmarks.metrics import tpr_at_fpr
    from bitmark.detectors import BitDetector, ResyncDetector
    from bitmark.evaluation.keys import fixed_key
    from bitmark.io.datasets import load_dataset
    from bitmark.models import load_generator
    from bitmark.models.sampling import sample_images

    gen, tok = load_generator("photos")
    key = fixed_key(0)
    det = BitDetector(key)
    search = ResyncDetector(tok, det)
    classes = torch.arange(num) % gen.cfg.num_classes
    marked = sample_images(gen, tok, classes, key=key, seed=0, progress=False)[0]
    clean = sample_images(gen, tok, classes, key=None, seed=0, progress=False)[0]
    heldout = load_dataset("photos", "heldout").images
    real = heldout[np.random.default_rng(0).permutation(len(heldout))[:num]]
    for spec in specs:
        attack = attacks.parse(spec)
        pos, neg = attack(marked, seed=11), np.concatenate([attack(clean, seed=12), attack(real, seed=13)])
        plain_pos, plain_neg = det.detect(tok.encode(pos)), det.detect(tok.encode(neg))
        sp, sn = search.search(pos), search.search(neg)
        line = [f"{spec}: plain own-test TPR {plain_pos.is_watermarked.mean():.3f}, "
                f"TPR@1% {_fmt(tpr_at_fpr(plain_pos.z_score, plain_neg.z_score, 0.01))}; searched {np.mean(sp.tests > 0):.2f} of positives"]
        for w in weights:
            flagged = sp.verdict(w, 0.01)[0].is_watermarked
            lost, gained = int(np.sum(plain_pos.is_watermarked & ~flagged)), int(np.sum(~plain_pos.is_watermarked & flagged))
            ln = sn.neg_log10_p(w)
            top = np.argsort(ln)[-max(1, int(round(0.01 * len(ln)))):]
            from_search = int(np.sum((ln > sn.plain.neg_log10_p + np.log10(np.where(sn.tests > 0, w, 1.0)) + 1e-12)[top]))
            line.append(f"  w={w:g}: own-test TPR {flagged.mean():.3f} (lost {lost}, gained {gained}); "
                        f"TPR@1% {_fmt(tpr_at_fpr(sp.neg_log10_p(w), ln, 0.01))}; top-1% negatives from the search: {from_search}")
        print("\n".join(line), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--num", type=int, default=500)
    a = ap.parse_args()
    run(a.specs, a.num)
