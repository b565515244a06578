"""Throughput of image detection with the resynchronisation stage on and off, in one run:
`bitmark bench detect-speed [--num N] [--json]`.

N watermarked samples of the shipped generator are written as PNG files, a quarter each un-attacked,
centre-cropped (0.75), mirrored and JPEG-compressed (75), and read back through `detect_files` -- the
path `bitmark detect` takes -- by the plain `ImageDetector` and by `ResyncDetector`, one torch thread; each
with the default bit detector (the model null of the detector card, `bitmark.detectors.defaults`) and with
the rule's self-normalised null (`--null self-normalised`).
Wall time and this process's CPU time are both reported: on a shared machine the CPU time is the cost.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def measure(num: int = 128, repeats: int = 2) -> dict:
    from bitmark import attacks
    from bitmark.detectors import BitDetector, ImageDetector, ResyncDetector
    from bitmark.detectors.defaults import default_detector
    from bitmark.evaluation.keys import fixed_key
    from bitmark.evaluation.provenance import cpu_name
    from bitmark.io.images import save_png
    from bitmark.models import load_generator
    from bitmark.models.sampling import sample_images

    gen, tok = load_generator("photos")
    key = fixed_key(0)
    marked = sample_images(gen, tok, torch.arange(num) % gen.cfg.num_classes, key=key, seed=0, progress=False)[0]
    specs = ("none:0", "crop:0.75", "hflip:1", "jpeg:75")
    parts = np.array_split(np.arange(num), len(specs))
    result: dict = {"machine": f"{cpu_name()}, 1 thread, torch {torch.__version__}", "images": num, "attacks": list(specs)}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for spec, idx in zip(specs, parts):
            for i, x in zip(idx, attacks.parse(spec)(marked[idx], seed=1)):
                paths.append(save_png(Path(tmp) / f"{i:05d}.png", x))
        for name, det in (("resync off", ImageDetector(tok, default_detector(key))),
                          ("resync on", ResyncDetector(tok, default_detector(key))),
                          ("resync off, self-normalised", ImageDetector(tok, BitDetector(key))),
                          ("resync on, self-normalised", ResyncDetector(tok, BitDetector(key)))):
            best_wall, best_cpu, flagged = float("inf"), float("inf"), 0
            for _ in range(repeats):
                w0, c0 = time.perf_counter(), time.process_time()
                rows = list(det.detect_files(paths))
                best_wall, best_cpu = min(best_wall, time.perf_counter() - w0), min(best_cpu, time.process_time() - c0)
                flagged = sum(bool(r["is_watermarked"]) for r in rows)
            result[name] = {"wall_s": best_wall, "cpu_s": best_cpu, "images_per_s": num / best_wall,
                            "cpu_ms_per_image": 1e3 * best_cpu / num, "flagged": flagged}
    return result


def run(num: int = 128, as_json: bool = False) -> dict:
    r = measure(num)
    if as_json:
        print(json.dumps(r))
        return r
    print(f"machine: {r['machine']}; {r['images']} PNGs ({', '.join(r['attacks'])}, a quarter each)")
    for name in ("resync off", "resync on", "resync off, self-normalised", "resync on, self-normalised"):
        s = r[name]
        print(f"  {name}: {s['images_per_s']:.1f} images/s wall, {s['cpu_ms_per_image']:.1f} ms CPU per image, "
              f"{s['flagged']}/{r['images']} flagged")
    return r


if __name__ == "__main__":
    run()
