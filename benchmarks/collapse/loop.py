"""One cell of the collapse loop -- a (regime, arm, seed) run over generations t = 0..T -- for any world.

Generation t >= 1: the images entering the pool pass the arm's filter; the generator of generation t-1 is
trained on the pool (a world decides how: the bitmark world fine-tunes it, the toy refits it); it samples
the next candidates *with the watermark*; and the metrics are taken. What enters, by regime:

* replace    -- the previous generation's samples only (the pool is replaced);
* accumulate -- at t = 1 the first real pool plus generation 0's samples, then each generation's samples;
  the pool keeps everything that ever passed the filter;
* fresh      -- a new scrape each generation: `fresh_pool` images, a share pi of them the previous
  generation's samples and the rest real images not scraped before (the pool is replaced).

Whatever enters passes the world's channel first (`transmit`: the bitmark world applies the run's attack
chain to every image, real and synthetic; the toy, which has no pixels, passes items unchanged), so every
filter sees what a scraper would. A share `marked_share` of each generation's samples comes from the
marking generator, the rest from an unmarked copy of the same model (`marked_mask`).

A world is any object with: `name`, `generation_zero(seed) -> (model, samples, metrics)`,
`real(seed, start, n)`, `sample(model, n, seed)`, `transmit(batch, seed)`, `fit(model, pool, seed) -> (model, info)`,
`flagged(batch, fpr)`, `selection_features(batch)`, `log_likelihood(model, batch)`,
`measure(model, samples, pool) -> dict`. Seeds are shared across arms: generation t of seed s samples and
trains with the same seeds in every arm, so arms differ only by what their filter kept.

Cells are written as one CSV each when finished (`cells/WORLD/REGIME__ARM__sSEED.csv`, atomically), and a
rerun skips finished cells: an interrupted run loses at most the cell in flight.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bitmark.benchmarks.collapse.batch import Batch
from bitmark.benchmarks.collapse.config import MATCHED_ARMS, CollapseConfig
from bitmark.benchmarks.collapse.filters import FilterContext, select

log = logging.getLogger(__name__)

FILTER_COLUMNS = ("entering", "kept", "synthetic_in", "synthetic_kept", "real_in", "real_dropped", "leak_share",
                  "real_dropped_share", "pool_size", "pool_synthetic_share", "marked_in", "marked_kept", "unmarked_in",
                  "unmarked_kept", "contamination_closed", "contamination_ceiling")


def step_seed(seed: int, t: int) -> int:
    """The seed of generation t of seed s: shared by every arm and regime."""
    return 1000 * seed + t


def marked_mask(n: int, share: float, seed: int) -> np.ndarray:
    """Which of a generation's n samples the marking generator makes: exactly round(share x n) of them, at
    places drawn from `seed` (not a fixed pattern, which would tie the mark to the round-robin classes)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng([seed, 19]).permutation(n)[: round(share * n)]] = True
    return mask


def entering(world, cfg: CollapseConfig, regime: str, seed: int, t: int, samples: Batch) -> Batch:
    """The images that reach the filter at generation t (see the module docstring), after the channel."""
    if regime == "replace":
        incoming = samples
    elif regime == "accumulate":
        incoming = world.real(seed, 0, cfg.accumulate_real).concat(samples) if t == 1 else samples
    elif regime == "fresh":
        syn = cfg.synthetic_per_scrape()
        real_n = cfg.fresh_pool - syn
        incoming = world.real(seed, (t - 1) * real_n, real_n).concat(samples.take(np.arange(syn)))
    else:
        raise ValueError(f"unknown regime {regime!r}")
    return world.transmit(incoming, (seed, t, 17))  # shared by every arm: arms differ only by their filter


