"""Which scales keep the mark through common image processing? A quick look, far cheaper than `bench
robustness`, to compare tokenizers (e.g. the 32x32 and 64x64 embedded sets of issue 13).

N watermarked samples at each δ (one fixed benchmark key, so the green bits are the same at every δ) and N
clean samples, the same seeds and classes; each attack is applied to the decoded images, which are then
re-encoded. Per arm and attack: bit agreement per scale between the sampled and the re-encoded pyramid,
mean z, and the share the detector's own analytic 1% test flags (TPR for marked arms, FPR for clean).
These are analytic-threshold figures on N images, not the empirical-threshold TPRs of `bench robustness`.

Run: `OMP_NUM_THREADS=1 python -m bitmark.benchmarks.attack_agreement --data runs/photos64 --num 200 [--json]`
(one thread, as the CLI's default --threads 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from bitmark.evaluation.keys import fixed_key
from bitmark.evaluation.roundtrip import agreement

log = logging.getLogger(__name__)

ATTACKS = ("none:0", "jpeg:75", "jpeg:50", "blur:1", "resize:0.5")
DELTAS = (2.0, 1.0, 0.5)


def run(data: str = "photos", num: int = 200, deltas=DELTAS, specs=ATTACKS, seed: int = 0, as_json: bool = False) -> dict:
    from bitmark import attacks
    from bitmark.backends import EmbeddedBackend, make_sampler
    from bitmark.detectors import BitDetector

    backend = EmbeddedBackend(data)
    detector = BitDetector(fixed_key(0), fpr=0.01)  # detection ignores δ: the same green bits at every δ
    arms = {"clean": None, **{f"delta {d:g}": fixed_key(0, delta=d) for d in deltas}}
    result = {"data": data, "n": num, "image_size": backend.tok.cfg.image_size,
              "bits_per_image": backend.tok.cfg.bits_per_image, "arms": {}}
    start = time.time()
    for arm, key in arms.items():
        drawn = backend.sample(make_sampler(key), num, seed=seed, progress=False)
        rows = {}
        for spec in specs:
            reread = backend.encode(attacks.parse(spec)(drawn.images, seed=1))
            det = detector.detect(reread)
            rows[spec] = {
                "z_mean": round(float(np.mean(det.z_score)), 2),
                "flagged_at_1pct": round(float(np.mean(det.is_watermarked)), 3),
                "agreement_per_scale": [s["bits"] for s in agreement(drawn.pyramid, reread)["per_scale"]],
            }
        result["arms"][arm] = {"z_sampled_mean": round(float(np.mean(detector.detect(drawn.pyramid).z_score)), 2), **rows}
        log.info("%s done after %.0f s", arm, time.time() - start)
    result["wall_s"] = round(time.time() - start, 1)
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="photos", help="shipped models name, or a folder / weights path")
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    run(a.data, a.num, as_json=a.json)
