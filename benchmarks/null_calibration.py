"""False-positive rate of each (rule, null) for single fixed keys, on i.i.d. and on correlated bits,
and the z-scores of images marked by one key when tested with another.

The tables behind the choice of the default detector. Pyramids have the tiny model's shape (6 scales,
sides 1, 2, 3, 4, 6, 8; d = 16). Run: `bitmark bench null [--num 5000] [--keys 8] [--json]`.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from bitmark.evaluation.keys import fixed_key
from bitmark.io.progress import progress

TINY_SIDES = (1, 2, 3, 4, 6, 8)
ARMS = (
    ("keyed", "binomial", False),
    ("keyed", "binomial", True),
    ("keyed-spatial", "binomial", False),
    ("keyed-spatial", "self-normalised", False),
    ("bitmark-2025", "binomial", False),
    ("keyed-content", "binomial", False),
    ("keyed-content", "self-normalised", False),
    ("keyed-content-robust", "binomial", False),
    ("keyed-content-robust", "self-normalised", False),
)


def iid_pyramid(num: int, seed: int, sides=TINY_SIDES, d: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(num, s, s, d, generator=g) < 0.5 for s in sides]


def markov_pyramid(num: int, seed: int, repeat: float = 0.8, sides=TINY_SIDES, d: int = 16) -> list[torch.Tensor]:
    """Correlated bits: bit 0 uniform, bit j repeats bit j-1 with probability `repeat`."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in sides:
        u = torch.rand(num, s, s, d, generator=g)
        b = torch.empty(num, s, s, d, dtype=torch.bool)
        b[..., 0] = u[..., 0] < 0.5
        for j in range(1, d):
            b[..., j] = torch.where(u[..., j] < repeat, b[..., j - 1], ~b[..., j - 1])
        out.append(b)
    return out


def measure(num: int = 5000, keys: int = 8, fpr: float = 0.01) -> list[dict]:
    from bitmark.detectors import BitDetector

    sources = {"iid": iid_pyramid(num, seed=1), "markov-0.8": markov_pyramid(num, seed=1)}
    rows = []
    with progress(desc="null calibration", total=len(sources) * len(ARMS) * keys, leave=False) as bar:
        for source, pyramid in sources.items():
            for rule, null, unique in ARMS:
                rates, mean_z = [], []
                for k in range(keys):
                    det = BitDetector(fixed_key(k, rule=rule), fpr=fpr, null=null, unique=unique).detect(pyramid)
                    rates.append(float(det.is_watermarked.mean()))
                    mean_z.append(float(det.z_score.mean()))
                    bar.update()
                rows.append({
                    "source": source, "rule": rule, "null": null, "unique": unique, "fpr_nominal": fpr,
                    "fpr_min": min(rates), "fpr_max": max(rates), "fpr_per_key": rates, "mean_z_per_key": mean_z,
                })
    return rows


def sample_pyramid(sampler, num: int, seed: int, sides=TINY_SIDES, d: int = 16) -> list[torch.Tensor]:
    """Bits drawn by `sampler` from random logits ~ N(0, 1), scale by scale."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s, side in enumerate(sides):
        logits = torch.randn(num, side * side, d, generator=g)
        out.append(sampler(logits, scale=s, grid=(side, side), generator=g).view(num, side, side, d))
    return out


def measure_wrong_key(pairs: int = 60, per_pair: int = 20, contexts=(2, 3, 4), delta: float = 2.0) -> list[dict]:
    """z of images marked by key A under an unrelated key B, per n: overall, and the spread of the
    per-pair mean (the part that a fixed pair keeps for all of A's images)."""
    from bitmark.core.sampler import WatermarkSampler
    from bitmark.detectors import BitDetector

    rows = []
    for n in contexts:
        z, pair_means = [], []
        for p in range(pairs):
            a, b = fixed_key(10_000 + p, context=n, delta=delta), fixed_key(20_000 + p, context=n, delta=delta)
            det = BitDetector(b).detect(sample_pyramid(WatermarkSampler(a), per_pair, seed=p))
            z.append(det.z_score)
            pair_means.append(det.z_score.mean())
        z = np.concatenate(z)
        noise = z.std() / np.sqrt(per_pair)  # what the pair means would scatter by without a pair effect
        rows.append({
            "context": n, "delta": delta, "pairs": pairs, "per_pair": per_pair, "mean_z": float(z.mean()),
            "std_z": float(z.std()), "fpr_at_1pct": float((z > 2.326).mean()),
            "pair_mean_std": float(np.std(pair_means)),
            "pair_shift_std": float(np.sqrt(max(np.var(pair_means) - noise**2, 0.0))),
        })
    return rows


def run(num: int = 5000, keys: int = 8, as_json: bool = False) -> list[dict]:
    rows = measure(num, keys)
    wrong = measure_wrong_key()
    if as_json:
        for r in rows + wrong:
            print(json.dumps(r))
        return rows + wrong
    print(f"FPR at nominal 1% for {keys} fixed keys, {num} pyramids per source (min .. max over keys)")
    print(f"{'source':11s} {'rule':20s} {'null':16s} {'unique':6s} {'FPR min..max':>16s}  mean z per key")
    for r in rows:
        zs = " ".join(f"{z:+.2f}" for z in r["mean_z_per_key"])
        print(f"{r['source']:11s} {r['rule']:20s} {r['null']:16s} {str(r['unique']):6s} "
              f"{100 * r['fpr_min']:6.2f}..{100 * r['fpr_max']:6.2f}%  {zs}")
    print("\nimages marked by key A, tested with an unrelated key B (default detector, delta 2, random logits):")
    print(f"{'n':>2s} {'mean z':>7s} {'std z':>6s} {'FPR@1%':>7s}  shift of one pair's mean z (std over pairs)")
    for r in wrong:
        print(f"{r['context']:2d} {r['mean_z']:+7.3f} {r['std_z']:6.3f} {100 * r['fpr_at_1pct']:6.2f}%  {r['pair_shift_std']:.2f}")
    return rows + wrong


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=5000)
    ap.add_argument("--keys", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    run(a.num, a.keys, a.json)
