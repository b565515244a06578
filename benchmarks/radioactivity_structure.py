"""The key-calibrated test (B) of a radioactivity run with a suspect model's positional structure removed.

B compares the owner key's mean z over a suspect's outputs with the same outputs' mean z under unrelated keys;
its floor tau comes from structure that the outputs share over positions (`bitmark.detectors.structure`). Each
variant here is a null (how q, the expected bit, is set) and a structure estimate subtracted from the residuals:

* null `self-normalised` (the detector's default) or `model` (q = the shipped generator's own P(bit = 1),
  teacher-forced: the owner has that model; it never saw the key);
* structure `none`, `neighbours` (the 8 grid neighbours of each position, same j and context) or `reference`
  (the per-cell mean residuals of images the owner has and that never saw the key -- real crops of the shipped
  model's training split and the shipped model's own unwatermarked samples -- scaled to the suspect by least
  squares).

All are functions of the bits, never of the key, so per image z stays exact for a random key, and B stays
calibrated; the 0% arms check it. Reuses each arm's saved outputs (`outputs.npy`); caches
`arms/<arm>/structure.npz` and `structure_refs.npz` in the run folder.

More outputs: n to convict is an extrapolation from 512 outputs. `python -m bitmark.benchmarks.radioactivity_structure
--out DIR --more N` loads each finished suspect's weights, samples N more unwatermarked outputs (another seed;
`arms/<arm>/more_outputs.npy`) and runs every variant on all 512 + N, into `structure_more.csv` and `structure_more.md`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from bitmark.detectors import structure, suspect

log = logging.getLogger(__name__)

VARIANTS = (("self-normalised", "none"), ("self-normalised", "neighbours"), ("self-normalised", "reference"),
            ("model", "none"), ("model", "reference"))
REAL_PER_OUTPUT = 4  # real crops of the shipped model's training split in the reference, per suspect output
SAMPLES_PER_OUTPUT = 2  # unwatermarked samples of the shipped model in the reference, per suspect output
REFERENCE_SEED = 11  # their sampling seed (the suspects sample with Plan.sample_seed)


def reference_sizes(num_samples: int) -> tuple[int, int]:
    """(real crops, shipped samples) of the reference: a few times the suspect's outputs, so that the reference's
    own noise stays below the suspect's (2,048 and 1,024 for 512 outputs)."""
    return REAL_PER_OUTPUT * num_samples, SAMPLES_PER_OUTPUT * num_samples


def variant_name(null: str, method: str) -> str:
    return f"{null}/{method}"


