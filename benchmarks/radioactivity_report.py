"""The statistics and files of a radioactivity run: radioactivity.csv (one row per arm), scores.csv (one row
per tested image), summary.md and radioactivity.png (z distributions per share).

Per variant, the control is the 0% arm. Per arm: TPR at 1% FPR with the threshold taken from the negatives
(the control's outputs and the real crops), the one-sided Mann-Whitney U test against the control, and the
test a suspect *model* faces: Stouffer's combined z over its n outputs, calibrated by the control's mean and
spread, and the number of outputs needed to reach p < 1e-6.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from bitmark.benchmarks.metrics import tpr_at_fpr
from bitmark.detectors import suspect

FPR = 0.01
LINES = ("-", "--", ":", "-.", (0, (5, 1)))
FILES = ("plan.json", "radioactivity.csv", "scores.csv", "summary.md", "radioactivity.png", "structure.csv")
SMALL_SAMPLES = 500  # outputs per arm below which the figures of a run are indicative only


def arm_row(arm: dict, control_scores: dict | None, real: np.ndarray, num_scales: int) -> dict:
    """Every figure of one arm against its variant's control arm's scores (None: no control arm, the real
    crops calibrate)."""
    sc = arm["scores"]
    z = sc["z"]
    control = None if control_scores is None else control_scores["z"]
    ref = control if control is not None else real
    mu0, sigma0 = float(ref.mean()), float(ref.std(ddof=1))
    negatives = np.concatenate([real] + ([control] if control is not None else []))
    row = {k: arm[k] for k in ("variant", "share", "num_train", "num_watermarked_train", "train_steps", "train_lr",
                               "train_wall_s", "sample_and_score_wall_s", "final_bce")}
    row.update(n=len(z), z_mean=float(z.mean()), z_std=float(z.std(ddof=1)), z_sampled_mean=float(sc["z_sampled"].mean()))
    tpr = tpr_at_fpr(z, negatives, FPR)  # None below 10 / FPR negatives (DESIGN §8)
    row.update(num_negatives=len(negatives), threshold_1pct=suspect.threshold_at_fpr(negatives, FPR),
               tpr_at_1pct_fpr=math.nan if tpr is None else tpr,
               flagged_at_analytic_1pct=float(np.mean(sc["neg_log10_p"] >= 2)))
    is_control = arm["share"] == 0
    if control is not None and not is_control:
        row["mw_p"], row["mw_auc"] = suspect.mann_whitney_greater(z, control)
    else:
        row["mw_p"], row["mw_auc"] = math.nan, math.nan
    delta = row["z_mean"] - mu0
    se = math.sqrt(row["z_std"] ** 2 / len(z) + sigma0**2 / len(ref))  # of the mean shift, control included
    row.update(
        calib_mu0=mu0, calib_sigma0=sigma0, z_shift=delta, z_shift_se=se,
        combined_z=suspect.stouffer(z, mu0, sigma0), combined_log10_p=suspect.combined_log10_p(z, mu0, sigma0),
        n_to_convict=suspect.n_to_convict(row["z_mean"], mu0, sigma0),
        n_to_convict_lo=suspect.n_to_convict(mu0 + delta + 1.96 * se, mu0, sigma0),
        n_to_convict_hi=suspect.n_to_convict(mu0 + delta - 1.96 * se, mu0, sigma0),
        n_to_convict_95=suspect.n_to_convict(row["z_mean"], mu0, sigma0, power=0.95, sigma=row["z_std"]),
        n_to_convict_exact_null=suspect.n_to_convict(row["z_mean"]),
    )
    n95 = row["n_to_convict_95"]
    row["conviction_rate_at_n95"] = (suspect.conviction_rate(z, int(n95), mu0, sigma0, draws=1000)
                                     if math.isfinite(n95) and n95 <= 10_000 else math.nan)
    other = sc["other_key_mean_z"]
    row["other_keys"] = len(other)
    if len(other) > 1:  # the key-calibrated test: unrelated keys on the same outputs give the null of the mean z
        tau = suspect.pair_shift(other, len(z))
        kz, klp, kemp = suspect.key_calibrated(row["z_mean"], other)
        row.update(key_null_std=float(other.std(ddof=1)), key_null_mean=float(other.mean()), pair_shift_tau=tau,
                   key_z=kz, key_log10_p=klp, key_empirical_p=kemp, n_to_convict_key=suspect.n_to_convict(row["z_mean"], tau=tau))
    else:
        row.update({k: math.nan for k in ("key_null_std", "key_null_mean", "pair_shift_tau", "key_z", "key_log10_p",
                                          "key_empirical_p", "n_to_convict_key")})
    for s in range(num_scales):
        zs, name = sc[f"z_scale_{s}"], f"z_scale_{s}"
        row[f"{name}_mean"] = float(zs.mean())
        row[f"{name}_mw_p"] = (suspect.mann_whitney_greater(zs, control_scores[name])[0]
                               if control is not None and not is_control and zs.std() > 0 else math.nan)
    return row


def rows_for(arms: list[dict], real: np.ndarray) -> list[dict]:
    num_scales = len([k for k in arms[0]["scores"] if k.startswith("z_scale_")])
    rows = []
    for arm in arms:
        ctrl = next((a for a in arms if a["variant"] == arm["variant"] and a["share"] == 0), None)
        rows.append(arm_row(arm, ctrl["scores"] if ctrl else None, real, num_scales))
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def write_scores(path: Path, arms: list[dict], reference: dict) -> None:
    """One row per tested image: the suspects' outputs, the real crops and the watermarked training samples."""
    scale_keys = sorted(k for k in arms[0]["scores"] if k.startswith("z_scale_"))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "variant", "share", "index", "z_score", "neg_log10_p", "z_sampled", *scale_keys])
        for name, sc in (("real", reference["real"]), ("watermarked_training_sample", reference["marked"])):
            for i in range(len(sc["z"])):
                w.writerow([name, "", "", i, f"{sc['z'][i]:.4f}", f"{sc['neg_log10_p'][i]:.4f}", "",
                            *(f"{sc[k][i]:.4f}" for k in scale_keys)])
        for arm in arms:
            sc = arm["scores"]
            for i in range(len(sc["z"])):
                w.writerow(["suspect_output", arm["variant"], arm["share"], i, f"{sc['z'][i]:.4f}", f"{sc['neg_log10_p'][i]:.4f}",
                            f"{sc['z_sampled'][i]:.4f}", *(f"{sc[k][i]:.4f}" for k in scale_keys)])


