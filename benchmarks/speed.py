"""Speed of the watermark at Infinity-2B 1024x1024 shapes (13 scales, sides 1..64, d = 32), on one core.

* sampler: watermarked / plain time for one image's 13 scale calls, batch 1 and 8 (target <= 2);
* detector: scored bits per second of BitDetector (target >= 100 M bits/s).

Run: `bitmark bench speed [--json]` or `python -m bitmark.benchmarks.speed`.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bitmark.core.keys import WatermarkKey
from bitmark.core.sampler import PlainSampler, WatermarkSampler
from bitmark.evaluation.provenance import cpu_name

INFINITY_1024_SIDES = (1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)
D = 32


def _best_time(fn, repeats: int) -> float:
    fn()  # warm up (table derivation, allocator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _sampler_time(sampler, logits: list[torch.Tensor], repeats: int) -> float:
    def one_image():
        rng = torch.Generator().manual_seed(0)
        for s, (side, lg) in enumerate(zip(INFINITY_1024_SIDES, logits)):
            sampler(lg, scale=s, grid=(side, side), generator=rng)

    return _best_time(one_image, repeats)


def measure(repeats: int = 5) -> dict:
    from bitmark.detectors import BitDetector

    torch.set_num_threads(1)
    key = WatermarkKey.generate()
    result: dict = {"machine": f"{cpu_name()}, 1 thread, torch {torch.__version__}", "key": key.config.to_dict()}
    for batch in (1, 8):
        g = torch.Generator().manual_seed(batch)
        logits = [torch.randn(batch, s * s, D, 2, generator=g) for s in INFINITY_1024_SIDES]
        plain = _sampler_time(PlainSampler(), logits, repeats)
        fast = _sampler_time(WatermarkSampler(key), logits, repeats)
        loop = _sampler_time(WatermarkSampler(key, impl="loop"), logits, repeats)
        result[f"sampler_batch{batch}"] = {
            "plain_ms": plain * 1e3,
            "watermarked_ms": fast * 1e3,
            "watermarked_loop_ms": loop * 1e3,
            "ratio": fast / plain,
            "ratio_loop": loop / plain,
        }
    batch = 8
    sampler = WatermarkSampler(key, record=True)
    g = torch.Generator().manual_seed(0)
    for s, side in enumerate(INFINITY_1024_SIDES):
        sampler(torch.randn(batch, side * side, D, generator=g), scale=s, grid=(side, side), generator=g)
    pyramid = sampler.pyramid
    for null in ("self-normalised", "binomial"):
        detector = BitDetector(key, null=null)
        scored = int(detector.detect(pyramid).num_scored.sum())
        seconds = _best_time(lambda: detector.detect(pyramid), repeats)
        result[f"detector_{null}"] = {"scored_bits": scored, "seconds": seconds, "Mbits_per_s": scored / seconds / 1e6}
    return result


def run(as_json: bool = False, repeats: int = 5) -> dict:
    r = measure(repeats)
    if as_json:
        print(json.dumps(r))
        return r
    print(f"machine: {r['machine']}")
    print("sampler at Infinity-2B 1024^2 shapes (13 scales, d=32), time per batch (all scales):")
    for b in (1, 8):
        s = r[f"sampler_batch{b}"]
        print(
            f"  batch {b}: plain {s['plain_ms']:.1f} ms, watermarked {s['watermarked_ms']:.1f} ms "
            f"(ratio {s['ratio']:.2f}; readable loop {s['watermarked_loop_ms']:.1f} ms, ratio {s['ratio_loop']:.2f})"
        )
    for null in ("self-normalised", "binomial"):
        s = r[f"detector_{null}"]
        print(f"detector ({null} null): {s['Mbits_per_s']:.0f} M scored bits/s ({s['scored_bits']} bits in {s['seconds']*1e3:.1f} ms)")
    return r


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    run(as_json=a.json, repeats=a.repeats)