class StructureTests:
    """The variants' statistics for the arms of one run (an `Experiment`: its tokenizer, shipped model, keys)."""

    def __init__(self, exp):
        from bitmark.detectors.predicted import GeneratorPredictor

        self.exp, self.out = exp, Path(exp.out)
        self.predictor = GeneratorPredictor(exp.shipped)
        self.n = exp.key.config.context
        self._signs: tuple | None = None
        self.references = self._references()

    def _residuals(self, images: np.ndarray, null: str) -> structure.Residuals:
        from bitmark.evaluation.roundtrip import png_round_trip

        bits = self.exp.tok.encode(png_round_trip(images))  # as `radioactivity.score` tests them
        scales = self.scored(len(bits))
        probs = [p.numpy() for p in self.predictor(bits)] if null == "model" else None
        return structure.residuals([bits[s].numpy() for s in scales], self.n,
                                   None if probs is None else [probs[s] for s in scales])

    def scored(self, num_scales: int) -> list[int]:
        return [s for s in range(num_scales) if self.exp.key.config.watermarks(s)]

    def _references(self) -> dict[str, list[list[np.ndarray]]]:
        """Per null, the reference sets' cell means (per scale): real training crops, the shipped model's samples."""
        path = self.out / "structure_refs.npz"
        nulls = sorted({null for null, _ in VARIANTS})
        if not path.exists():
            from bitmark.io.datasets import load_dataset
            from bitmark.models.sampling import class_indices, sample_images

            num_real, num_samples = reference_sizes(self.exp.plan.num_samples)
            real = load_dataset(self.exp.plan.data, "train").images[:num_real]
            classes = class_indices(num_samples, list(self.exp.classes), None)
            samples, _ = sample_images(self.exp.shipped, self.exp.tok, classes, key=None, seed=REFERENCE_SEED,
                                       progress=False)
            arrays = {}
            for null in nulls:
                for name, images in (("real", real), ("samples", samples)):
                    for s, table in enumerate(structure.cell_means(self._residuals(images, null))):
                        arrays[f"{null}/{name}/{s}"] = table
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(path)
        data = np.load(path)
        def tables(prefix: str) -> list[np.ndarray]:  # per scale, in scale order
            return [data[k] for k in sorted((k for k in data.files if k.startswith(prefix)), key=lambda k: int(k.rsplit("/", 1)[1]))]

        return {null: [tables(f"{null}/{name}/") for name in ("real", "samples")] for null in nulls}

    def _key_signs(self, res: structure.Residuals, d: int) -> tuple:
        if self._signs is None:
            from bitmark.evaluation.keys import fixed_key

            plan, scales = self.exp.plan, self.scored(len(res.grids))
            owner = structure.key_signs(self.exp.key, res.grids, scales, d)
            others = [structure.key_signs(fixed_key(10_000 + i, delta=plan.delta), res.grids, scales, d)
                      for i in range(plan.other_keys)]  # the unrelated keys of `Experiment.others`
            self._signs = owner, others
        return self._signs

    def arm(self, arm: dict, more: int = 0) -> dict[str, np.ndarray]:
        """Per variant: the owner's z of every output and the mean z under each unrelated key (cached). more: also
        `more` further outputs of the suspect (`more_outputs`), tested together with the saved ones."""
        from bitmark.benchmarks.radioactivity import _save_npz, arm_name

        arm_dir = self.out / "arms" / arm_name(arm["variant"], arm["share"])
        path = arm_dir / ("structure.npz" if not more else f"structure_more_{more}.npz")
        if path.exists():
            return dict(np.load(path))
        outputs = np.load(arm_dir / "outputs.npy")
        if more:
            outputs = np.concatenate([outputs, self.more_outputs(arm, more)])
        out = {}
        for null in sorted({null for null, _ in VARIANTS}):
            res = self._residuals(outputs, null)
            d = res.r[0].shape[-1] + self.n - 1
            owner, others = self._key_signs(res, d)
            for v_null, method in VARIANTS:
                if v_null != null:
                    continue
                fixed = structure.remove_structure(res, method, self.references[null] if method == "reference" else ())
                name = variant_name(null, method)
                out[f"{name}/z"] = structure.image_z(fixed, owner)
                out[f"{name}/other_key_mean_z"] = structure.mean_z(fixed, others)
        _save_npz(path, out)
        return out

    def more_outputs(self, arm: dict, num: int) -> np.ndarray:
        """`num` further unwatermarked outputs of an arm's saved suspect (seed: the plan's sample seed + 1000;
        classes round-robin as the first ones), uint8, cached in the arm's folder."""
        import dataclasses

        from bitmark.benchmarks.radioactivity import arm_name
        from bitmark.models.generator import Generator, GeneratorConfig
        from bitmark.models.sampling import class_indices, sample_images
        from bitmark.models.store import load_weights

        arm_dir = self.out / "arms" / arm_name(arm["variant"], arm["share"])
        path = arm_dir / "more_outputs.npy"
        if path.exists() and len(np.load(path, mmap_mode="r")) >= num:
            return np.load(path)[:num]
        tok, shipped = self.exp.tok, self.exp.shipped
        cfg = (GeneratorConfig(tok.cfg, num_classes=len(self.exp.classes)) if arm["variant"] == "scratch"
               else dataclasses.replace(shipped.cfg, tokenizer=tok.cfg))  # as `fit_generator` built it
        gen = load_weights(arm_dir / "generator", Generator(cfg))
        classes = class_indices(num, list(self.exp.classes), None)
        images, _ = sample_images(gen, tok, classes, key=None, seed=self.exp.plan.sample_seed + 1000, progress=False)
        np.save(path, images)
        return images


def row(arm: dict, scores: dict[str, np.ndarray], control: dict[str, np.ndarray] | None, null: str,
        method: str) -> dict:
    """Test B (and Mann-Whitney against the control's outputs) for one arm and one variant."""
    name = variant_name(null, method)
    z, other = scores[f"{name}/z"], scores[f"{name}/other_key_mean_z"]
    tau = suspect.pair_shift(other, len(z))
    kz, klp, kemp = suspect.key_calibrated(float(z.mean()), other)
    out = {"variant": arm["variant"], "share": arm["share"], "null": null, "structure": method, "n": len(z),
           "z_mean": float(z.mean()), "z_std": float(z.std(ddof=1)), "key_null_std": float(other.std(ddof=1)),
           "pair_shift_tau": tau, "key_z": kz, "key_log10_p": klp, "key_empirical_p": kemp,
           "n_to_convict_key": suspect.n_to_convict(float(z.mean()), tau=tau)}
    if control is not None and arm["share"] != 0:
        out["mw_p"], out["mw_auc"] = suspect.mann_whitney_greater(z, control[f"{name}/z"])
    else:
        out["mw_p"], out["mw_auc"] = math.nan, math.nan
    return out


