"""Radioactivity: does a model trained on watermarked images carry the mark into its own (unwatermarked) outputs?

Design. The owner's key is the fixed benchmark key (`fixed_key(0)`, keyed-spatial, n = 2, delta = 2 unless
`delta` says otherwise). A "suspect" training set has a fixed size: the held-out real crops (the shipped
model never trained on them), of which a share (100%, 50%, 10%, 5%, 0% = the control) is replaced by
watermarked samples of the shipped model with the same class, taken as the decoded uint8 images through a
PNG round trip (what a scraper would get). The replaced images are a fixed random subset, nested across
shares. Each set trains a suspect with the project's recipe (`fit_generator`, which re-encodes the images
with the tokenizer and adds their mirror images) in two variants: from scratch (a new seed) and fine-tuning
the shipped model. Each suspect samples N images *without* the watermark (same classes and seeds for all
arms); they go through PNG and are re-encoded, and the owner's detector scores them. Statistics and the
report: `bitmark.benchmarks.radioactivity_report`.

Resumable: each finished arm leaves `arms/<variant>-<share>/scores.npz` (and its weights) in the output
folder and is skipped on the next run; an interrupted training resumes from its checkpoint. Test B with the
suspects' positional structure removed (`bitmark.benchmarks.radioactivity_structure`) reuses the saved outputs.

Run: `bitmark bench radioactivity [--quick] --out DIR [--json]` or `python -m bitmark.benchmarks.radioactivity`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bitmark.io.progress import progress

log = logging.getLogger(__name__)

VARIANTS = ("scratch", "finetune")


@dataclass(frozen=True)
class Plan:
    """Everything that defines a run; written to plan.json so that a resumed run can be checked against it."""

    shares: tuple[float, ...] = (1.0, 0.5, 0.1, 0.05, 0.0)
    variants: tuple[str, ...] = VARIANTS
    scratch_steps: int = 350
    finetune_steps: int = 150
    scratch_lr: float = 1e-3
    finetune_lr: float = 5e-4
    batch_size: int = 32
    num_samples: int = 512  # unwatermarked outputs of each suspect that are tested
    pool_size: int | None = None  # real images in a training set (default: all held-out crops)
    delta: float = 2.0  # the owner key's bias
    key_index: int = 0  # the owner key is fixed_key(key_index, delta=delta)
    other_keys: int = 200  # unrelated keys run on every arm's outputs: the null spread of this model's mean z
    seed: int = 1  # suspects' training seed (the shipped generator was trained with seed 0)
    sample_seed: int = 7
    data: str = "photos"  # the shipped models and held-out crops the run uses


FULL = Plan()
QUICK = Plan(shares=(1.0, 0.0), scratch_steps=40, finetune_steps=40, num_samples=128, other_keys=16)


def arm_name(variant: str, share: float) -> str:
    return f"{variant}-{round(share * 100):03d}"


def mix(real: np.ndarray, marked: np.ndarray, share: float, order: np.ndarray) -> tuple[np.ndarray, int]:
    """The training images for `share`: real images with the first round(share * N) of `order` replaced by
    the watermarked image of the same index (same class). Nested: a smaller share's set is inside a larger's."""
    k = round(share * len(real))
    images = real.copy()
    images[order[:k]] = marked[order[:k]]
    return images, k


def score(tok, images: np.ndarray, owner, per_scale: list, others: list) -> dict[str, np.ndarray]:
    """The owner's detector on PNG round trips of `images`: z, -log10 p, z per scale (`per_scale`: the
    owner's detector restricted to each scale); and the mean z of the batch under each unrelated key's
    detector in `others`."""
    from bitmark.evaluation.roundtrip import png_round_trip

    bits = tok.encode(png_round_trip(images))
    det = owner.detect(bits)
    out = {"z": det.z_score, "neg_log10_p": det.neg_log10_p}
    for s, d in enumerate(per_scale):
        out[f"z_scale_{s}"] = d.detect(bits).z_score
    out["other_key_mean_z"] = np.array([d.detect(bits).z_score.mean() for d in others])
    return out


class Experiment:
    """The shared material of a run (models, real pool, watermarked pool, keys) and its arms."""

    def __init__(self, out: Path, plan: Plan):
        from bitmark.detectors import BitDetector
        from bitmark.evaluation.keys import fixed_key
        from bitmark.io.datasets import load_dataset
        from bitmark.models import load_generator

        data = plan.data
        self.out, self.plan = Path(out), plan
        self.shipped, self.tok = load_generator(data)  # missing weights or data fail before plan.json is written
        held = load_dataset(data, "heldout")
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_plan()
        n = plan.pool_size or len(held)
        pick = np.random.default_rng(plan.seed).permutation(len(held))[:n]
        self.real, self.labels, self.classes = held.images[pick], held.labels[pick], held.classes
        self.key = fixed_key(plan.key_index, delta=plan.delta)
        self.owner = BitDetector(self.key, fpr=0.01)  # detectors built once: their green tables are cached
        self.per_scale = [BitDetector(self.key, scales=(s,)) for s in range(len(self.tok.cfg.schedule))]
        self.others = [BitDetector(fixed_key(10_000 + i, delta=plan.delta)) for i in range(plan.other_keys)]
        self.order = np.random.default_rng(plan.seed + 1).permutation(n)
        self.marked = self._watermarked_pool()

    def _check_plan(self) -> None:
        path = self.out / "plan.json"
        plan = json.loads(json.dumps(dataclasses.asdict(self.plan)))
        if path.exists() and json.loads(path.read_text()) != plan:
            raise ValueError(f"{self.out} holds a run with another plan ({path}); use another --out")
        path.write_text(json.dumps(plan, indent=2) + "\n")

    def _watermarked_pool(self) -> np.ndarray:
        """Watermarked samples of the shipped model, one per real image and with its class, as uint8 after PNG."""
        from bitmark.evaluation.roundtrip import png_round_trip
        from bitmark.models.sampling import sample_images

        path = self.out / "watermarked_pool.npy"
        if path.exists():
            return np.load(path)
        images, _ = sample_images(self.shipped, self.tok, torch.from_numpy(self.labels), key=self.key, seed=1, progress=False)
        images = png_round_trip(images)
        np.save(path, images)
        return images

    def reference_scores(self) -> dict[str, dict[str, np.ndarray]]:
        """The owner's detector on the real pool and on the watermarked pool (the training material itself)."""
        path = self.out / "reference.npz"
        if not path.exists():
            real = score(self.tok, self.real, self.owner, self.per_scale, [])
            marked = score(self.tok, self.marked, self.owner, self.per_scale, [])
            _save_npz(path, {**{f"real/{k}": v for k, v in real.items()}, **{f"marked/{k}": v for k, v in marked.items()}})
        data = np.load(path)
        return {src: {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(src + "/")} for src in ("real", "marked")}

    def arm(self, variant: str, share: float) -> dict:
        """Train (or load) one suspect, sample it without the watermark and score its outputs."""
        from bitmark.models.sampling import class_indices, sample_images
        from bitmark.models.store import save_weights
        from bitmark.training.loop import TrainConfig
        from bitmark.training.recipes import fit_generator

        plan, arm_dir = self.plan, self.out / "arms" / arm_name(variant, share)
        done = arm_dir / "scores.npz"
        if done.exists():
            info = json.loads((arm_dir / "arm.json").read_text())
            return {**info, "scores": dict(np.load(done))}
        images, k = mix(self.real, self.marked, share, self.order)
        scratch = variant == "scratch"
        cfg = TrainConfig(
            steps=plan.scratch_steps if scratch else plan.finetune_steps, batch_size=plan.batch_size,
            lr=plan.scratch_lr if scratch else plan.finetune_lr, seed=plan.seed,
        )
        gen, summary = fit_generator(tok=self.tok, images=images, labels=self.labels, num_classes=len(self.classes),
                                     cfg=cfg, run_dir=arm_dir / "train", init=None if scratch else self.shipped,
                                     desc=arm_name(variant, share))
        t0 = time.time()
        classes = class_indices(plan.num_samples, list(self.classes), None)
        samples, sampled_bits = sample_images(gen, self.tok, classes, key=None, seed=plan.sample_seed, progress=False)
        scores = score(self.tok, samples, self.owner, self.per_scale, self.others)
        scores["z_sampled"] = self.owner.detect(sampled_bits).z_score
        scores["class"] = classes.numpy()
        info = {
            "variant": variant, "share": share, "num_train": len(images), "num_watermarked_train": k,
            "train_steps": summary["steps"], "train_lr": cfg.lr, "train_wall_s": summary["wall_s"],  # resumed runs included
            "sample_and_score_wall_s": round(time.time() - t0, 1), "final_bce": summary["final"].get("bce"),
        }
        np.save(arm_dir / "outputs.npy", samples)  # uint8, lossless like the PNGs: lets any other test re-run
        save_weights(arm_dir / "generator", gen, {"kind": "generator", "suspect_arm": info, "train_config": vars(cfg)})
        (arm_dir / "arm.json").write_text(json.dumps(info, indent=2) + "\n")
        _save_npz(done, scores)
        (arm_dir / "train" / "checkpoint.pt").unlink(missing_ok=True)  # the weights above are kept instead
        return {**info, "scores": scores}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a run killed mid-write must not leave an arm that looks finished."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def run(out: str | Path, quick: bool = False, as_json: bool = False, plan: Plan | None = None, data: str = "photos",
        backend=None) -> dict:
    """Every arm of the plan (finished ones are loaded), then radioactivity.csv, scores.csv, summary.md and
    radioactivity.png in `out`. Returns {"rows": per-arm rows, "wall_s": ...}. backend: the embedded one only
    (the suspects are generators trained here; another backend is refused with the reason)."""
    from bitmark.backends import require as require_backend
    from bitmark.benchmarks import radioactivity_report as report
    from bitmark.io.datasets import require_extras
    from bitmark.io.extras import require

    if backend is not None:
        require_backend(backend, "bench radioactivity", retrainable=True)

    plan = dataclasses.replace(plan or (QUICK if quick else FULL), data=data)
    require_extras(plan.data)  # before plan.json is written: a missing extra fails now, not after the training
    require("matplotlib", "plots", "the radioactivity figure")
    t0 = time.time()
    exp = Experiment(Path(out), plan)
    arms = []
    todo = [(v, s) for v in plan.variants for s in plan.shares]
    for variant, share in progress(todo, desc="radioactivity arms"):
        arms.append(exp.arm(variant, share))
        log.info("%s: mean z %.3f", arm_name(variant, share), arms[-1]["scores"]["z"].mean())
    from bitmark.benchmarks import radioactivity_structure

    structure_rows = radioactivity_structure.evaluate(exp, arms)
    result = report.write(exp.out, plan, arms, exp.reference_scores(), wall_s=time.time() - t0, structure=structure_rows)
    if as_json:
        for row in result["rows"]:
            print(json.dumps(row))
        for row in result["structure"]:  # test B with the structure removed: these rows carry "null" and "structure"
            print(json.dumps(row))
    else:
        print((exp.out / "summary.md").read_text())
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--delta", type=float, default=None, help="owner key's delta (default 2)")
    ap.add_argument("--scratch-steps", type=int, default=None)
    ap.add_argument("--finetune-steps", type=int, default=None)
    ap.add_argument("--shares", default=None, help="comma-separated shares, e.g. 1,0.1,0")
    ap.add_argument("--variants", default=None, help="comma-separated: scratch,finetune")
    ap.add_argument("--seed", type=int, default=None, help="suspects' seed: training, real-pool order, marked subset")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    base = QUICK if a.quick else FULL
    changes = {k: v for k, v in {
        "delta": a.delta, "seed": a.seed, "scratch_steps": a.scratch_steps, "finetune_steps": a.finetune_steps,
        "shares": a.shares and tuple(float(s) for s in a.shares.split(",")),
        "variants": a.variants and tuple(a.variants.split(",")),
    }.items() if v is not None}
    run(a.out, as_json=a.json, plan=dataclasses.replace(base, **changes))
