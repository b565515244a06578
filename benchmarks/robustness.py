"""Robustness and quality of the mark: `bitmark bench robustness [--quick] [--num N] [--attacks ...] --out DIR`.

N watermarked samples per scheme and N clean samples of the shipped generator (same seeds and classes),
plus N held-out real crops; every attack at every strength of its default grid is applied to all of them,
and each scheme's detector scores the attacked images from pixels (re-encoded by the shipped tokenizer).

* Schemes: our default (keyed-spatial, self-normalised null), the `keyed` rule (binomial null), the
  published `bitmark-2025` rule (binomial null) -- all n = 2, δ = 2, fixed benchmark keys -- and, when
  installed, invisible-watermark's post-hoc methods on 256² upscales of the clean samples (`baselines`).
  With `resync`, also the default detector with the resynchronisation stage of
  `bitmark.detectors.resync` (pixel attacks only), at each weight of `resync_weights` from one search;
  with `realign`, the older crop search of `bitmark.detectors.realign` (140 encodings per image).
* Thresholds: the empirical (1 − FPR) quantile of the clean and real negatives *under the same attack*.
  White-box attacks are the exception: an attacker launders only his own images, so their negatives
  are the un-attacked ones. Forgery rows (`forge`, `steal_forge`) attack the clean samples, and report
  the share of them the detector's own 1% test then flags (`forgery_success`) instead of a TPR.
* Quality: the frozen classifier's Fréchet distance, KID and precision/recall of watermarked samples
  at δ ∈ {0.5, 1, 2, 4}, clean samples, and a second clean draw (the noise floor), against held-out
  real crops and against the clean samples; with the TPR after JPEG 75 at each δ.

Rows are appended to results.csv as they finish, so an interrupted run resumes where it stopped (with
the same configuration; a different one is refused).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitmark import attacks
from bitmark.benchmarks import baselines
from bitmark.benchmarks.backend_support import backend_note, backend_specs
from bitmark.benchmarks.metrics import roc_auc, tpr_at_fpr
from bitmark.evaluation.keys import fixed_key
from bitmark.evaluation.quality import psnr
from bitmark.evaluation.roundtrip import agreement
from bitmark.io.progress import progress as progress_bar

log = logging.getLogger(__name__)

SCHEMES = {  # name -> (key number, rule); every key n = 2, δ = 2
    "bitmark (keyed-spatial)": (0, "keyed-spatial"),
    "keyed": (1, "keyed"),
    "bitmark-2025": (2, "bitmark-2025"),
}
DEFAULT = "bitmark (keyed-spatial)"
REALIGNED = "bitmark (keyed-spatial) + crop search"
FORGERY = ("forge", "steal_forge", "adaptive_forge", "average_forge")
RESYNCED = "bitmark (keyed-spatial) + resync"


def white_box(name: str) -> bool:
    """Attacks that see the key's green bits or learn them: they need an oracle or observed images."""
    cls = attacks.REGISTRY.get(name)
    return cls is not None and bool({"oracle", "observed"} & set(cls.options))
COMBINATION = "jpeg:50+crop:0.71+brightness:1.3"
HEADLINE = ("none:0", "jpeg:75", "jpeg:50", "crop:0.75", "noise:0.05", "regen_autoencoder:1", "regen_scales:2", "bitflip:0.75")
DELTAS = (0.5, 1.0, 2.0, 4.0)
COLUMNS = (
    "scheme", "attack", "strength", "spec", "n_pos", "n_neg", "tpr_at_1pct", "tpr_at_0.1pct", "auc",
    "z_pos_mean", "z_neg_mean", "forgery_success", "bit_agreement", "psnr", "note", "neg_flagged",
)


@dataclass
class Config:
    num: int = 500  # watermarked samples per scheme
    num_negatives: int | None = None  # clean samples and real crops each (default: num; real ones at most 950)
    attacks: list[str] = field(default_factory=list)  # specs; empty = every attack at every grid strength
    deltas: tuple[float, ...] = DELTAS
    baseline_num: dict[str, int] = field(default_factory=lambda: {"dwtDctSvd": 500, "rivaGan": 32})  # images per
    # class for the post-hoc baselines at 256²; RivaGAN decodes at ~1.2 s per image here, hence its small N
    baseline_attacks: tuple[str, ...] = HEADLINE[:5]  # the pixel attacks it can take; model attacks run at 32²
    seed: int = 0
    schemes: list[str] = field(default_factory=lambda: list(SCHEMES))  # which bit schemes to run
    realign: bool = False  # add the default scheme with the crop search (bitmark.detectors.realign), pixel attacks only
    backend: str = "embedded"  # what was sampled (recorded, so a resumed run cannot mix generators)
    resync: bool = True  # add the default scheme with the resynchronisation stage (bitmark.detectors.resync)
    resync_weights: tuple[float, ...] = (0.9, 0.95)  # shares of the FPR kept for the un-moved image; the first is the default
    quality: bool = True  # the quality-per-δ table (samples 3 more δ)
    # the default scheme's null: None = the detectors' default (the model null with the detector card's weights,
    # `bitmark.detectors.defaults`); "self-normalised" = the default before it
    null: str | None = None


