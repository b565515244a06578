"""Training recipes for the shipped models: what `bitmark train KIND --data NAME` runs.

Each recipe loads its data, trains with `bitmark.training.loop.train` (seeded, resumable, wall-time budget),
measures the figures that go in the weights' card, and exports safetensors + JSON card.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bitmark.evaluation.provenance import command, machine
from bitmark.io.datasets import load_dataset
from bitmark.models import WEIGHTS_DIR, load_tokenizer
from bitmark.models.classifier import (
    Classifier,
    ClassifierConfig,
    classifier_loss,
    to_tensor,
)
from bitmark.models.generator import Generator, GeneratorConfig
from bitmark.models.store import save_weights
from bitmark.models.tokenizer import Tokenizer, config_for_size, to_unit
from bitmark.training.loop import TrainConfig, train

log = logging.getLogger(__name__)


class SizeMismatch(ValueError):
    """A model asked for at one image size on top of a model trained at another."""


def train_classifier(data: str, out: Path, cfg: TrainConfig, run_dir: Path, image_size: int = 32) -> dict[str, Any]:
    """The frozen domain classifier: trained on held-out real images, evaluated on the training split."""
    held, train_split = load_dataset(data, "heldout", image_size), load_dataset(data, "train", image_size)
    model = Classifier(ClassifierConfig(num_classes=len(held.classes), image_size=image_size))
    x, y = to_tensor(held.images), torch.from_numpy(held.labels)
    summary = train(model, classifier_loss(x, y, cfg.batch_size), cfg, run_dir, desc="classifier")
    _, pred = model.embed(train_split.images)
    card = {
        "kind": "classifier",
        "data": data,
        "classes": list(held.classes),
        "config": vars(model.cfg),
        "trained_on": f"{data} held-out split ({len(held)} images)",
        **_command_and_machine(),
        "train_config": vars(cfg),
        **summary,
        "metrics": {"accuracy_on_train_split": float(np.mean(pred == train_split.labels)), "n": len(train_split)},
    }
    save_weights(out, model, card)
    return card


def _flips(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random horizontal flips of a (B, 3, H, W) batch."""
    return torch.where((torch.rand(len(x), generator=rng) < 0.5).view(-1, 1, 1, 1), x.flip(-1), x)


def _uint8_ste(x: torch.Tensor) -> torch.Tensor:
    """Clamp and round to uint8 levels as a PNG would, passing gradients straight through."""
    x = x.clamp(0, 1)
    return x + ((x * 255).round() / 255 - x).detach()


def band_hinge(q, z: torch.Tensor, bits: list[torch.Tensor], margin: float = 0.5, masks=None) -> torch.Tensor:
    """How far a re-encoded latent `z` is from giving back `bits`, per scale in units of its code step.

    Each scale is judged given the target coarser codes (teacher-forced residual): its value u must lie on
    the bit's side by at least `margin`, and -- the two-sided "band" -- not beyond what an exact code can
    reach (1 + the finer gains + margin), so the loss cannot be met by inflating the latent. With `masks`
    (the flipped positions), flipped and unflipped bits weigh equally.
    """
    residual, terms = z, []
    for k, (b, side, gain) in enumerate(zip(bits, q.schedule, q.gains)):
        t = b.permute(0, 3, 1, 2).float() * 2 - 1
        u = q.down(residual, side) * (q.d**0.5) / gain
        top = 1 + sum(g / gain for g in q.gains[k + 1 :]) + margin
        loss = F.relu(margin - t * u) + F.relu(t * u - top)
        if masks is None:
            terms.append(loss.mean())
        else:
            m = masks[k].permute(0, 3, 1, 2)
            flipped = loss[m].mean() if m.any() else loss.sum() * 0
            terms.append(0.5 * (flipped + loss[~m].mean()))
        residual = residual - gain * q.up(t / q.d**0.5)
    return sum(terms) / len(terms)


def tokenizer_loss(tok: Tokenizer, images: torch.Tensor, batch_size: int, cycle: float = 1.0, flip_max: float = 0.3, balance: bool = False):
    """Reconstruction (MSE + L1/2) with a commitment term, plus `cycle` times the band hinge of two round
    trips through uint8 pixels: the image's own code, and the code with a random share (up to `flip_max`)
    of its bits flipped -- a stand-in for the off-manifold codes that a watermarked sampler draws."""
    q = tok.quantizer

    def loss_fn(model: Tokenizer, step: int, rng: torch.Generator):
        x = _flips(images[torch.randint(0, len(images), (batch_size,), generator=rng)], rng)
        z = model.encode_latent(x)
        zq, bits = q.quantize(z)
        xr = model.decode_latent(zq)
        rec = F.mse_loss(xr, x) + 0.5 * F.l1_loss(xr, x)
        loss = rec + 0.25 * F.mse_loss(z, zq.detach()) * q.d / 4
        metrics = {"rec": rec.item()}
        if cycle > 0:
            p = float(torch.rand((), generator=rng)) * flip_max
            masks = [torch.rand(b.shape, generator=rng) < p for b in bits]
            flipped = [b ^ m for b, m in zip(bits, masks)]
            own = band_hinge(q, model.encode_latent(_uint8_ste(xr)), bits)
            moved = band_hinge(q, model.encode_latent(_uint8_ste(model.decode_latent(q.latent(flipped)))), flipped,
                               masks=masks if balance else None)
            loss = loss + cycle * (own + moved)
            metrics["cycle"] = (own + moved).item()
        return loss, metrics

    return loss_fn