def rows_for(arms: list[dict], scores: list[dict]) -> list[dict]:
    rows = []
    for arm, sc in zip(arms, scores):
        ctrl = next((s for a, s in zip(arms, scores) if a["variant"] == arm["variant"] and a["share"] == 0), None)
        rows += [row(arm, sc, ctrl, null, method) for null, method in VARIANTS]
    return rows


def evaluate(exp, arms: list[dict], more: int = 0) -> list[dict]:
    """Every variant's rows for every arm of the run (more: on the saved outputs and `more` further ones)."""
    from bitmark.io.progress import progress

    tests = StructureTests(exp)
    scores = [tests.arm(a, more) for a in progress(arms, desc="structure removal")]
    return rows_for(arms, scores)


def _n(v: float) -> str:
    return "∞" if math.isinf(v) else f"{int(v):,}"


def summary(rows: list[dict], num_samples: int) -> str:
    """The markdown section of the summary: one line per arm and variant."""
    num_real, num_ref = reference_sizes(num_samples)
    lines = [
        "## Test B with the positional structure removed",
        "",
        ("Null `self-normalised` (the detector's) or `model` (q = the shipped generator's P(bit = 1)); structure "
         "`none`, `neighbours` (8 grid neighbours, same j and context) or `reference` (the mean residual per cell of "
         f"{num_real} real training crops and {num_ref} unwatermarked samples of the shipped model, "
         "fitted to the suspect by least squares). Key-independent, so the 0% arms' B z stays N(0, 1)."),
        "",
        "| variant | share | null | structure | z (mean ± std) | Mann–Whitney p | B: z over keys (emp. p) | τ | B: n to convict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mw = "control" if r["share"] == 0 else (f"{r['mw_p']:.1e}" if r["mw_p"] < 1e-3 else f"{r['mw_p']:.3f}")
        lines.append(
            f"| {r['variant']} | {r['share']:.0%} | {r['null']} | {r['structure']} | {r['z_mean']:.3f} ± {r['z_std']:.2f} | "
            f"{mw} | {r['key_z']:.2f} ({r['key_empirical_p']:.3f}) | {r['pair_shift_tau']:.3f} | {_n(r['n_to_convict_key'])} |")
    return "\n".join(lines) + "\n"


def run_more(out: str | Path, more: int) -> list[dict]:
    """Every variant on each finished arm's saved outputs plus `more` new ones: structure_more.csv / .md in `out`."""
    import dataclasses
    import json
    import time

    from bitmark.benchmarks import radioactivity
    from bitmark.benchmarks.radioactivity_report import write_csv

    if more < 1:
        raise ValueError("--more needs at least one further output")
    out = Path(out)
    plan_path = out / "plan.json"
    if not plan_path.exists():
        raise ValueError(f"{out} holds no radioactivity run (no plan.json): run `bitmark bench radioactivity` first")
    saved = json.loads(plan_path.read_text())
    plan = radioactivity.Plan(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    t0 = time.time()
    exp = radioactivity.Experiment(out, dataclasses.replace(plan))
    arms = [exp.arm(v, s) for v in plan.variants for s in plan.shares
            if (out / "arms" / radioactivity.arm_name(v, s) / "scores.npz").exists()]
    if not arms:
        raise ValueError(f"{out} has no finished arm")
    rows = evaluate(exp, arms, more)
    write_csv(out / "structure_more.csv", rows)
    title = f"## Test B with the structure removed, on {plan.num_samples} + {more} outputs"
    text = summary(rows, plan.num_samples).replace("## Test B with the positional structure removed", title)
    (out / "structure_more.md").write_text(text + f"\nWall time {(time.time() - t0) / 60:.1f} min.\n")
    log.info("wrote %s and %s", out / "structure_more.csv", out / "structure_more.md")
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="test B with the structure removed, on more outputs of a run's suspects")
    ap.add_argument("--out", required=True, help="a finished `bitmark bench radioactivity` folder")
    ap.add_argument("--more", type=int, required=True, help="further unwatermarked outputs per suspect")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    print(run_more(a.out, a.more) and (Path(a.out) / "structure_more.md").read_text())