def default_specs() -> list[str]:
    """Every registered attack at every strength of its default grid, then one combination."""
    specs = [f"{name}:{s:g}" for name in attacks.names() for s in attacks.REGISTRY[name].grid]
    return specs + [COMBINATION]


def quick_config() -> Config:
    """64 positives but 500 + 500 negatives: a TPR at 1% FPR needs at least 1,000 negatives (DESIGN §8). Without the
    resynchronisation rows, which would take most of its time (`--quick --resync` adds them)."""
    return Config(num=64, num_negatives=500, attacks=list(HEADLINE), deltas=(1.0, 2.0), baseline_num={"dwtDctSvd": 32},
                  resync=False)


class Bench:
    """Images, pyramids and detectors shared by every row (negatives: clean + real, or a second clean draw)."""

    def __init__(self, cfg: Config, backend=None):
        from bitmark.backends import EmbeddedBackend, make_sampler
        from bitmark.models import dataset_of, load_classifier

        self.cfg, self.backend = cfg, backend or EmbeddedBackend("photos")
        self.encode = self.backend.encode
        self.clf = load_classifier(dataset_of(self.backend.data)) if self.backend.kind == "embedded" else None
        self.sample = lambda key, seed, n=cfg.num: self.backend.sample(make_sampler(key), n, seed=seed, progress=False).images
        negatives = cfg.num_negatives or cfg.num
        self.real = self.backend.real_images(negatives, cfg.seed)
        if self.real is None:
            self.real = self.sample(None, cfg.seed + 3, negatives)
        self.clean = self.sample(None, cfg.seed, max(negatives, cfg.num))  # the first num share the positives' seeds
        self.keys = {name: fixed_key(SCHEMES[name][0], rule=SCHEMES[name][1]) for name in cfg.schemes}
        self.detectors = {name: self.detector(key) for name, key in self.keys.items()}
        self.marked = {name: self.sample(key, cfg.seed) for name, key in progress_bar(self.keys.items(), desc="sampling", leave=False)}
        self.realigned = None
        if cfg.realign:
            from bitmark.detectors.realign import RealigningDetector

            if DEFAULT not in self.keys:
                raise ValueError("the crop search runs on the default scheme: keep it in `schemes`")
            if self.backend.kind != "embedded":
                raise ValueError("the crop search runs on the embedded tokenizer's fixed 32x32 grid: drop --realign")
            self.realigned = RealigningDetector(self.backend.tok, self.detectors[DEFAULT])
        self.resynced = None
        if cfg.resync and (self.backend.kind != "embedded" or DEFAULT not in self.keys):
            log.info("no resynchronisation rows: the stage reads the embedded tokenizer's texture and runs on the default scheme")
        elif cfg.resync:
            from bitmark.detectors.resync import ResyncDetector

            self.resynced = ResyncDetector(self.backend.tok, self.detectors[DEFAULT], weight=cfg.resync_weights[0])
        self._observed: dict[str, np.ndarray] = {}
        self.pyramids = {name: self.encode(x) for name, x in self.marked.items()}
        negatives = self.encode(np.concatenate([self.clean, self.real]))
        self.untouched = {name: det.detect(negatives) for name, det in self.detectors.items()}  # un-attacked negatives

    def detector(self, key):
        """The detector of a scheme's key: the detectors' default for the embedded models (or `cfg.null` for the
        default scheme's rule), the rule's own null for another backend's encoder."""
        from bitmark.detectors import BitDetector
        from bitmark.detectors.defaults import default_detector

        if self.cfg.null is not None and key.config.rule == SCHEMES[DEFAULT][1]:
            return BitDetector(key, null=self.cfg.null)
        return default_detector(key, data=self.backend.data if self.backend.kind == "embedded" else None)

    def observed(self, scheme: str, n: int) -> np.ndarray:
        """Watermarked samples the rule-stealing attacker sees (other seeds than the test images)."""
        if len(self._observed.get(scheme, ())) < n:
            self._observed[scheme] = self.sample(self.keys[scheme], self.cfg.seed + 1, n)
        return self._observed[scheme]

    def z(self, scheme: str, images: np.ndarray) -> np.ndarray:
        return self.detectors[scheme].detect(self.encode(images)).z_score