def _command_and_machine() -> dict[str, str]:
    return {"command": command(), "machine": machine()}


def train_tokenizer(data: str, out: Path, cfg: TrainConfig, run_dir: Path, cycle: float = 1.0,
                    image_size: int = 32) -> dict[str, Any]:
    """Two phases, as measured when the recipe was chosen (issue 3's notes): the autoencoder with the
    round-trip hinge, skip paths held at zero; then, from it, the skip paths switched on, at half the
    learning rate, with flipped and unflipped bits balanced. cfg.steps is split 48/52 between them."""
    from bitmark.evaluation.roundtrip import tokenizer_figures

    train_split = load_dataset(data, "train", image_size)
    images = to_unit(train_split.images)
    tok = Tokenizer(config_for_size(image_size))
    cfg = dataclasses.replace(cfg, clip_grad=None)  # as in the recipe that was measured: no gradient clipping
    first = dataclasses.replace(cfg, steps=round(cfg.steps * 0.48),
                                budget_minutes=cfg.budget_minutes and cfg.budget_minutes * 0.48)
    second = dataclasses.replace(cfg, steps=cfg.steps - first.steps, lr=cfg.lr / 2, seed=cfg.seed + 1,
                                 budget_minutes=cfg.budget_minutes and cfg.budget_minutes * 0.52)
    for p in tok.skip_parameters():
        p.requires_grad_(False)
    summary1 = train(tok, tokenizer_loss(tok, images, cfg.batch_size, cycle), first, run_dir / "phase1", desc="tokenizer 1/2")
    for p in tok.skip_parameters():
        p.requires_grad_(True)
    summary2 = train(tok, tokenizer_loss(tok, images, cfg.batch_size, cycle, balance=True), second, run_dir / "phase2", desc="tokenizer 2/2")
    card = {
        "kind": "tokenizer", "data": data, "config": _plain(vars(tok.cfg)), "bits_per_image": tok.cfg.bits_per_image,
        "trained_on": f"{data} training split ({len(train_split)} images, random flips)", "cycle_weight": cycle,
        **_command_and_machine(), "train_config": vars(cfg),
        "steps": summary1["steps"] + summary2["steps"], "wall_s": round(summary1["wall_s"] + summary2["wall_s"], 1),
        "phases": [summary1, summary2], "stopped_by": summary2["stopped_by"],
        "metrics": tokenizer_figures(tok, load_dataset(data, "heldout", image_size).images),
    }
    save_weights(out, tok, card)
    return card


def generator_batches(tok: Tokenizer, images: np.ndarray) -> torch.Tensor:
    """Continuous latents of the training images and of their mirror images (the frozen tokenizer's)."""
    x = to_unit(images)
    with torch.no_grad():
        return torch.cat([tok.encode_latent(x[i : i + 256]) for i in range(0, len(x), 256)] +
                         [tok.encode_latent(x[i : i + 256].flip(-1)) for i in range(0, len(x), 256)])


def self_correcting_bits(q, z: torch.Tensor, flip: torch.Tensor, rng: torch.Generator):
    """Infinity's bitwise self-correction: quantise coarse to fine, flipping each scale's bits with
    probability `flip` (per image) in the *input* while the *target* of every scale is re-quantised from
    the residual that the flipped coarser bits leave."""
    residual, inputs, targets = z, [], []
    for side, gain in zip(q.schedule, q.gains):
        target = (q.down(residual, side) >= 0).permute(0, 2, 3, 1)
        noisy = target ^ (torch.rand(target.shape, generator=rng) < flip.view(-1, 1, 1, 1))
        residual = residual - gain * q.up(q.code(noisy))
        inputs.append(noisy)
        targets.append(target)
    return inputs, targets


def generator_loss(latents: torch.Tensor, labels: torch.Tensor, q, batch_size: int, flip_max: float = 0.0):
    """Teacher forcing on the frozen tokenizer's codes; `flip_max` > 0 turns on bitwise self-correction
    (not used by the shipped recipe: it was not measured to help the mark or the samples yet)."""

    def loss_fn(model: Generator, step: int, rng: torch.Generator):
        idx = torch.randint(0, len(labels), (batch_size,), generator=rng)
        flip = torch.rand(batch_size, generator=rng) * flip_max
        inputs, targets = self_correcting_bits(q, latents[idx], flip, rng)
        loss = model.loss(inputs, targets, labels[idx], rng=rng)
        return loss, {"bce": loss.item()}

    return loss_fn


