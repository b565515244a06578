"""Outputs of a collapse run: generations.csv, collapse.png and summary.md, all computed from the rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bitmark.benchmarks.collapse.config import CEILING_ARM, CollapseConfig
from bitmark.benchmarks.collapse.metrics import (
    excess_area,
    gap_closed,
    generations_to_threshold,
)


def sort_rows(rows: Iterable[dict[str, Any]], cfg: CollapseConfig) -> list[dict[str, Any]]:
    regimes, arms = list(cfg.regimes), list(cfg.all_arms())
    return sorted(rows, key=lambda r: (r["world"], regimes.index(r["regime"]), arms.index(r["arm"]), r["seed"], r["generation"]))


def curves(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, str], dict[int, np.ndarray]]:
    """{(regime, arm): {seed: values over generations 0..T}}."""
    out: dict[tuple[str, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(rows, key=lambda r: r["generation"]):
        out[(r["regime"], r["arm"])][r["seed"]].append(float(r.get(metric, math.nan)))
    return {k: {s: np.array(v) for s, v in d.items()} for k, d in out.items()}


def cell_summary(rows: list[dict[str, Any]], cfg: CollapseConfig) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (regime, arm): per-seed excess area, generations-to-threshold, last FD; pooled filter counts; z."""
    fd, z = curves(rows, "fd"), curves(rows, "z_mean")
    out = {}
    for key, seeds in fd.items():
        cell_rows = [r for r in rows if (r["regime"], r["arm"]) == key and r["generation"] > 0]
        t = np.arange(len(next(iter(seeds.values()))))
        areas = [excess_area(t, v) for v in seeds.values()]
        hits = [generations_to_threshold(t, v, cfg.threshold) for v in seeds.values()]
        s: dict[str, Any] = {
            "area": float(np.mean(areas)), "area_sd": float(np.std(areas)), "areas": areas, "hits": hits,
            "fd0": float(np.mean([v[0] for v in seeds.values()])), "fdT": float(np.mean([v[-1] for v in seeds.values()])),
            "seeds": len(seeds), "T": int(t[-1]),
        }
        syn_in = sum(r["synthetic_in"] for r in cell_rows)
        real_in = sum(r["real_in"] for r in cell_rows)
        s["leak"] = sum(r["synthetic_kept"] for r in cell_rows) / syn_in if syn_in else math.nan
        for kind in ("marked", "unmarked"):  # cells written before the marked share existed lack the columns
            n_in = sum(r.get(f"{kind}_in", 0) or 0 for r in cell_rows)
            s[f"leak_{kind}"] = sum(r.get(f"{kind}_kept", 0) or 0 for r in cell_rows) / n_in if n_in else math.nan
        s["real_dropped"] = sum(r["real_dropped"] for r in cell_rows) / len(seeds)
        s["real_dropped_share"] = sum(r["real_dropped"] for r in cell_rows) / real_in if real_in else math.nan
        s["pool_syn_T"] = float(np.mean([r["pool_synthetic_share"] for r in cell_rows if r["generation"] == s["T"]]))
        if key in z:
            zs = np.array(list(z[key].values()))
            s["z"] = zs.mean(0).tolist()
        out[key] = s
    return out


def gaps(summary: dict, regime: str) -> dict[str, float | None]:
    none, oracle = summary.get((regime, "none")), summary.get((regime, "oracle"))
    if none is None or oracle is None:
        return {}
    return {arm: gap_closed(none["area"], s["area"], oracle["area"]) for (reg, arm), s in summary.items() if reg == regime}


ARM_STYLES = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("x", "--"), ("P", ":")]  # marker, line


def too_small(cfg: CollapseConfig) -> str | None:
    """A plain sentence when a run is too small for its differences between arms to mean anything."""
    parts = []
    if cfg.seeds < 2:
        parts.append("1 seed: no spread can be estimated, so no difference between arms can be told from noise")
    if cfg.generations < 3:
        parts.append(f"T = {cfg.generations} generations: too few to show a trend")
    return ("Too small to mean anything beyond a smoke test (" + "; ".join(parts) + ").") if parts else None


def coincident(curves: dict[str, np.ndarray]) -> list[str]:
    """'b = a' for each curve equal to an earlier one (they would be drawn on top of each other)."""
    out, seen = [], []
    for name, v in curves.items():
        twin = next((other for other, w in seen if w.shape == v.shape and np.allclose(w, v, rtol=0, atol=1e-9)), None)
        if twin is None:
            seen.append((name, v))
        else:
            out.append(f"{name} = {twin}")
    return out


