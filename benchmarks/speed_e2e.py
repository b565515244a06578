"""End-to-end figures of `bench speed`: what a user of the shipped models waits for.

Times are CPU seconds of one thread (`timing.cpu_clock`) except where threads or a user's wait are the
point: start-up and `detect` from files are wall seconds (their CPU seconds beside them), threads wall.

* generate: images/s of one 64-image batch of the shipped generator (sampling and decoding, as `bitmark
  generate` does it, PNG writing apart), plain vs watermarked, and with the key-value cache off;
* detect from files: `bitmark detect` in a fresh process on 1 and on N PNG files; start-up is the 1-file
  time, throughput (N - 1) / (t_N - t_1); also `bitmark --help` and `import torch` alone;
* threads: generation and encode+detect of 64 images in one process at 1 vs 2 torch threads.
"""

from __future__ import annotations

import inspect
import resource
import subprocess
import sys
import tempfile
import time
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


def _child_cpu() -> float:
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return c.ru_utime + c.ru_stime


def _cli(cpu: list[float], *cmd: str):
    """Run `cmd` (default: `python -m bitmark ...`) to completion; its CPU seconds are appended to `cpu`."""
    cmd = list(cmd) if cmd[0] == sys.executable else [sys.executable, "-m", "bitmark", *cmd]

    def run():
        t0 = _child_cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu.append(_child_cpu() - t0)
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
        cpu: dict[str, list[float]] = {name: [] for name in ("import torch", "bitmark --help", "detect 1 file", "detect N")}
        times = interleave({
            "import torch": _cli(cpu["import torch"], sys.executable, "-c", "import torch"),
            "bitmark --help": _cli(cpu["bitmark --help"], "--help"),
            "detect 1 file": _cli(cpu["detect 1 file"], "detect", "--key", key_path, files[0], "--json"),
            f"detect {NUM_FILES} files": _cli(cpu["detect N"], "detect", "--key", key_path, *files, "--json"),
        }, max(3, rounds // 2 + 1), clock=time.perf_counter)
    warm = 1  # interleave's warm-up call of each variant
    out = {name: {"wall_s": spread(ts), "cpu_s": spread(c[warm:])} for (name, ts), c in zip(times.items(), cpu.values())}
    out["num_files"] = NUM_FILES
    return out


def _throughput(d: dict) -> dict:
    """images/s from the medians: after start-up (N - 1) / (t_N - t_1), with it N / t_N; wall and CPU."""
    n = d.get("num_files", NUM_FILES)
    one, many = d["detect 1 file"], d[f"detect {n} files"]
    out = {}
    for clock in ("wall_s", "cpu_s"):
        extra = many[clock]["median"] - one[clock]["median"]
        out[clock] = {"after_startup": (n - 1) / extra if extra > 0 else float("nan"),
                      "with_startup": n / many[clock]["median"]}
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
        times = interleave({"1 thread": at(1, fn), "2 threads": at(2, fn)}, rounds, clock=time.perf_counter)
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
    lines.append("`bitmark detect` in a fresh process, 32x32 PNG files (wall s; CPU s):")
    for name, v in d.items():
        if isinstance(v, dict) and "wall_s" in v:
            lines.append(f"  {name:>22}: {fmt(v['wall_s'], ' s')}; CPU {fmt(v['cpu_s'], ' s')}")
    tp = _throughput(d)
    lines.append(f"  {'images/s':>22}: {tp['wall_s']['after_startup']:.0f} after start-up, {tp['wall_s']['with_startup']:.0f} with it; "
                 f"per CPU s {tp['cpu_s']['after_startup']:.0f} after start-up, {tp['cpu_s']['with_startup']:.0f} with it")
    lines.append("torch threads, in one process (wall ms per batch of 64):")
    for name, v in e["threads"].items():
        lines.append(f"  {name:>22}: 1 thread {fmt(v['1 thread'], ' ms', 0)}, 2 threads {fmt(v['2 threads'], ' ms', 0)}, "
                     f"2/1 time {fmt(v['2 / 1 thread time'])}")
    return lines