def fit_generator(
    tok: Tokenizer, images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: TrainConfig, run_dir: Path,
    init: Generator | None = None, desc: str = "generator",
) -> tuple[Generator, dict[str, Any]]:
    """Train a generator on uint8 `images` and their mirror images by teacher forcing on `tok`'s codes:
    from scratch (seeded by cfg.seed) or, with `init`, fine-tuning a copy of that model. Used by the
    shipped recipe and by the benchmarks that retrain the generator (collapse, radioactivity)."""
    latents = generator_batches(tok, images)
    targets = torch.from_numpy(np.concatenate([labels, labels]).astype(np.int64))
    torch.manual_seed(cfg.seed)
    gen = Generator(dataclasses.replace(init.cfg, tokenizer=tok.cfg) if init is not None  # init's widths, not the defaults
                    else GeneratorConfig(tok.cfg, num_classes=num_classes))
    if init is not None:
        gen.load_state_dict(init.state_dict())
    summary = train(gen, generator_loss(latents, targets, tok.quantizer, cfg.batch_size), cfg, run_dir, desc=desc)
    return gen, summary


def train_generator(data: str, out: Path, cfg: TrainConfig, run_dir: Path, tokenizer: Path | None = None,
                    image_size: int | None = None) -> dict[str, Any]:
    """Teacher forcing on `tokenizer`'s codes, at the tokenizer's image size (`image_size`, when given, must
    match it: the generator samples that tokenizer's schedule and nothing else)."""
    from bitmark.evaluation.roundtrip import generator_figures

    tok_path = tokenizer or WEIGHTS_DIR / f"{data}-tokenizer"
    tok = load_tokenizer(tok_path)
    size = tok.cfg.image_size
    if image_size is not None and image_size != size:
        raise SizeMismatch(f"the tokenizer {tok_path} is for {size}x{size} images, not {image_size}: "
                         "train a tokenizer at that size first and pass it with --tokenizer")
    heldout = load_dataset(data, "heldout", size).images
    train_split = load_dataset(data, "train", size)
    gen, summary = fit_generator(tok, train_split.images, train_split.labels, len(train_split.classes), cfg, run_dir)
    card = {
        "kind": "generator", "data": data, "classes": list(train_split.classes), "tokenizer": str(Path(tok_path).name),
        "config": {"dim": gen.cfg.dim, "depth": gen.cfg.depth, "heads": gen.cfg.heads, "num_classes": gen.cfg.num_classes},
        "image_size": size,
        "trained_on": f"{data} training split ({len(train_split)} images and their mirror images), teacher forcing",
        **_command_and_machine(), "train_config": vars(cfg), **summary,
        "metrics": generator_figures(gen, tok, heldout=heldout),
    }
    save_weights(out, gen, card)
    _place_beside(Path(tok_path), Path(out))
    return card


def _place_beside(tok_path: Path, out: Path) -> None:
    """The generator's card names its tokenizer by file name, looked up beside it: copy the tokenizer there
    (weights + card) when it lives elsewhere, so the output folder loads on its own (`--data OUT`)."""
    stem = tok_path.with_suffix("") if tok_path.suffix == ".safetensors" else tok_path
    beside = Path(out).with_suffix("").parent / stem.name
    if beside.resolve() == stem.resolve():
        return
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(f"{stem}{suffix}", f"{beside}{suffix}")


def train_autoencoder(data: str, out: Path, cfg: TrainConfig, run_dir: Path, image_size: int = 32) -> dict[str, Any]:
    """The independent autoencoder of the regeneration attack: reconstruction only (MSE + L1/2, flips)."""
    from bitmark.evaluation.quality import psnr
    from bitmark.models.autoencoder import Autoencoder, AutoencoderConfig

    train_split, heldout = load_dataset(data, "train", image_size), load_dataset(data, "heldout", image_size).images
    images = to_unit(train_split.images)
    torch.manual_seed(cfg.seed)
    model = Autoencoder(AutoencoderConfig(image_size=image_size))

    def loss_fn(model: Autoencoder, step: int, rng: torch.Generator):
        x = _flips(images[torch.randint(0, len(images), (cfg.batch_size,), generator=rng)], rng)
        xr = model(x)
        loss = F.mse_loss(xr, x) + 0.5 * F.l1_loss(xr, x)
        return loss, {"rec": loss.item()}

    summary = train(model, loss_fn, cfg, run_dir, desc="autoencoder")
    card = {
        "kind": "autoencoder", "data": data, "config": _plain(vars(model.cfg)),
        "trained_on": f"{data} training split ({len(train_split)} images, random flips), reconstruction only",
        **_command_and_machine(), "train_config": vars(cfg), **summary,
        "metrics": {"heldout_psnr": round(psnr(model.roundtrip(heldout), heldout), 2), "n": len(heldout)},
    }
    save_weights(out, model, card)
    return card


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def train_robust(data: str, out: Path, cfg: TrainConfig, run_dir: Path, **options) -> dict[str, Any]:
    """Channel-robust fine-tuning of a trained tokenizer (bitmark.training.robust; imported here lazily, it
    builds on this module's losses)."""
    from bitmark.training.robust import train_robust as run

    return run(data, out, cfg, run_dir, **options)


RECIPES = {
    "classifier": train_classifier, "tokenizer": train_tokenizer, "generator": train_generator,
    "autoencoder": train_autoencoder, "robust": train_robust,
}