def run_cell(world, cfg: CollapseConfig, regime: str, arm: str, seed: int, gen0: tuple[Any, Batch, dict],
             matched: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """Rows, one per generation 0..T, of one (regime, arm, seed) cell. `gen0` = (model, samples, metrics)
    of generation 0 (shared); `matched` = {t: images kept by the watermark arm} for the matched arms."""
    model, samples, metrics0 = gen0
    base = {"world": world.name, "regime": regime, "arm": arm, "seed": seed}
    rows = [{**base, "generation": 0, **{c: math.nan for c in FILTER_COLUMNS}, **metrics0}]
    pool: Batch | None = None
    for t in range(1, cfg.generations + 1):
        start = time.time()
        incoming = entering(world, cfg, regime, seed, t, samples)
        n_keep = None
        if arm in MATCHED_ARMS:
            if matched is None or t not in matched:
                raise ValueError(f"arm {arm!r} needs the kept counts of watermark@{cfg.match_fpr} (run it first)")
            n_keep = matched[t]
        rng = np.random.default_rng([seed, t, 7])
        ctx = FilterContext(world, model, pool if regime == "accumulate" else None, n_keep, rng)
        keep = select(arm, incoming, ctx)
        kept = incoming.take(keep)
        pool = pool.concat(kept) if (regime == "accumulate" and pool is not None) else kept
        stats = filter_stats(incoming, keep, pool)
        if len(pool) == 0:
            raise RuntimeError(f"{regime}/{arm}/seed {seed}: the filter left nothing to train on at t={t}")
        model, info = world.fit(model, pool, step_seed(seed, t))
        samples = world.sample(model, cfg.samples, step_seed(seed, t))
        metrics = world.measure(model, samples, pool)
        rows.append({**base, "generation": t, **stats, **metrics, **info, "wall_s": round(time.time() - start, 2)})
        log.info("%s %s/%s seed %d t=%d: %s", world.name, regime, arm, seed, t,
                 {k: v for k, v in rows[-1].items() if k in ("kept", "fd", "z_mean", "wall_s")})
    return rows


def filter_stats(incoming: Batch, keep: np.ndarray, pool: Batch) -> dict[str, Any]:
    """Counts of one generation's filtering. Contamination = the synthetic share of the images that enter
    (no filter) or are kept; `contamination_closed` = 1 - kept's / entering's (0: no filter, 1: the oracle),
    and `contamination_ceiling` the same for a filter that drops exactly the marked images -- the most a
    watermark filter can close when only a share of the synthetic images carries the mark."""
    mask = np.zeros(len(incoming), dtype=bool)
    mask[keep] = True
    syn, marked = incoming.synthetic, incoming.marked
    unmarked = syn & ~marked
    c_in = syn.mean() if len(syn) else math.nan
    c_kept = (mask & syn).sum() / mask.sum() if mask.any() else math.nan
    c_ideal = unmarked.sum() / (~marked).sum() if (~marked).any() else math.nan
    return {
        "entering": len(incoming), "kept": int(mask.sum()),
        "synthetic_in": int(syn.sum()), "synthetic_kept": int((mask & syn).sum()),
        "real_in": int((~syn).sum()), "real_dropped": int((~mask & ~syn).sum()),
        "leak_share": float((mask & syn).sum() / syn.sum()) if syn.any() else math.nan,
        "real_dropped_share": float((~mask & ~syn).sum() / (~syn).sum()) if (~syn).any() else math.nan,
        "pool_size": len(pool), "pool_synthetic_share": float(pool.synthetic.mean()),
        "marked_in": int(marked.sum()), "marked_kept": int((mask & marked).sum()),
        "unmarked_in": int(unmarked.sum()), "unmarked_kept": int((mask & unmarked).sum()),
        "contamination_closed": float(1 - c_kept / c_in) if c_in > 0 else math.nan,
        "contamination_ceiling": float(1 - c_ideal / c_in) if c_in > 0 else math.nan,
    }


def cell_path(out: Path, world: str, regime: str, arm: str, seed: int) -> Path:
    return out / "cells" / world / f"{regime}__{arm}__s{seed}.csv"


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as CSV atomically (the union of their keys, first-seen order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _parse(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def run_world(make_world: Callable[[], Any], name: str, cfg: CollapseConfig, out: Path, progress: bool = True,
              resumable: bool = True) -> list[dict[str, Any]]:
    """Every (seed, regime, arm) cell of `cfg` for the world `make_world()` (made only if a cell is left to
    run); all rows. With `resumable`, each finished cell is written to its file and finished cells are read
    back instead of run (the toy, which takes milliseconds a cell, is simply rerun)."""
    from bitmark.io.progress import progress as progress_bar

    world = None
    cells = [(s, r, a) for s in range(cfg.seeds) for r in cfg.regimes for a in cfg.arms_of(r)]
    rows: list[dict[str, Any]] = []
    gen0: dict[int, tuple] = {}
    with progress_bar(desc=f"collapse {name}", total=len(cells), unit="cell", enabled=progress) as bar:
        for seed, regime, arm in cells:
            path = cell_path(out, name, regime, arm, seed)
            if resumable and path.exists():
                rows += read_rows(path)
                bar.update()
                continue
            world = world or make_world()
            if seed not in gen0:
                gen0 = {seed: world.generation_zero(seed)}  # shared by every cell of this seed
            matched = None
            if arm in MATCHED_ARMS:
                ref = [r for r in rows if (r["regime"], r["arm"], r["seed"]) == (regime, f"watermark@{cfg.match_fpr:g}", seed)]
                matched = {int(r["generation"]): int(r["kept"]) for r in ref if int(r["generation"]) > 0}
            cell = run_cell(world, cfg, regime, arm, seed, gen0[seed], matched)
            if resumable:
                write_rows(path, cell)
            rows += cell
            bar.update()
    return rows