def _row(scheme: str, spec: str, pos: np.ndarray, neg: np.ndarray, **extra: Any) -> dict[str, Any]:
    name, _, strength = spec.partition(":") if "+" not in spec else (spec, "", "")
    t1, t01 = tpr_at_fpr(pos, neg, 0.01), tpr_at_fpr(pos, neg, 0.001)
    return {
        "scheme": scheme, "attack": name, "strength": strength, "spec": spec, "n_pos": len(pos), "n_neg": len(neg),
        "tpr_at_1pct": "n/a (needs >= 1k negatives)" if t1 is None else t1,
        "tpr_at_0.1pct": "n/a (needs >= 10k negatives)" if t01 is None else t01,
        "auc": roc_auc(pos, neg), "z_pos_mean": float(np.mean(pos)), "z_neg_mean": float(np.mean(neg)), **extra,
    }


def attack_rows(bench: Bench, spec: str) -> list[dict[str, Any]]:
    """One row per scheme for one attack spec."""
    name = spec.split(":")[0].split("+")[0]
    seeds = {"pos": 11, "clean": 12, "real": 13}  # the same crops, noise, ... for every scheme's positives
    rows = []
    if not white_box(name):
        attack = attacks.parse(spec)
        clean, real = attack(bench.clean, seed=seeds["clean"]), attack(bench.real, seed=seeds["real"])
    for scheme, det in bench.detectors.items():
        marked = bench.marked[scheme]
        if white_box(name):
            options = {"oracle": det.green_status}
            if "observed" in attacks.REGISTRY[name].options:  # rule stealing, pixel averaging
                options = {"observed": bench.observed(scheme, int(float(spec.split(":")[1])))}
            attack = attacks.parse(spec, **options)
            neg = bench.untouched[scheme].z_score  # negatives un-attacked (see the module docstring)
        else:
            neg = np.concatenate([bench.z(scheme, clean), bench.z(scheme, real)])
        if name in FORGERY:
            forged = attack(bench.clean, seed=seeds["clean"])
            result = det.detect(bench.encode(forged))
            row = _row(scheme, spec, result.z_score, neg, forgery_success=float(result.is_watermarked.mean()),
                       psnr=psnr(forged, bench.clean), note="positives = forged clean samples; success = flagged by the detector's own 1% test")
            row["tpr_at_1pct"] = row["tpr_at_0.1pct"] = ""
        else:
            attacked = attack(marked, seed=seeds["pos"])
            bits = bench.encode(attacked)
            z_pos = bench.detectors[scheme].detect(bits).z_score
            row = _row(scheme, spec, z_pos, neg, bit_agreement=agreement(bench.pyramids[scheme], bits)["bits"],
                       psnr=psnr(attacked, marked))
            if scheme == DEFAULT and not white_box(name):  # the self-normalised null: p = normal tail of z
                row["neg_flagged"] = float(np.mean(neg >= _Z_1PCT))
        rows.append(row)
    if bench.realigned is not None and not white_box(name):
        marked = attack(bench.marked[DEFAULT], seed=seeds["pos"])
        scores = [bench.realigned.detect(x).z_score for x in (marked, clean, real)]
        rows.append(_row(REALIGNED, spec, scores[0], np.concatenate(scores[1:]),
                         note=f"best of {len(bench.realigned.boxes)} crop boxes; scores are the best box's z"))
    if bench.resynced is not None and not white_box(name):
        rows += resync_rows(bench, spec, attack(bench.marked[DEFAULT], seed=seeds["pos"]), clean, real)
    return rows


_Z_1PCT = 2.3263478740408408  # one-sided normal quantile of 0.99


