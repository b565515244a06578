"""Which parent bits can seed a keyed-content table: `bitmark bench seed-bits [--num 1000] [--attacked 200]`.

A keyed-content token scores only if every seed bit of its parent token comes back from the attacked image, and
its table resists stealing only if the seed rarely repeats across images at its position. So per (scale, bit
index) of marked samples (re-encoded, as a detector reads them) this measures the share of bits that come back
after the headline attacks and the bit's entropy; per seed choice (rule, width, parent scale) the share of tokens
whose whole seed comes back, and the collision probability: how likely two images share the seed at one
position, averaged over positions (an unbiased pair count), times 999 = the repeats a target's cell has among
1,000 observed images. It also prints the ranking `bitmark.core.rules.ROBUST_SEED_ORDER` was taken from.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

ATTACKS = ("jpeg:75", "noise:0.05", "regen_autoencoder:1")  # as `bench stealing`'s robustness rows
RANK_SCALE = 2  # the parent scale of the finest scale, which carries most of the evidence (64 of 85 tokens)


@dataclass
class Config:
    num: int = 1000  # marked samples whose seeds give the entropy and the collision probabilities
    attacked: int = 200  # of those, attacked and re-encoded for the survival shares
    widths: tuple[int, ...] = (4, 8, 12, 16)
    key: int = 3  # fixed_key index, keyed-content (as bench stealing's keyed-content scheme)
    seed: int = 7  # sampling seed: not one of bench stealing's


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def collision(seed: np.ndarray) -> float:
    """Mean over positions of P(two distinct images share the seed there), from pair counts. seed (M, L)."""
    M = seed.shape[0]
    shared = [(c * (c - 1)).sum() for c in (np.unique(col, return_counts=True)[1] for col in seed.T)]
    return float(np.mean(shared) / (M * (M - 1)))


def _code(bits: np.ndarray, idx: list[int]) -> np.ndarray:
    """(M, L, d) bool -> (M, L) seed integers from the bit indices `idx`."""
    return (bits[..., idx].astype(np.int64) << np.arange(len(idx))).sum(-1)


def ranking(entropy: np.ndarray, agree: dict[str, np.ndarray]) -> list[int]:
    """Bit indices by entropy per bit of log-survival lost under the worst attack: what a seed gains per cost."""
    worst = np.min(np.stack(list(agree.values())), 0)
    cost = -np.log2(np.clip(worst, 1e-6, 1 - 1e-6))
    return [int(i) for i in np.argsort(-(entropy / cost), kind="stable")]


def measure(cfg: Config, progress: bool = True) -> dict[str, Any]:
    from bitmark import attacks
    from bitmark.core.rules import SEEDED_RULES, seed_indices
    from bitmark.evaluation.keys import fixed_key
    from bitmark.evaluation.provenance import cpu_name
    from bitmark.io.progress import progress as bar
    from bitmark.models import load_generator
    from bitmark.models.sampling import sample_images

    if cfg.attacked > cfg.num:
        raise ValueError(f"attacked ({cfg.attacked}) must be at most num ({cfg.num})")
    start = time.time()
    gen, tok = load_generator("photos")
    classes = torch.arange(cfg.num) % gen.cfg.num_classes
    images, _ = sample_images(gen, tok, classes, key=fixed_key(cfg.key, rule="keyed-content"), seed=cfg.seed,
                              progress=progress)
    base = [b.numpy().astype(bool) for b in tok.encode(images)]
    after = {}
    for spec in bar(ATTACKS, desc="attacks", enabled=progress):
        after[spec] = [b.numpy().astype(bool) for b in tok.encode(attacks.parse(spec)(images[: cfg.attacked], seed=11))]
    A, d = cfg.attacked, base[0].shape[-1]
    bits, entropy, agree = [], {}, {}
    for s in range(len(base) - 1):  # the finest scale seeds nothing
        flat = base[s].reshape(cfg.num, -1, d)
        entropy[s] = _entropy(flat.mean((0, 1)))
        agree[s] = {spec: (after[spec][s] == base[s][:A]).reshape(-1, d).mean(0) for spec in ATTACKS}
        bits += [{"scale": s, "bit": j, "entropy": round(float(entropy[s][j]), 4),
                  **{spec: round(float(agree[s][spec][j]), 4) for spec in ATTACKS}} for j in range(d)]
    seeds = []
    for rule in SEEDED_RULES:
        for width in cfg.widths:
            idx = seed_indices(rule, d, width)
            for s in range(1, len(base) - 1):  # parent scale 0 seeds one token per image
                seed = _code(base[s].reshape(cfg.num, -1, d), idx)
                survive = {spec: float((_code(after[spec][s].reshape(A, -1, d), idx) == seed[:A]).mean())
                           for spec in ATTACKS}
                p = collision(seed)
                seeds.append({"rule": rule, "width": width, "parent_scale": s, **survive, "collision": p,
                              "repeats_in_1000": 999 * p})
    order = ranking(entropy[RANK_SCALE], agree[RANK_SCALE])
    return {"config": asdict(cfg), "wall_s": round(time.time() - start, 1), "machine": cpu_name(),
            "bits": bits, "seeds": seeds, "ranking_scale": RANK_SCALE, "ranking": order}


def summary(result: dict[str, Any]) -> str:
    lines = [f"# Seed bits: {result['config']['num']} marked samples, {result['config']['attacked']} attacked; "
             f"{result['wall_s']:.0f} s on {result['machine']}", "",
             "| scale | bit | entropy | " + " | ".join(ATTACKS) + " |", "|---" * (3 + len(ATTACKS)) + "|"]
    lines += [f"| {b['scale']} | {b['bit']} | {b['entropy']:.2f} | " + " | ".join(f"{b[a]:.3f}" for a in ATTACKS) + " |"
              for b in result["bits"]]
    lines += ["", "| rule | width | parent scale | " + " | ".join(f"seed survives {a}" for a in ATTACKS)
              + " | collision | repeats in 1,000 |", "|---" * (5 + len(ATTACKS)) + "|"]
    lines += [f"| {r['rule']} | {r['width']} | {r['parent_scale']} | " + " | ".join(f"{r[a]:.3f}" for a in ATTACKS)
              + f" | {r['collision']:.2e} | {r['repeats_in_1000']:.2f} |" for r in result["seeds"]]
    lines += ["", f"ranking of scale {result['ranking_scale']}'s bits (entropy / -log2 worst survival): "
              + ", ".join(map(str, result["ranking"]))]
    return "\n".join(lines) + "\n"
