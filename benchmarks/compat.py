"""Compatibility with the published BitMark detector: `bitmark bench compat [--num N] [--backend ...] [--json]`.

On one backend, N images are sampled three ways with the `bitmark-2025` rule (n = 2, δ = 2, a fixed
benchmark key): biased at the published code's positions (bits 2..d-1 of each token), at ours (bits
1..d-1, every bit with a context), and clean (same conditioning and seeds). Each sampled pyramid is scored
both ways: the published detector's stream count (`BitDetector(key, counting="stream")`: every overlapping
pair of the watermarked scales laid out as one stream, flagged at z > 4) and our within-token count
(`BitDetector(key)`, binomial null), and the same after a PNG round trip through the backend's encoder.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from bitmark.detectors.stream import PUBLISHED_Z_THRESHOLD

ARMS = ("published positions (bits 2..d-1)", "our positions (bits 1..d-1)", "clean")


def rows_for(backend: Any, num: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (arm, bits read): mean z both ways, their ratio, and the share flagged at z > 4 both ways."""

    from bitmark.backends import make_sampler
    from bitmark.core.sampler import PUBLISHED_BIAS_FROM
    from bitmark.detectors import BitDetector
    from bitmark.evaluation.keys import fixed_key
    from bitmark.evaluation.roundtrip import png_round_trip

    key = fixed_key(2, rule="bitmark-2025")
    stream, token = BitDetector(key, counting="stream"), BitDetector(key)
    samplers = dict(zip(ARMS, (make_sampler(key, bias_from=PUBLISHED_BIAS_FROM), make_sampler(key), make_sampler(None))))
    rows = []
    for arm, sampler in samplers.items():
        drawn = backend.sample(sampler, num, seed=seed, progress=False)
        for read, bits in (("sampled bits", drawn.pyramid), ("PNG, re-encoded", backend.encode(png_round_trip(drawn.images)))):
            ds, dt = stream.detect(bits), token.detect(bits)
            zs, zt = ds.z_score, dt.z_score
            d = bits[0].shape[-1]
            rows.append({
                "arm": arm, "bits": read, "n": num, "d": d, "z_stream_mean": float(zs.mean()), "z_token_mean": float(zt.mean()),
                "ratio_of_means": float(zs.mean() / zt.mean()) if zt.mean() != 0 else None,
                "flagged_stream": float(np.mean(zs > PUBLISHED_Z_THRESHOLD)),
                "flagged_token": float(np.mean(zt > PUBLISHED_Z_THRESHOLD)),
                "pairs_stream": int(ds.num_scored[0]), "pairs_token": int(dt.num_scored[0]),
            })
    return rows


def table(rows: list[dict[str, Any]], description: str) -> str:
    lines = [f"Backend: {description}. z > {PUBLISHED_Z_THRESHOLD:g} flags (the published threshold), both columns.", "",
             "| arm | bits | d | pairs (stream / token) | mean z stream (published) | mean z token (ours) | ratio | flagged stream | flagged token |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r["ratio_of_means"] is None else f"{r['ratio_of_means']:.4f}"
        lines.append(f"| {r['arm']} | {r['bits']} | {r['d']} | {r['pairs_stream']} / {r['pairs_token']} | {r['z_stream_mean']:.2f} | "
                     f"{r['z_token_mean']:.2f} | {ratio} | {r['flagged_stream']:.2f} | {r['flagged_token']:.2f} |")
    return "\n".join(lines) + "\n"


def run(backend: Any, num: int = 64, as_json: bool = False) -> list[dict[str, Any]]:
    rows = rows_for(backend, num)
    if as_json:
        for r in rows:
            print(json.dumps({"backend": backend.description, **r}))
    else:
        print(table(rows, backend.description))
    return rows