def resync_rows(bench: Bench, spec: str, marked: np.ndarray, clean: np.ndarray, real: np.ndarray) -> list[dict[str, Any]]:
    """One row per weight, all from one search: scores are -log10 p after the search's correction;
    `neg_flagged` is the share of the attacked negatives that its own 1% test flags (the FPR it promises)."""
    pos, neg = bench.resynced.search(marked), bench.resynced.search(np.concatenate([clean, real]))
    rows = []
    for w in bench.cfg.resync_weights:
        (p_det, moves), (n_det, _) = pos.verdict(w, 0.01), neg.verdict(w, 0.01)
        moved = float(np.mean([not m.is_identity(bench.backend.tok.cfg.image_size) for m in moves]))
        rows.append(_row(f"{RESYNCED} (w={w:g})", spec, p_det.neg_log10_p, n_det.neg_log10_p,
                         z_pos_mean=float(p_det.z_score.mean()), z_neg_mean=float(n_det.z_score.mean()),
                         neg_flagged=float(n_det.is_watermarked.mean()),
                         note=f"scores: -log10 p after the search; verdicts read from a moved candidate: {moved:.2f} of positives"))
    return rows


def baseline_rows(bench: Bench, specs: list[str]) -> list[dict[str, Any]]:
    """invisible-watermark on 256² upscales of the first n clean samples (negatives: those and n real)."""
    rows = []
    for method, n in bench.cfg.baseline_num.items():
        skipped = baselines.available(method)
        if skipped:
            log.warning("%s", skipped)
            continue
        n = min(n, len(bench.clean), len(bench.real))
        clean, real = baselines.upscale(bench.clean[:n]), baselines.upscale(bench.real[:n])
        scheme = f"invisible-watermark {method}"
        post = baselines.PostHoc(method)
        marked = post.embed(clean)
        for spec in progress_bar(specs, desc=scheme, leave=False):
            attack = attacks.parse(spec)
            attacked = attack(marked, seed=11)
            neg = np.concatenate([post.score(attack(clean, seed=12)), post.score(attack(real, seed=13))])
            rows.append(_row(scheme, spec, post.score(attacked), neg, psnr=psnr(attacked, marked),
                             note=f"256x256 Lanczos upscales of {n} clean samples; {n} + {n} negatives"))
    return rows


def quality_rows(bench: Bench) -> list[dict[str, Any]]:
    """Quality cost per δ (default rule) next to clean and the clean-vs-clean floor; TPR after JPEG 75."""
    from bitmark.evaluation.quality import (
        frechet_distance,
        kernel_inception_distance,
        precision_recall_density_coverage,
    )

    def features(images):
        return bench.clf.embed(images)[0]

    real_f, clean_f = features(bench.real), features(bench.clean[: bench.cfg.num])
    floor_f = features(bench.sample(None, bench.cfg.seed + 2))
    jpeg = attacks.get("jpeg", 75)
    negatives = np.concatenate([bench.clean, bench.real])
    sets = {"clean (second draw)": (floor_f, None)}
    for delta in bench.cfg.deltas:
        key = fixed_key(0, delta=delta)
        images = bench.marked[DEFAULT] if delta == 2.0 else bench.sample(key, bench.cfg.seed)
        sets[f"watermarked δ={delta:g}"] = (features(images), (key, images))
    rows = []
    for name, (f, marked) in sets.items():
        kid, kid_std = kernel_inception_distance(f, real_f, subset_size=min(200, len(f)))
        pr = precision_recall_density_coverage(real_f, f)
        row = {"set": name, "fd_to_real": frechet_distance(f, real_f), "fd_to_clean": frechet_distance(f, clean_f),
               "fd_clean_to_real": frechet_distance(clean_f, real_f), "kid_to_real": kid, "kid_std": kid_std,
               "precision": pr["precision"], "recall": pr["recall"], "tpr_jpeg75": ""}
        if marked is not None:
            key, images = marked
            det = bench.detector(key)
            pos, neg = (det.detect(bench.encode(jpeg(x, seed=12))).z_score for x in (images, negatives))
            row["delta"] = key.config.delta
            row["tpr_jpeg75"] = tpr_at_fpr(pos, neg, 0.01)
        rows.append(row)
    return rows


