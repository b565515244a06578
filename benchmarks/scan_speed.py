"""Throughput of `bitmark scan`: the local engine and the Ray engine with 1 and 2 workers, in one run.

NUM held-out photos (32x32 PNGs, cycled) are written to a temporary folder; each engine scans them into its
own fresh manifest with the shipped tokenizer and the plain detector (`--no-resync`: what is compared is the
engines; the resynchronisation stage's own cost per image is `bitmark bench detect-speed`'s). Reported per
run: images/s over the whole scan call, and for Ray the time to the first rows and the marginal rate: each
pool size also scans the first SMALL files into another manifest, and (NUM - SMALL) / (t_NUM - t_SMALL) is
the rate once the fixed cost (actors started, models loaded, pipeline set up) is paid, which is what a long
scan on a cluster sees. Ray is started once, locally, with one logical CPU more than the largest pool (for
Ray Data's own tasks); its start-up is reported apart. The local engine's verdicts are compared with each
Ray run's (they must agree).

Run: `bitmark bench scan [--num 800] [--json]` or `python -m bitmark.benchmarks.scan_speed`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from bitmark.evaluation.provenance import cpu_name


def _load() -> str:
    try:
        return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:
        return "load unknown"


def measure(num: int = 800, workers: tuple[int, ...] = (1, 2), batch_size: int = 64) -> dict:
    from bitmark.detectors.manifest import manifest_rows, row_path
    from bitmark.detectors.scan import scan
    from bitmark.detectors.scan_ray import import_ray
    from bitmark.evaluation.keys import fixed_key
    from bitmark.io.datasets import load_dataset
    from bitmark.io.images import save_png
    from bitmark.models import load_tokenizer

    ray = import_ray()
    key, tok = fixed_key(0), load_tokenizer("photos")
    photos = load_dataset("photos", "heldout").images
    result: dict = {"machine": f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, ray {ray.__version__}",
                    "num": num, "batch_size": batch_size, "load_before": _load(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bitmark-bench-scan-") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        for i in range(num):
            save_png(root / f"{i:06d}.png", photos[i % len(photos)])
        t0 = time.perf_counter()
        scan(key, [root], Path(tmp) / "local.jsonl", encoder=tok, batch_size=batch_size, progress=False, resync=False)
        wall = time.perf_counter() - t0
        result["runs"].append({"engine": "local", "workers": 1, "wall_s": round(wall, 2), "images_per_s": round(num / wall, 1)})
        local = {row_path(x): x for x in manifest_rows(Path(tmp) / "local.jsonl")}
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=max(workers) + 1, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        result["ray_init_s"] = round(time.perf_counter() - t0, 2)
        small = sorted(root.iterdir())[: max(1, num // 8)]
        try:
            for w in workers:
                out = Path(tmp) / f"ray-{w}.jsonl"
                t_small = scan(key, small, Path(tmp) / f"ray-{w}-small.jsonl", encoder=tok, batch_size=batch_size,
                               engine="ray", workers=w, progress=False, resync=False)["timing"]["total_s"]
                t = scan(key, [root], out, encoder=tok, batch_size=batch_size, engine="ray", workers=w, progress=False,
                         resync=False)["timing"]
                marginal = (num - len(small)) / max(1e-9, t["total_s"] - t_small)
                same = {row_path(x): x for x in manifest_rows(out)} == local
                result["runs"].append({"engine": "ray", "workers": w, "wall_s": round(t["total_s"], 2),
                                       "images_per_s": round(num / t["total_s"], 1), "first_rows_s": t["first_rows_s"],
                                       "small": len(small), "small_wall_s": round(t_small, 2),
                                       "marginal_images_per_s": round(marginal, 1), "same_rows_as_local": same})
        finally:
            ray.shutdown()
    result["load_after"] = _load()
    return result


def report(result: dict) -> str:
    lines = [f"{result['num']} images, batch {result['batch_size']}; {result['machine']}",
             f"{result['load_before']} (before), {result['load_after']} (after); local ray.init {result['ray_init_s']} s", "",
             "| engine | workers | wall s | images/s | first rows s | wall s, first N/8 | marginal images/s | rows = local |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['wall_s']} | {r['images_per_s']} | {r.get('first_rows_s', '')} "
                     f"| {r.get('small_wall_s', '')} | {r.get('marginal_images_per_s', '')} | {r.get('same_rows_as_local', '')} |")
    return "\n".join(lines)


def run(num: int = 800, as_json: bool = False) -> dict:
    result = measure(num=num)
    print(json.dumps(result) if as_json else report(result))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num", type=int, default=800)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    run(num=a.num, as_json=a.json)
