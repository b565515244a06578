"""End-to-end figures of `bench speed`: what a user of the shipped models waits for.

* generate: images/s of one 64-image batch of the shipped generator (sampling and decoding, as `bitmark
  generate` does it, PNG writing apart), plain vs watermarked, and with the key-value cache off;
* detect from files: `bitmark detect` in a fresh process on 1 and on N PNG files; start-up is the 1-file
  time, throughput (N - 1) / (t_N - t_1); also `bitmark --help` and `import torch` alone;
* threads: generation and encode+detect of 64 images in one process at 1 vs 2 torch threads.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from bitmark.benchmarks.timing import fmt, interleave, ratio, spread
from bitmark.core.keys import WatermarkKey
from bitmark.core.sampler import PlainSampler, WatermarkSampler

BATCH = 64
NUM_FILES = 256


def _generate_variants(key: WatermarkKey) -> dict:
    from bitmark.models import classes, load_generator
    from bitmark.models.sampling import class_indices

    gen, tok = load_generator("photos")
    idx = class_indices(BATCH, classes("photos"), None)
    has_cache = "cache" in inspect.signature(gen.sample).parameters

    def batch(sampler, **kw):
        def run():
            bits = gen.sample(idx, sampler=sampler, generator=torch.Generator().manual_seed(0), **kw)
            tok.decode(bits)
        return run

    variants = {"plain": batch(PlainSampler()), "watermarked": batch(WatermarkSampler(key))}
    if has_cache:
        variants["watermarked, no cache"] = batch(WatermarkSampler(key), cache=False)
    return variants


def generate_figures(key: WatermarkKey, rounds: int) -> dict:
    variants = _generate_variants(key)
    times = interleave(variants, rounds)
    out = {name: {"images_per_s": spread([BATCH / t for t in ts])} for name, ts in times.items()}
    out["watermarked / plain time"] = ratio(times, "watermarked", "plain")
    if "watermarked, no cache" in times:
        out["cache speed-up"] = ratio(times, "watermarked, no cache", "watermarked")
    return out


def _cli(*args: str):
    cmd = [sys.executable, "-m", "bitmark", *args]

    def run():
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def detect_file_figures(key: WatermarkKey, rounds: int) -> dict:
    from bitmark.io.images import save_png

    with tempfile.TemporaryDirectory() as tmp:
        key_path = str(key.save(Path(tmp) / "bench.key"))
        rng = np.random.default_rng(0)
        files = []
        for i in range(NUM_FILES):
            files.append(str(Path(tmp) / f"{i:04d}.png"))
            save_png(files[-1], rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        times = interleave({
            "import torch": lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True),
            "bitmark --help": _cli("--help"),
            "detect 1 file": _cli("detect", "--key", key_path, files[0], "--json"),
            f"detect {NUM_FILES} files": _cli("detect", "--key", key_path, *files, "--json"),
        }, max(3, rounds // 2 + 1))
    out = {name: spread(ts, 1.0) for name, ts in times.items()}
    extra = [a - b for a, b in zip(times[f"detect {NUM_FILES} files"], times["detect 1 file"])]
    out["images_per_s_after_startup"] = spread([(NUM_FILES - 1) / max(x, 1e-9) for x in extra])
    out["images_per_s_with_startup"] = spread([NUM_FILES / x for x in times[f"detect {NUM_FILES} files"]])
    return out


def thread_figures(key: WatermarkKey, rounds: int) -> dict:
    from bitmark.detectors import BitDetector
    from bitmark.detectors.image_detector import ImageDetector
    from bitmark.models import load_tokenizer

    gen = _generate_variants(key)["watermarked"]
    images = list(np.random.default_rng(1).integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8))
    det = ImageDetector(load_tokenizer("photos"), BitDetector(key))

    def at(threads: int, fn):
        def run():
            torch.set_num_threads(threads)
            try:
                fn()
            finally:
                torch.set_num_threads(1)
        return run

    out = {}
    for name, fn in (("generate 64", gen), ("encode+detect 64", lambda: det.detect(images))):
        times = interleave({"1 thread": at(1, fn), "2 threads": at(2, fn)}, rounds)
        out[name] = {k: spread(v, 1e3) for k, v in times.items()}
        out[name]["2 / 1 thread time"] = ratio(times, "2 threads", "1 thread")
    return out


def end_to_end_figures(key: WatermarkKey, rounds: int) -> dict:
    return {"generate": generate_figures(key, rounds), "detect_files": detect_file_figures(key, rounds),
            "threads": thread_figures(key, rounds)}


def report_lines(e: dict) -> list[str]:
    lines = [f"generate, shipped photos model, one batch of {BATCH} (sample + decode):"]
    for name, v in e["generate"].items():
        if "images_per_s" in v:
            lines.append(f"  {name:>22}: {fmt(v['images_per_s'], ' images/s', 0)}")
        else:
            lines.append(f"  {name:>22}: {fmt(v)}")
    d = e["detect_files"]
    lines.append("`bitmark detect` in a fresh process, 32x32 PNG files (seconds):")
    for name, v in d.items():
        if not name.startswith("images_per_s"):
            lines.append(f"  {name:>22}: {fmt(v, ' s')}")
    lines.append(f"  {'images/s':>22}: {fmt(d['images_per_s_after_startup'], '', 0)} after start-up, "
                 f"{fmt(d['images_per_s_with_startup'], '', 0)} with it")
    lines.append("torch threads, in one process (ms per batch of 64):")
    for name, v in e["threads"].items():
        lines.append(f"  {name:>22}: 1 thread {fmt(v['1 thread'], ' ms', 0)}, 2 threads {fmt(v['2 threads'], ' ms', 0)}, "
                     f"2/1 time {fmt(v['2 / 1 thread time'])}")
    return lines
