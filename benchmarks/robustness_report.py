"""The report of a robustness run: summary.md, robustness.png and quality.png, all from the rows.

The figures fit the data they have: an attack measured at several strengths is a curve, with a log axis
when its strengths span a decade or more and ticks at the strengths measured; attacks measured at one
strength (all of them in a `--quick` run) share one dot panel instead of drawing a single-point panel
each. Schemes differ in colour, marker and line style, so equal curves stay visible on top of each
other. A run too small for its TPRs to be more than indicative says so in the figure and the summary.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from bitmark import attacks
from bitmark.benchmarks.robustness import DEFAULT, FORGERY, HEADLINE, RESYNCED

log = logging.getLogger(__name__)

STYLES = [("o", "-", 7), ("s", "--", 5.5), ("^", ":", 4.5), ("D", "-.", 3.5), ("v", "-", 3)]  # marker, line, size
SMALL_POSITIVES = 200  # below this many positives a TPR's standard error can exceed 0.035


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _fmt(v: Any) -> str:
    x = _num(v)
    return "–" if v in ("", None) else (f"{x:.3f}" if x is not None else str(v))


def tpr_caveat(n_pos: int, n_neg: int) -> str | None:
    """A plain sentence when a TPR from `n_pos` positives and `n_neg` negatives is only indicative, else None."""
    parts = []
    if n_pos < SMALL_POSITIVES:
        se = math.sqrt(0.25 / n_pos)
        parts.append(f"each TPR comes from {n_pos} watermarked images, so its standard error is up to {se:.2f} "
                     f"and differences below about {2 * se:.2f} are noise")
    if n_neg < 1000:
        parts.append(f"{n_neg} negatives are too few for a threshold at 1% FPR (TPRs are n/a)")
    return ("Small run: " + "; ".join(parts) + ". Indicative only; the full run is the measurement.") if parts else None


def summary(rows: list[dict], quality: list[dict], cfg, skipped: str | None, wall: float,
            own_fpr: dict[str, float], files: list[str]) -> str:
    from bitmark.evaluation.provenance import cpu_name

    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    by = {(r["scheme"], r["spec"]): r for r in rows}
    neg = min(cfg.num_negatives or cfg.num, 950)
    caveat = tpr_caveat(cfg.num, neg + max(neg, cfg.num))
    real = "held-out real crops" if cfg.backend == "embedded" else "clean samples of a second draw (as 'real')"
    lines = [
        "# Robustness and quality", "",
        f"N = {cfg.num} watermarked samples per scheme, {max(neg, cfg.num)} clean samples (the first {cfg.num} with the "
        f"positives' seeds and classes) and {neg} {real}; thresholds from the clean + real negatives "
        f"under the same attack; {wall / 60:.1f} min on {cpu_name()}, 1 thread (this run; a resumed run counts "
        "its last part).", "",
        *([f"**{caveat}**", ""] if caveat else []),
        "## TPR at 1% FPR (headline attacks)", "",
        "| scheme | " + " | ".join(HEADLINE) + " |", "|---" * (len(HEADLINE) + 1) + "|",
    ]
    for s in schemes:
        lines.append(f"| {s} | " + " | ".join(_fmt(by.get((s, h), {}).get("tpr_at_1pct", "")) for h in HEADLINE) + " |")
    notes = {r["scheme"]: r["note"] for r in rows if r["scheme"].startswith("invisible")}
    lines += ["", "`–`: not run for that scheme. invisible-watermark takes pixel attacks only, at 256² (the model "
              "attacks run at the models' 32²): " + "; ".join(f"{k}: {v}" for k, v in notes.items())
              if not skipped else f"invisible-watermark: {skipped}.", "",
              "Share of the un-attacked clean + real negatives that each scheme's own analytic 1% test flags: "
              + ", ".join(f"{k} {v:.3f}" for k, v in own_fpr.items()) + ".", ""]
    forgeries = [r for r in rows if r["attack"] in FORGERY]
    if forgeries:
        lines += ["## Forgery success (share of forged clean samples flagged by the detector's own 1% test)", "",
                  "| scheme | attack | strength | success | PSNR |", "|---|---|---|---|---|"]
        lines += [f"| {r['scheme']} | {r['attack']} | {r['strength']} | {_fmt(r['forgery_success'])} | {_fmt(r['psnr'])} |" for r in forgeries]
        lines.append("")
    resynced = [s for s in schemes if s.startswith(RESYNCED)]
    if resynced:
        lines += ["## Resynchronisation (TPR at 1% FPR; share of the attacked negatives each own 1% test flags)", "",
                  f"| spec | {DEFAULT} | " + " | ".join(resynced) + " | negatives flagged: plain | "
                  + " | ".join(f"flagged: w={s.split('w=')[-1].rstrip(')')}" for s in resynced) + " |",
                  "|---" * (2 * len(resynced) + 3) + "|"]
        for spec in dict.fromkeys(r["spec"] for r in rows if r["scheme"] in resynced):
            cells = [by.get((s, spec), {}) for s in [DEFAULT, *resynced]]
            lines.append(f"| {spec} | " + " | ".join(_fmt(c.get("tpr_at_1pct", "")) for c in cells) + " | "
                         + " | ".join(_fmt(c.get("neg_flagged", "")) for c in cells) + " |")
        lines.append("")
    if quality:
        lines += ["## Quality cost of the mark (frozen classifier features; default rule)", "",
                  "| set | FD to real | FD to clean | KID to real | precision | recall | TPR@1% after JPEG 75 |",
                  "|---|---|---|---|---|---|---|"]
        for q in quality:
            lines.append(f"| {q['set']} | {_fmt(q['fd_to_real'])} | {_fmt(q['fd_to_clean'])} | {_fmt(q['kid_to_real'])} | "
                         f"{_fmt(q['precision'])} | {_fmt(q['recall'])} | {_fmt(q['tpr_jpeg75'])} |")
        lines += ["", f"Clean samples: FD to real {_fmt(quality[0]['fd_clean_to_real'])}. The noise floor is the second "
                  f"clean draw's FD to the clean samples (FD and KID from {cfg.num} samples per set).", ""]
    lines += ["## Every row", "",
              "| scheme | spec | TPR@1% | AUC | z pos | z neg | bit agreement | PSNR |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scheme']} | {r['spec']} | {_fmt(r['tpr_at_1pct'] or r['forgery_success'])} | {_fmt(r['auc'])} | "
                     f"{_fmt(r['z_pos_mean'])} | {_fmt(r['z_neg_mean'])} | {_fmt(r['bit_agreement'])} | {_fmt(r['psnr'])} |")
    lines += ["", "## Files", "", *(f"- `{f}`" for f in files)]
    return "\n".join(lines) + "\n"


def _style(i: int) -> dict[str, Any]:
    marker, line, size = STYLES[i % len(STYLES)]
    return {"marker": marker, "ls": line, "ms": size, "mfc": "none", "lw": 1.2}


def _strength_axis(ax, strengths: list[float]) -> None:
    """Log scale when the strengths span a decade or more; ticks at the strengths measured when they fit."""
    lo, hi = min(strengths), max(strengths)
    log_scale = lo > 0 and hi / lo >= 10
    if log_scale:
        ax.set_xscale("log")
    positions = [math.log10(s) for s in strengths] if log_scale else strengths
    span = (max(positions) - min(positions)) or 1.0
    gaps = [b - a for a, b in zip(positions, positions[1:])]
    if len(strengths) <= 6 and all(g >= 0.15 * span for g in gaps):
        ax.set_xticks(strengths, [f"{s:g}" for s in strengths])
        ax.minorticks_off()
    elif all(s == int(s) for s in strengths):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plots(rows: list[dict], quality: list[dict], out: Path) -> list[str]:
    """robustness.png (TPR@1% per attack and strength) and quality.png (TPR after JPEG 75 vs FD cost);
    the names of the files written."""
    from bitmark.io.extras import pyplot

    plt = pyplot("the robustness figures")
    written = []
    points = [r for r in rows if _num(r["strength"]) is not None and _num(r["tpr_at_1pct"]) is not None]
    if points:
        _robustness_figure(plt, points, out / "robustness.png")
        written.append("robustness.png")
    else:
        log.warning("no TPR to plot (fewer than 1,000 negatives?): robustness.png not written")
    marked = [q for q in quality if _num(q["tpr_jpeg75"]) is not None]
    if marked:
        _quality_figure(plt, marked, quality, out / "quality.png")
        written.append("quality.png")
    else:
        log.warning("no TPR after JPEG 75 to plot (fewer than 1,000 negatives?): quality.png not written")
    return written


def _robustness_figure(plt, points: list[dict], path: Path) -> None:
    schemes = list(dict.fromkeys(r["scheme"] for r in points))
    strengths: dict[str, list[float]] = {}
    for r in points:
        strengths.setdefault(r["attack"], []).append(float(r["strength"]))
    curves = sorted(a for a, s in strengths.items() if len(set(s)) >= 2)
    singles = sorted({(r["attack"], float(r["strength"])) for r in points if r["attack"] not in curves},
                     key=lambda a: (a[0] != "none", a[0]))
    cols = min(5, max(3, len(curves)))
    curve_rows = (len(curves) + cols - 1) // cols
    free = curve_rows * cols - len(curves)  # empty cells after the last curve: the dot panel goes there if it fits
    dot_row = curve_rows - 1 if singles and free >= 2 and len(singles) <= 4 * free else curve_rows
    rows = max(curve_rows, dot_row + bool(singles))
    fig = plt.figure(figsize=(3.2 * cols, 2.5 * rows + 0.6))
    grid = fig.add_gridspec(rows, cols)
    for k, name in enumerate(curves):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        for i, scheme in enumerate(schemes):
            pts = sorted((float(r["strength"]), float(r["tpr_at_1pct"])) for r in points
                         if r["attack"] == name and r["scheme"] == scheme)
            if pts:
                ax.plot(*zip(*pts), color=f"C{i}", label=scheme, **_style(i))
        _strength_axis(ax, sorted(set(strengths[name])))
        ax.set_title(f"{name} ({attacks.REGISTRY[name].unit})", fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if singles:
        ax = fig.add_subplot(grid[dot_row, (cols - free if dot_row < curve_rows else 0):])
        width = 0.8 / len(schemes)
        for i, scheme in enumerate(schemes):
            tpr = {(r["attack"], float(r["strength"])): float(r["tpr_at_1pct"]) for r in points if r["scheme"] == scheme}
            xs = [k + (i - (len(schemes) - 1) / 2) * width for k, a in enumerate(singles) if a in tpr]
            ax.plot(xs, [tpr[a] for a in singles if a in tpr], color=f"C{i}", ls="none", label=scheme,
                    **{k: v for k, v in _style(i).items() if k != "ls"})
        ax.set_xticks(range(len(singles)), ["no attack" if a == "none" else f"{a} {s:g}" for a, s in singles], fontsize=7)
        ax.set_xlim(-0.5, len(singles) - 0.5)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title("attacks measured at one strength", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    handles = {label: h for ax in fig.axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="upper right", fontsize=7, ncol=min(4, len(handles)), frameon=False)
    n_pos, n_neg = int(points[0]["n_pos"]), int(points[0]["n_neg"])
    caveat = tpr_caveat(n_pos, n_neg)
    fig.suptitle(f"TPR at 1% FPR ({n_pos} watermarked images per scheme, {n_neg} negatives)"
                 + (f"\nsmall run: TPR s.e. up to {math.sqrt(0.25 / n_pos):.2f}, indicative only" if caveat else ""),
                 fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.96 if not caveat else 0.92))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _quality_figure(plt, marked: list[dict], quality: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    cost, tpr = [float(q["fd_to_clean"]) for q in marked], [float(q["tpr_jpeg75"]) for q in marked]
    floor = float(quality[0]["fd_to_clean"])
    ax.plot(cost, tpr, marker="o")
    for q, c, t in zip(marked, cost, tpr):
        ax.annotate(f"δ={float(q['delta']):g}", (c, t), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if min(cost + [floor]) > 0:
        ax.set_xscale("log")
        ticks = sorted(set(cost + [floor]))
        logs = [math.log10(t) for t in ticks]
        if all(b - a >= 0.08 * ((logs[-1] - logs[0]) or 1) for a, b in zip(logs, logs[1:])):
            ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
            ax.minorticks_off()
    else:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.axvline(floor, ls="--", c="grey", label="clean vs clean (noise floor)")
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel("Fréchet distance to the clean samples")
    ax.set_ylabel("TPR at 1% FPR after JPEG 75")
    ax.legend(fontsize=7, loc="lower right")
    if len(marked) < 3:
        ax.set_title(f"only {len(marked)} δ value(s): a trend needs more (full run: 4)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