def plot(path: Path, arms: list[dict], real: np.ndarray) -> None:
    """Histograms of z per share, one panel per variant, with the real crops for reference."""
    from bitmark.io.extras import pyplot

    plt = pyplot("the radioactivity figure")
    variants = list(dict.fromkeys(a["variant"] for a in arms))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.2), sharey=True, squeeze=False)
    allz = np.concatenate([real] + [a["scores"]["z"] for a in arms])
    fewest = min(len(a["scores"]["z"]) for a in arms)
    bins = np.linspace(min(-4.0, allz.min()), max(4.0, allz.max()), int(np.clip(2 * np.sqrt(fewest), 10, 40)))
    for ax, variant in zip(axes[0], variants):
        ax.hist(real, bins=bins, density=True, histtype="stepfilled", color="0.85", label="real crops")
        mine = sorted((a for a in arms if a["variant"] == variant), key=lambda a: -a["share"])
        for k, a in enumerate(mine):  # line styles differ, so a histogram hidden under another still shows
            ax.hist(a["scores"]["z"], bins=bins, density=True, histtype="step", lw=1.4, ls=LINES[k % len(LINES)],
                    label=f"{a['share']:.0%} marked (n = {len(a['scores']['z'])})")
        ax.set_title(f"suspect: {variant}", fontsize=10)
        ax.set_xlabel("owner-key z of unwatermarked outputs (PNG)", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0][0].set_ylabel("density", fontsize=8)
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper left")  # the tails are emptier than the top
    if fewest < SMALL_SAMPLES:
        fig.suptitle(f"small run: {fewest} outputs per arm, coarse histograms, indicative only", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _f(v, digits: int = 2) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if isinstance(v, float) and v != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _n(v: float) -> str:
    return "∞" if math.isinf(v) else f"{int(v):,}"


def summary(plan, rows: list[dict], reference: dict, wall_s: float, machine: str) -> str:
    real, marked = reference["real"]["z"], reference["marked"]["z"]
    num_scales = len([k for k in rows[0] if k.startswith("z_scale_") and k.endswith("_mean")])
    small = plan.num_samples < SMALL_SAMPLES or len(plan.shares) < 3
    lines = [
        "# Radioactivity",
        "",
        *([f"**Small run ({len(plan.shares)} shares, {plan.num_samples} outputs per arm, {plan.other_keys} unrelated "
           "keys): a smoke test; its figures are indicative only.**", ""] if small else []),
        (f"Owner key: `fixed_key({plan.key_index})`, keyed-spatial, n = 2, δ = {plan.delta:g}. Training sets: "
         f"{rows[0]['num_train']} images, the held-out real crops with a share replaced by watermarked samples "
         "of the shipped model (same class, decoded uint8 through PNG), nested across shares; the recipe adds "
         "mirror images. Suspects: from scratch "
         f"({plan.scratch_steps} steps × batch {plan.batch_size}, lr {plan.scratch_lr:g}, seed {plan.seed}) and "
         f"fine-tuning the shipped model ({plan.finetune_steps} steps, lr {plan.finetune_lr:g}); each samples "
         f"{plan.num_samples} images **without** the watermark (CFG 2, classes round-robin), written as PNG and "
         "re-encoded. Negatives for the 1% threshold: the variant's 0% arm plus "
         f"{len(real)} real crops."),
        "",
        (f"Reference: the watermarked training samples score z = {marked.mean():.2f} ± {marked.std():.2f}; "
         f"the real crops {real.mean():.2f} ± {real.std():.2f}."),
        "",
        ("| variant | share | n | z (mean ± std) | TPR@1%FPR | Mann–Whitney p | AUC "
         "| A: combined z (−log10 p) | A: n to convict (95% CI) | B: z over keys (−log10 p) | τ | B: n to convict |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        control = r["share"] == 0
        a = "control" if control else f"{r['combined_z']:.2f} ({r['combined_log10_p']:.1f})"
        na = "–" if control else f"{_n(r['n_to_convict'])} ({_n(r['n_to_convict_lo'])}–{_n(r['n_to_convict_hi'])})"
        lines.append(
            f"| {r['variant']} | {r['share']:.0%} | {r['n']} | {r['z_mean']:.3f} ± {r['z_std']:.2f} | "
            f"{_f(r['tpr_at_1pct_fpr'], 3)} | {'control' if control else _f(r['mw_p'], 3)} | {_f(r['mw_auc'], 3)} | "
            f"{a} | {na} | {_f(r['key_z'])} ({_f(round(r['key_log10_p'], 1), 1)}) | {_f(r['pair_shift_tau'], 3)} | "
            f"{_n(r['n_to_convict_key'])} |"
        )
    lines += [
        "",
        "Per scale (mean z of the owner's detector restricted to one scale; Mann–Whitney p against the control):",
        "",
        "| variant | share | " + " | ".join(f"scale {s}" for s in range(num_scales)) + " |",
        "|---|---|" + "---|" * num_scales,
    ]
    for r in rows:
        cells = [f"{r[f'z_scale_{s}_mean']:+.3f} (p {_f(r[f'z_scale_{s}_mw_p'], 3)})" for s in range(num_scales)]
        lines.append(f"| {r['variant']} | {r['share']:.0%} | " + " | ".join(cells) + " |")
    lines += [
        "",
        ("Scale 0 (one token) can carry no evidence under the self-normalised null: each of its cells has one "
         "position, whose own bit is its null estimate."),
        "",
        ("**The aggregated test.** A suspect model, not one image, is on trial: its n outputs are combined, "
         "and \"n to convict\" is the smallest n at which the *expected* combined statistic reaches p < 10⁻⁶ "
         "(z = 4.75; it then convicts about half the time). Two calibrations, because one fixed key on one "
         "model's images need not follow the detector's exact null (mean 0, variance 1 per image, over random keys):"),
        "",
        ("* **A, control-calibrated** (Stouffer): z = Σ(zᵢ − μ₀)/(σ₀√n) with μ₀, σ₀ the mean and spread of the "
         "control (the 0% arm of the same variant, trained identically on real images only); n = (4.75 σ₀/(μ − μ₀))². "
         "The range is from the 95% interval of the shift μ − μ₀ (its standard error includes the control's "
         "finite size). The combined z column uses all n outputs of the arm."),
        ("* **B, key-calibrated**: no control model needed. If the suspect never saw the owner's marks, the owner's "
         f"key is one more random key to it, so the owner's mean z over the outputs is compared with the mean z "
         f"of the same outputs under {plan.other_keys} unrelated keys (z = mean / their spread; the empirical rank "
         "p is in the CSV). Their spread is larger than 1/√n when a model's outputs share structure that a key "
         "lines up with: τ² = var(mean z over keys) − 1/n is a floor that more images do not lower, so "
         "n = 1/((μ/4.75)² − τ²), and a shift μ ≤ 4.75 τ can never convict."),
        "",
        ("More in radioactivity.csv: `n_to_convict_95` (95% power, A), `conviction_rate_at_n95` (1,000 random "
         "sets of that many outputs, drawn with replacement: the share convicted), `n_to_convict_exact_null` "
         "(μ₀ = 0, σ₀ = 1), `key_empirical_p`."),
        "",
        (f"Wall time {wall_s / 60:.1f} min for this invocation (finished arms are loaded, not re-run); all arms "
         f"took {sum(r['train_wall_s'] + r['sample_and_score_wall_s'] for r in rows) / 60:.1f} min (training "
         f"{sum(r['train_wall_s'] for r in rows) / 60:.1f} min). Machine: {machine}."),
        "",
        "Files: " + ", ".join(f"`{f}`" for f in FILES) + " (and `arms/`, one folder per arm).",
    ]
    return "\n".join(lines) + "\n"


def write(out: Path, plan, arms: list[dict], reference: dict, wall_s: float, structure: list[dict] | None = None) -> dict:
    """The files of a run; `structure`: the rows of `radioactivity_structure` (test B with the suspects'
    positional structure removed), written to structure.csv and appended to the summary."""
    from bitmark.benchmarks import radioactivity_structure
    from bitmark.evaluation import provenance

    real = reference["real"]["z"]
    rows = rows_for(arms, real)
    write_csv(out / "radioactivity.csv", rows)
    write_scores(out / "scores.csv", arms, reference)
    plot(out / "radioactivity.png", arms, real)
    machine = provenance.machine()
    text = summary(plan, rows, reference, wall_s, machine)
    files = [f for f in FILES if f != "structure.csv"]
    if structure:
        write_csv(out / "structure.csv", structure)
        text += "\n" + radioactivity_structure.summary(structure, plan.num_samples)
        files.append("structure.csv")
    (out / "summary.md").write_text(text)
    return {"rows": rows, "structure": structure or [], "wall_s": round(wall_s, 1), "machine": machine, "files": files}
