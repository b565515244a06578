"""Outputs of the sampler, the detector and the generator on fixed seeds, as hashes and rounded values.

`tests/speed_golden.json` holds what the code computed BEFORE the speed work (issue 18, recorded at commit
1a7400a with `python tests/speed_golden.py --write`); `test_speed_equivalence.py` recomputes and compares,
so any change to a sampled bit, a count or a z-score fails. The `generator/` entries depend on the shipped
weights: they were re-recorded (those entries only) when issue 13 installed the channel-robust tokenizer and
generator; the sampler and detector entries are still those of 1a7400a.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).with_name("speed_golden.json")
SIDES = (1, 2, 4, 6, 8)  # a short Infinity-like schedule
D = 32


def _bits_hash(pyramid) -> str:
    h = hashlib.sha256()
    for b in pyramid:
        h.update(str(tuple(b.shape)).encode())
        h.update(np.packbits(b.reshape(-1).numpy().astype(np.uint8)).tobytes())
    return h.hexdigest()[:20]


def sampler_cases():
    """(name, pyramid) for every rule, n, top-k/top-p, impl and logit layout, on random logits."""
    from bitmark.core.sampler import WatermarkSampler
    from bitmark.evaluation.keys import fixed_key

    for rule in ("keyed-spatial", "keyed", "bitmark-2025"):
        for n in (2, 3, 5):
            for top_k, top_p in ((0, 1.0), (0, 0.9), (1, 1.0)):
                for impl in ("fast", "loop"):
                    for layout in (2, 1):
                        key = fixed_key(n, rule=rule, context=n, delta=2.0, scales=(0, 2, 3, 4))
                        sampler = WatermarkSampler(key, top_k=top_k, top_p=top_p, impl=impl)
                        g = torch.Generator().manual_seed(7 * n + top_k)
                        out = []
                        for s, side in enumerate(SIDES):
                            shape = (3, side * side, D, 2) if layout == 2 else (3, side * side, D)
                            logits = torch.randn(shape, generator=g) * 2
                            out.append(sampler(logits, scale=s, grid=(side, side), generator=g))
                        yield f"sampler/{rule}/n{n}/k{top_k}p{top_p}/{impl}/layout{layout}", out


def detector_cases():
    """(name, Detection) for every rule, null, unique, n, prior and weights on random and correlated bits."""
    from bitmark.benchmarks.null_calibration import iid_pyramid, markov_pyramid
    from bitmark.detectors import BitDetector
    from bitmark.detectors.bit_detector import fit_prior
    from bitmark.evaluation.keys import fixed_key

    sources = {
        "iid": iid_pyramid(12, seed=3, sides=SIDES, d=D),
        "markov": markov_pyramid(12, seed=4, sides=SIDES, d=D),
    }
    arms = [("keyed-spatial", "self-normalised", False), ("keyed-spatial", "binomial", False),
            ("keyed-spatial", "binomial", True), ("keyed", "binomial", False), ("keyed", "binomial", True),
            ("bitmark-2025", "binomial", False), ("bitmark-2025", "binomial", True)]
    for name, pyr in sources.items():
        for rule, null, unique in arms:
            for n in (2, 3, 6):
                key = fixed_key(100 + n, rule=rule, context=n, scales=(1, 2, 3, 4))
                yield f"detector/{name}/{rule}/{null}/u{int(unique)}/n{n}", BitDetector(key, null=null, unique=unique).detect(pyr)
        key = fixed_key(7)
        yield f"detector/{name}/weights", BitDetector(key, weights=[0, 1, 0.5, 2, 1]).detect(pyr)
        prior = fit_prior([markov_pyramid(20, seed=9, sides=SIDES, d=D)], n=2)
        yield f"detector/{name}/prior", BitDetector(key, prior=prior, prior_strength=8.0).detect(pyr)
        yield f"detector/{name}/scales", BitDetector(key, scales=(3, 4), null="binomial").detect([p.numpy() for p in pyr])


def detection_record(det) -> dict:
    counts = np.concatenate([det.num_scored, det.num_green, det.scale_scored.ravel(), det.scale_green.ravel()])
    return {
        "counts": hashlib.sha256(counts.astype(np.int64).tobytes()).hexdigest()[:20],
        "z": [float(f"{z:.12g}") for z in det.z_score],
        "neg_log10_p": [float(f"{v:.12g}") for v in det.neg_log10_p],
        "expected": [float(f"{v:.12g}") for v in det.expected_green],
    }


def generator_cases():
    """(name, bits hash) of the shipped photos generator: plain, watermarked, top-p, and a re-drawn prefix."""
    from bitmark.core.sampler import PlainSampler, WatermarkSampler
    from bitmark.evaluation.keys import fixed_key
    from bitmark.models import load_generator

    gen, _ = load_generator("photos")
    classes = torch.arange(6) % gen.cfg.num_classes
    for name, sampler in (("plain", PlainSampler()), ("wm", WatermarkSampler(fixed_key(1))),
                          ("wm-top-p", WatermarkSampler(fixed_key(2, context=3), top_p=0.9))):
        bits = gen.sample(classes, sampler=sampler, generator=torch.Generator().manual_seed(5))
        yield f"generator/{name}", bits
        prefix = gen.sample(classes, sampler=sampler, generator=torch.Generator().manual_seed(6), prefix=bits[:2])
        yield f"generator/{name}/prefix", prefix


def compute() -> dict:
    torch.set_num_threads(1)
    out = {name: _bits_hash(p) for name, p in sampler_cases()}
    out.update({name: detection_record(d) for name, d in detector_cases()})
    out.update({name: _bits_hash(p) for name, p in generator_cases()})
    return out


if __name__ == "__main__":
    result = compute()
    if "--write" in sys.argv:
        GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True)[:2000])
