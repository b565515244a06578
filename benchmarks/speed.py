"""Speed of the watermark, on one thread, at Infinity-2B 1024x1024 shapes (13 scales, sides 1..64, d = 32).

* sampler: watermarked / plain time for one batch's 13 scale calls, batch 1 and 8 (targets <= 1.5 and <= 1.2);
* detector: ms per call and scored bits/s of BitDetector at batch 1, 64 and 1,024, both nulls (targets:
  >= 100 M bits/s at every batch, <= 1.5 ms at batch 1);
* end to end (`benchmarks/speed_e2e.py`): images/s of `generate` (watermarked vs plain, key-value cache on vs
  off), `bitmark detect` from PNG files (start-up apart), and 1 vs 2 torch threads.

A and B are interleaved round by round and medians [quartiles] reported (`benchmarks/timing.py`), with the load
average before and after, because the machine is shared; in-process figures are CPU time of one thread. Run: `bitmark bench speed [--repeats R] [--json]` (`--quick`: a smoke run).
"""

from __future__ import annotations

import argparse
import json

import torch

from bitmark.benchmarks.timing import fmt, interleave, load, ratio, spread
from bitmark.core.keys import WatermarkKey
from bitmark.core.sampler import PlainSampler, WatermarkSampler
from bitmark.evaluation.provenance import cpu_name

INFINITY_1024_SIDES = (1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)
D = 32
DETECTOR_BATCHES = (1, 64, 1024)


def _one_image(sampler, logits: list[torch.Tensor]):
    def run():
        rng = torch.Generator().manual_seed(0)
        for s, (side, lg) in enumerate(zip(INFINITY_1024_SIDES, logits)):
            sampler(lg, scale=s, grid=(side, side), generator=rng)

    return run


def sampler_figures(key: WatermarkKey, rounds: int) -> dict:
    out = {}
    for batch in (1, 8):
        g = torch.Generator().manual_seed(batch)
        logits = [torch.randn(batch, s * s, D, 2, generator=g) for s in INFINITY_1024_SIDES]
        times = interleave({"plain": _one_image(PlainSampler(), logits),
                            "watermarked": _one_image(WatermarkSampler(key), logits)}, rounds * (6 if batch == 1 else 2))
        out[f"batch{batch}"] = {"plain_ms": spread(times["plain"], 1e3), "watermarked_ms": spread(times["watermarked"], 1e3),
                                "ratio": ratio(times, "watermarked", "plain")}
    return out


def random_pyramid(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2, (batch, s, s, D), generator=g, dtype=torch.uint8).bool() for s in INFINITY_1024_SIDES]


def detector_figures(key: WatermarkKey, rounds: int, batches=DETECTOR_BATCHES) -> dict:
    from bitmark.detectors import BitDetector

    full = random_pyramid(max(batches))
    out = {}
    for batch in batches:
        pyramid = [p[:batch] for p in full]
        detectors = {null: BitDetector(key, null=null) for null in ("self-normalised", "binomial")}
        scored = int(detectors["binomial"].detect(pyramid).num_scored.sum())
        n = max(3, rounds * {1: 8, 64: 2}.get(batch, 1))
        times = interleave({null: (lambda d=d: d.detect(pyramid)) for null, d in detectors.items()}, n)
        out[f"batch{batch}"] = {"scored_bits": scored, **{
            null: {"ms": spread(t, 1e3), "Mbits_per_s": spread([scored / x / 1e6 for x in t])} for null, t in times.items()}}
    return out


def measure(rounds: int = 5, end_to_end: bool = True, batches=DETECTOR_BATCHES) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        key = WatermarkKey.generate()
        result: dict = {"machine": f"{cpu_name()}, 1 thread, torch {torch.__version__}", "load_before": load(),
                        "key": key.config.to_dict(), "rounds": rounds, "detector_batches": list(batches)}
        result["sampler"] = sampler_figures(key, rounds)
        result["detector"] = detector_figures(key, rounds, batches)
        if end_to_end:
            from bitmark.benchmarks.speed_e2e import end_to_end_figures

            result["end_to_end"] = end_to_end_figures(key, rounds)
        result["load_after"] = load()
        return result
    finally:
        torch.set_num_threads(threads)


def report(r: dict) -> str:
    lines = [f"machine: {r['machine']}; load average before {r['load_before']}, after {r['load_after']}",
             f"medians [quartiles] of interleaved rounds (--repeats {r['rounds']}); CPU time of one thread unless noted",
             "sampler at Infinity-2B 1024^2 shapes (13 scales, d=32), one batch through all scales:"]
    for b in (1, 8):
        s = r["sampler"][f"batch{b}"]
        lines.append(f"  batch {b}: plain {fmt(s['plain_ms'], ' ms', 1)}, watermarked {fmt(s['watermarked_ms'], ' ms', 1)}, "
                     f"ratio {fmt(s['ratio'])}")
    lines.append("detector at the same shapes, per call:")
    for b in r.get("detector_batches", DETECTOR_BATCHES):
        s = r["detector"][f"batch{b}"]
        for null in ("self-normalised", "binomial"):
            lines.append(f"  batch {b:>4} {null:>15}: {fmt(s[null]['ms'], ' ms', 2)}, {fmt(s[null]['Mbits_per_s'], ' M bits/s', 0)}"
                         f" ({s['scored_bits']} scored bits)")
    if "end_to_end" in r:
        from bitmark.benchmarks.speed_e2e import report_lines

        lines += report_lines(r["end_to_end"])
    return "\n".join(lines)


def run(as_json: bool = False, repeats: int = 5, quick: bool = False) -> dict:
    """quick: a smoke run (detector at batch 1 and 4, no end-to-end figures)."""
    r = measure(repeats, end_to_end=not quick, batches=(1, 4) if quick else DETECTOR_BATCHES)
    print(json.dumps(r) if as_json else report(r))
    return r


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    run(as_json=a.json, repeats=a.repeats, quick=a.quick)