def plot(path: Path, rows: list[dict[str, Any]], cfg: CollapseConfig, metrics=("fd", "z_mean")) -> Path:
    from bitmark.io.extras import pyplot

    plt = pyplot("the collapse figure")
    from matplotlib.ticker import MaxNLocator
    labels = {"fd": "Fréchet distance to held-out", "z_mean": "mean z of own outputs"}
    colours = dict(zip(cfg.all_arms(), plt.get_cmap("tab10").colors))
    styles = dict(zip(cfg.all_arms(), ARM_STYLES * 2))
    fig, axes = plt.subplots(len(metrics), len(cfg.regimes), figsize=(4 * len(cfg.regimes), 3 * len(metrics) + 0.4),
                             squeeze=False, sharex=True)
    for i, metric in enumerate(metrics):
        c = curves(rows, metric)
        for j, regime in enumerate(cfg.regimes):
            ax = axes[i][j]
            drawn: dict[str, np.ndarray] = {}
            for arm in cfg.arms_of(regime):
                if (regime, arm) not in c:
                    continue
                v = np.array(list(c[(regime, arm)].values()))
                t, m, sd = np.arange(v.shape[1]), v.mean(0), v.std(0)
                drawn[arm] = m
                marker, line = styles[arm]
                ax.plot(t, m, label=arm, color=colours[arm], lw=1.3, ls=line, marker=marker, ms=4, mfc="none")
                if len(v) > 1:
                    ax.fill_between(t, m - sd, m + sd, color=colours[arm], alpha=0.15, lw=0)
            same = coincident(drawn)
            if same:  # a curve drawn exactly over another: say so rather than hide it
                ax.set_title("identical: " + "; ".join(same), loc="right", fontsize=6.5, color="0.3")
            ax.set_title(f"{regime}" if i == 0 else "", loc="left", fontsize=10)
            ax.set_ylabel(labels.get(metric, metric) if j == 0 else "", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
            if i == len(metrics) - 1:
                ax.set_xlabel("generation")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    spread = f"mean ± sd over {cfg.seeds} seeds" if cfg.seeds > 1 else "1 seed (no spread)"
    small = f", T = {cfg.generations}: too small to mean anything (a smoke test)" if too_small(cfg) else ""
    fig.suptitle(f"collapse loop: {spread}{small}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    from PIL import Image

    # a 128-colour palette keeps the figure small enough to commit (~40 KB)
    Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and math.isnan(v):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _hits(hits: list) -> str:
    """Each seed's generation when few seeds; else how many seeds reached it and their median."""
    if len(hits) <= 5:
        return ", ".join("never" if h is None else str(h) for h in hits)
    reached = [h for h in hits if h is not None]
    return f"{len(reached)}/{len(hits)} seeds" + (f", median t = {np.median(reached):g}" if reached else "")


def _spread(mean: float, sd: float, seeds: int) -> str:
    """mean ± sd over seeds, or the value alone when one seed gives no spread."""
    return f"{_f(mean, 3)} ± {_f(sd, 3)}" if seeds > 1 else f"{_f(mean, 3)} (1 seed: no spread)"


def table(summary: dict, cfg: CollapseConfig, regime: str, toy: bool = False) -> list[str]:
    g = gaps(summary, regime)
    head = ("| arm | FD t=0 | FD t=T | excess area (± sd) | t to 2×FD₀ (per seed) | gap closed | synthetic leaked "
            "(marked / unmarked) | real dropped (per seed, share) |")
    if not toy:
        head += " z own outputs t=0 → T |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for arm in cfg.arms_of(regime):
        s = summary.get((regime, arm))
        if s is None:
            continue
        line = (f"| {arm} | {_f(s['fd0'], 3)} | {_f(s['fdT'], 3)} | {_spread(s['area'], s['area_sd'], s['seeds'])} | {_hits(s['hits'])} "
                f"| {_f(g.get(arm))} | {_f(s['leak'])} ({_f(s.get('leak_marked'))} / {_f(s.get('leak_unmarked'))}) "
                f"| {_f(s['real_dropped'], 1)} ({_f(s['real_dropped_share'], 3)}) |")
        if not toy:
            line += f" {_f(s['z'][0], 1)} → {_f(s['z'][-1], 1)} |" if "z" in s else " — |"
        lines.append(line)
    return lines


AT_T = ("kid", "precision", "recall", "coverage", "class_accuracy", "class_coverage", "class_entropy",
        "memorization_ratio", "pool_synthetic_share", "own_flagged_share")


def last_generation_table(rows: list[dict[str, Any]], cfg: CollapseConfig, regime: str) -> list[str]:
    """The other §8 metrics at t = 0 (shared) and t = T, mean over seeds, one line per arm."""
    head = "| arm | " + " | ".join(AT_T) + " |"
    lines = [head, "|" + "---|" * (len(AT_T) + 1)]
    first = [r for r in rows if r["regime"] == regime and r["arm"] == "none" and r["generation"] == 0]
    if first:
        lines.append("| t = 0 (all arms) | " + " | ".join(_f(_mean(first, m), 3) for m in AT_T) + " |")
    for arm in cfg.arms_of(regime):
        last = [r for r in rows if r["regime"] == regime and r["arm"] == arm and r["generation"] == cfg.generations]
        if last:
            lines.append(f"| {arm}, t = T | " + " | ".join(_f(_mean(last, m), 3) for m in AT_T) + " |")
    return lines


PER_GENERATION = ("marked_in", "marked_kept", "unmarked_in", "unmarked_kept", "real_in", "real_dropped")


def per_generation_table(rows: list[dict[str, Any]], cfg: CollapseConfig, regime: str) -> list[str]:
    """Generation by generation, for each filter that reads the mark (and its ceiling arm): what leaked,
    marked and unmarked apart, what real data it lost, and the contamination it closed next to the most a
    mark can close (mean over seeds)."""
    arms = [a for a in cfg.arms_of(regime) if a.startswith("watermark@") or a == CEILING_ARM]
    head = ("| arm | t | marked in | marked leaked | unmarked in | unmarked leaked | real in | real lost "
            "| contamination closed | ceiling |")
    lines = [head, "|" + "---|" * 10]
    for arm in arms:
        for t in range(1, cfg.generations + 1):
            at = [r for r in rows if (r["regime"], r["arm"], r["generation"]) == (regime, arm, t)]
            if at and "marked_in" in at[0]:
                counts = " | ".join(_f(_mean(at, c), 1) for c in PER_GENERATION)
                lines.append(f"| {arm} | {t} | {counts} | {_f(_mean(at, 'contamination_closed'))} "
                             f"| {_f(_mean(at, 'contamination_ceiling'))} |")
    return lines if len(lines) > 2 else []


def _mean(rows: list[dict[str, Any]], metric: str) -> float:
    v = np.array([float(r.get(metric, math.nan)) for r in rows])
    return float(v[~np.isnan(v)].mean()) if (~np.isnan(v)).any() else math.nan


def toy_lines(rows: list[dict[str, Any]], cfg: CollapseConfig) -> list[str]:
    """The toy Gaussian's check of the known behaviour, from its rows."""
    out = []
    var, fd = curves(rows, "variance"), curves(rows, "fd")
    n = cfg.samples
    for regime in cfg.regimes:
        if (regime, "none") not in var:
            continue
        v = np.array(list(var[(regime, "none")].values()))
        f = np.array(list(fd[(regime, "none")].values()))
        ratio = (v[:, -1] / v[:, 0]).mean()
        out.append(f"- {regime}, no filter: mean s²_T/s²_0 = {ratio:.3f} over {len(v)} seeds"
                   + (f" (theory ((n−1)/n)^T = {((n - 1) / n) ** (v.shape[1] - 1):.3f}, n = {n})" if regime == "replace" else "")
                   + f"; mean FD at t = 1, T: {f[:, 1].mean():.4f}, {f[:, -1].mean():.4f}; max over t of the mean FD {f.mean(0).max():.4f}")
    return out


def summary_md(rows: list[dict[str, Any]], toy_rows: list[dict[str, Any]], cfg: CollapseConfig, toy_cfg: CollapseConfig,
               header: list[str], files: list[str] = ()) -> str:
    s = cell_summary(rows, cfg)
    small = too_small(cfg)
    lines = ["# Collapse loop", "", *header, "", *([f"**{small}**", ""] if small else [])]
    lines += [("Generations-to-threshold: first t at which the Fréchet distance reaches "
              f"{cfg.threshold:g}× generation 0's (per seed; 'never' within T = {cfg.generations}). Excess area: area between "
              "the FD curve and its generation-0 value, t = 0..T (trapezoids), mean ± sd over seeds. Gap closed: "
              "(area(none) − area(arm)) / (area(none) − area(oracle)) on the seed means. Synthetic leaked: share of "
              "the synthetic images reaching the filter that it kept (all generations). Real dropped: real images the "
              "filter threw away over all generations, per seed, and their share of the real images that reached it."),
              "",
              (f"Channel: {cfg.channel or 'none'} ({channel_words(cfg.channel)}); applied to every scraped image, "
               f"real and synthetic, before any filter. Marked share: {cfg.marked_share:g} of the synthetic images "
               "come from the "
               "marking generator, the rest from an unmarked copy of the same model; the oracle knows which images "
               "are synthetic, the watermark filter sees only pixels."
               + (f" `{CEILING_ARM}` drops exactly the marked images: its gap closed is the ceiling of any "
                  "watermark filter at this share." if cfg.marked_share < 1 else "")),
              "",
              ("Per generation (the filters that read the mark): contamination = synthetic share of the images; "
               "contamination closed = 1 − (share among the kept) / (share among those entering), 0 for no filter "
               "and 1 for the oracle; ceiling = the same for a filter that drops exactly the marked images, "
               "1 − (u / (r + u)) / (s / (r + s)) with r real, s synthetic and u unmarked synthetic images entering "
               "(a filter's false flags on unmarked images can carry one generation past it)."),
              ""]
    for regime in cfg.regimes:
        lines += [f"## {regime}", "", *table(s, cfg, regime), "", "Other metrics (mean over seeds):", "",
                  *last_generation_table(rows, cfg, regime), ""]
        per_t = per_generation_table(rows, cfg, regime)
        if per_t:
            lines += ["Per generation (mean over seeds):", "", *per_t, ""]
    lines += ["## Closing note (computed from the rows above)", "", *closing(s, cfg), ""]
    if toy_rows:
        ts = cell_summary(toy_rows, toy_cfg)
        lines += ["## Toy: a Gaussian fitted by maximum likelihood, same loop", "",
                  (f"{toy_cfg.seeds} seeds, {toy_cfg.samples} samples per generation, fresh scrape {toy_cfg.fresh_pool} "
                  f"(π = {toy_cfg.synthetic_share:g}), first accumulate pool {toy_cfg.accumulate_real} real; FD is exact "
                  "(m² + (s − 1)²). Its watermark detector is simulated (z ~ N(4, 1) on synthetic items)."), "",
                  *toy_lines(toy_rows, toy_cfg), ""]
        for regime in toy_cfg.regimes:
            lines += [f"### toy {regime}", "", *table(ts, toy_cfg, regime, toy=True), ""]
    if files:
        lines += ["## Files", "", *(f"- `{f}`" for f in files), ""]
    return "\n".join(lines) + "\n"


def channel_words(spec: str | None) -> str:
    """What the channel does, in words (from the attacks' own descriptions)."""
    if spec in (None, "", "none"):
        return "the PNGs as the generator wrote them"
    from bitmark import attacks

    names = [item.partition(":")[0].strip() for item in spec.split("+")]
    return "; ".join(attacks.REGISTRY[n].description if n in attacks.REGISTRY else n for n in names)


def closing(s: dict, cfg: CollapseConfig) -> list[str]:
    out = []
    wm = f"watermark@{cfg.match_fpr:g}"
    for regime in cfg.regimes:
        if (regime, wm) not in s:
            continue
        g = gaps(s, regime)
        none, oracle = s[(regime, "none")], s[(regime, "oracle")]
        parts = [f"- **{regime}**: excess FD area none {none['area']:.3f}, oracle {oracle['area']:.3f}"]
        for arm in (a for a in cfg.arms if a.startswith("watermark@")):
            if (regime, arm) in s:
                a = s[(regime, arm)]
                per_seed = [gap_closed(n, x, o) for n, x, o in zip(none["areas"], a["areas"], oracle["areas"])]
                gap = (f"gap closed {_f(g.get(arm))}; per seed {', '.join(_f(v) for v in per_seed)}" if cfg.seeds > 1 else
                       f"gap closed {_f(g.get(arm))} from 1 seed, no spread: not distinguishable from noise")
                parts.append(f"{arm} {a['area']:.3f} ({gap}; "
                             f"synthetic leaked {_f(a['leak'], 3)}, real thrown away {a['real_dropped']:.1f} per seed = "
                             f"{_f(a['real_dropped_share'], 3)} of the real that reached the filter)")
        if (regime, CEILING_ARM) in s:
            c = s[(regime, CEILING_ARM)]
            per_seed = [gap_closed(n, x, o) for n, x, o in zip(none["areas"], c["areas"], oracle["areas"])]
            parts.append(f"ceiling ({CEILING_ARM}, marked share {cfg.marked_share:g}) {c['area']:.3f} (gap closed "
                         f"{_f(g.get(CEILING_ARM))}; per seed {', '.join(_f(v) for v in per_seed)})")
        if g.get(wm) is None:
            parts.append("no gap to close: the oracle was not better than no filter here")
        out.append("; ".join(parts) + ".")
    for regime in cfg.regimes:
        if (regime, "none") in s and "z" in s[(regime, "none")] and not np.isnan(s[(regime, "none")]["z"]).any():
            z = s[(regime, "none")]["z"]
            out.append(f"- z of the generator's own watermarked outputs, {regime}/none, by generation: "
                       + ", ".join(f"{v:.1f}" for v in z) + f" ({'fell' if z[-1] < z[0] else 'did not fall'}: "
                       f"{z[-1] - z[0]:+.1f} from t = 0 to T).")
    return out