def _read_done(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def validate(out: Path, cfg: Config, specs: list[str] | None = None) -> None:
    """Refuse a configuration that could not finish, before anything is written or loaded: attack specs
    (names and strengths, as the registry checks them), schemes, counts, deltas, baseline methods, the
    extras the run needs (data, plots), and a finished or unfinished run of another configuration in `out`."""
    from bitmark.io.datasets import require_extras
    from bitmark.io.extras import require

    problems = []
    if cfg.num < 1:
        problems.append(f"num must be at least 1, got {cfg.num}")
    if cfg.num_negatives is not None and cfg.num_negatives < 1:
        problems.append(f"num_negatives must be at least 1, got {cfg.num_negatives}")
    asked = cfg.attacks or default_specs()
    for spec in asked:
        try:
            attacks.check(spec)
        except attacks.AttackError as e:
            problems.append(f"attack {spec!r}: {e}")
    twice = sorted({s for s in asked if asked.count(s) > 1})
    if twice:
        problems.append(f"attacks listed twice: {', '.join(twice)}")
    unknown = [s for s in cfg.schemes if s not in SCHEMES]
    if unknown or not cfg.schemes:
        problems.append((f"unknown schemes {unknown}" if unknown else "no schemes")
                        + f"; choose from {', '.join(repr(s) for s in SCHEMES)}")
    if cfg.realign and DEFAULT not in cfg.schemes:
        problems.append(f"the crop search (realign) runs on the default scheme: keep {DEFAULT!r} in the schemes")
    if not cfg.deltas or not all(math.isfinite(d) and d > 0 for d in cfg.deltas):
        problems.append(f"deltas must be finite and > 0, got {list(cfg.deltas)}")
    bad = [m for m in cfg.baseline_num if m not in baselines.METHODS]
    if bad:
        problems.append(f"unknown baseline methods {bad}; choose from {', '.join(baselines.METHODS)}")
    if any(n < 1 for n in cfg.baseline_num.values()):
        problems.append(f"baseline image counts must be at least 1, got {cfg.baseline_num}")
    cfg_file = out / "config.json"
    if cfg_file.exists() and json.loads(cfg_file.read_text()) != _wanted(cfg, specs or asked):
        problems.append(f"{out} holds a run with another configuration ({cfg_file}); use a new --out")
    if problems:
        raise ValueError("; ".join(problems))
    require_extras("photos")
    require("matplotlib", "plots", "the robustness figures")


def _wanted(cfg: Config, specs: list[str]) -> dict[str, Any]:
    """The configuration as config.json records it (the specs this backend runs, spelled out)."""
    return {**asdict(cfg), "attacks": specs, "deltas": list(cfg.deltas),
            "baseline_attacks": list(cfg.baseline_attacks), "resync_weights": list(cfg.resync_weights)}


def run(out: Path, cfg: Config, progress: bool = True, backend=None) -> dict[str, Any]:
    """Run (or resume) the benchmark into `out`; returns the files written, the row count and the wall time.
    backend: a `bitmark.backends` generator (default embedded); what another cannot run is listed in the summary."""
    from bitmark.backends import EmbeddedBackend
    from bitmark.benchmarks.robustness_report import plots, summary

    backend = backend or EmbeddedBackend("photos")
    cfg.backend = backend.description if backend.kind != "embedded" else "embedded"
    specs, not_run = backend_specs(cfg.attacks or default_specs(), backend)
    if backend.kind != "embedded":
        cfg.baseline_num = {}
    validate(out, cfg, specs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(_wanted(cfg, specs), indent=2) + "\n")
    start = time.time()
    results = out / "results.csv"
    done = {r["spec"] for r in _read_done(results)}
    bench = Bench(cfg, backend)
    todo = [s for s in specs if s not in done]
    with open(results, "a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, restval="")
        if not done:
            writer.writeheader()
        for spec in progress_bar(todo, desc="attacks", unit="attack", enabled=progress):
            for row in attack_rows(bench, spec):
                writer.writerow(row)
            f.flush()
        skipped = baselines.available()
        if skipped:
            log.warning("%s", skipped)
        elif not any(r["scheme"].startswith("invisible") for r in _read_done(results)):
            for row in baseline_rows(bench, [s for s in cfg.baseline_attacks if s in specs]):
                writer.writerow(row)
    quality = quality_rows(bench) if cfg.quality and bench.clf is not None else []
    if quality:
        with open(out / "quality.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, list(quality[1].keys()), restval="")
            writer.writeheader()
            writer.writerows(quality)
    rows = _read_done(results)
    wall = time.time() - start
    own_fpr = {name: float(d.is_watermarked.mean()) for name, d in bench.untouched.items()}
    figures = plots(rows, quality, out)
    files = ["config.json", "results.csv", *(["quality.csv"] if quality else []), "summary.md", *figures]
    text = summary(rows, quality, cfg, skipped, wall, own_fpr, files)
    if backend.kind != "embedded":
        text = backend_note(backend, not_run, cfg) + text
    (out / "summary.md").write_text(text)
    return {"out": str(out), "wall_s": round(wall, 1), "rows": len(rows), "baseline": skipped or "ran", "files": files}
