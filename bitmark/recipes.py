"""Training recipes for the shipped models: what `bitmark train KIND --data NAME` runs.

Each recipe loads its data, trains with `bitmark.training.train` (seeded, resumable, wall-time budget),
measures the figures that go in the weights' card, and exports safetensors + JSON card.
"""

from __future__ import annotations

import logging
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import torch.nn.functional as F

from bitmark.classifier import Classifier, ClassifierConfig, classifier_loss, to_tensor
from bitmark.data import load_dataset
from bitmark.generator import Generator, GeneratorConfig
from bitmark.tokenizer import Tokenizer, TokenizerConfig, to_unit
from bitmark.models import WEIGHTS_DIR, load_tokenizer
from bitmark.training import TrainConfig, save_weights, train

log = logging.getLogger(__name__)


def _machine() -> str:
    from benchmarks.speed import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, {platform.system()}"


def _command() -> str:
    return "bitmark " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "(python api)"


def train_classifier(data: str, out: Path, cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """The frozen domain classifier: trained on held-out real images, evaluated on the training split."""
    held, train_split = load_dataset(data, "heldout"), load_dataset(data, "train")
    model = Classifier(ClassifierConfig(num_classes=len(held.classes)))
    x, y = to_tensor(held.images), torch.from_numpy(held.labels)
    summary = train(model, classifier_loss(x, y, cfg.batch_size), cfg, run_dir, desc="classifier")
    _, pred = model.embed(train_split.images)
    card = {
        "kind": "classifier",
        "data": data,
        "classes": list(held.classes),
        "config": vars(model.cfg),
        "trained_on": f"{data} held-out split ({len(held)} images)",
        "command": _command(),
        "machine": _machine(),
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


def tokenizer_loss(tok: Tokenizer, images: torch.Tensor, batch_size: int, cycle: float = 0.0, flip_max: float = 0.3):
    """Reconstruction (MSE + L1/2) with a commitment term; with `cycle` > 0 also a round-trip term that asks
    encode(uint8(decode(code))) to give back the latent of real and of randomly bit-flipped codes, measured
    per scale in units of that scale's code step (a sign flips at about 1)."""
    q = tok.quantizer

    def round_trip_error(latent: torch.Tensor) -> torch.Tensor:
        error = tok.encode_latent(_uint8_ste(tok.decode_latent(latent))) - latent
        steps = [q.down(error, side) * (q.d**0.5) / gain for side, gain in zip(q.schedule, q.gains)]
        return sum((u**2).mean() for u in steps) / len(steps)

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
            flipped = [b ^ (torch.rand(b.shape, generator=rng) < p) for b in bits]
            cyc = round_trip_error(zq.detach()) + round_trip_error(q.latent(flipped))
            loss = loss + cycle * cyc
            metrics["cycle"] = cyc.item()
        return loss, metrics

    return loss_fn


def _command_and_machine() -> dict[str, str]:
    return {"command": _command(), "machine": _machine()}


def train_tokenizer(data: str, out: Path, cfg: TrainConfig, run_dir: Path, cycle: float = 0.0) -> dict[str, Any]:
    from benchmarks.recoverability import tokenizer_figures

    train_split = load_dataset(data, "train")
    tok = Tokenizer(TokenizerConfig())
    summary = train(tok, tokenizer_loss(tok, to_unit(train_split.images), cfg.batch_size, cycle), cfg, run_dir, desc="tokenizer")
    card = {
        "kind": "tokenizer", "data": data, "config": _plain(vars(tok.cfg)), "bits_per_image": tok.cfg.bits_per_image,
        "trained_on": f"{data} training split ({len(train_split)} images, random flips)", "cycle_weight": cycle,
        **_command_and_machine(), "train_config": vars(cfg), **summary,
        "metrics": tokenizer_figures(tok, load_dataset(data, "heldout").images),
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


def generator_loss(latents: torch.Tensor, labels: torch.Tensor, q, batch_size: int, flip_max: float = 0.2):
    def loss_fn(model: Generator, step: int, rng: torch.Generator):
        idx = torch.randint(0, len(labels), (batch_size,), generator=rng)
        flip = torch.rand(batch_size, generator=rng) * flip_max
        inputs, targets = self_correcting_bits(q, latents[idx], flip, rng)
        loss = model.loss(inputs, targets, labels[idx], rng=rng)
        return loss, {"bce": loss.item()}

    return loss_fn


def train_generator(data: str, out: Path, cfg: TrainConfig, run_dir: Path, tokenizer: Path | None = None) -> dict[str, Any]:
    from benchmarks.recoverability import generator_figures

    tok_path = tokenizer or WEIGHTS_DIR / f"{data}-tokenizer"
    tok = load_tokenizer(tok_path)
    heldout = load_dataset(data, "heldout").images
    train_split = load_dataset(data, "train")
    latents = generator_batches(tok, train_split.images)
    labels = torch.from_numpy(np.concatenate([train_split.labels, train_split.labels]))
    gen = Generator(GeneratorConfig(tok.cfg, num_classes=len(train_split.classes)))
    summary = train(gen, generator_loss(latents, labels, tok.quantizer, cfg.batch_size), cfg, run_dir, desc="generator")
    card = {
        "kind": "generator", "data": data, "classes": list(train_split.classes), "tokenizer": str(Path(tok_path).name),
        "config": {"dim": gen.cfg.dim, "depth": gen.cfg.depth, "heads": gen.cfg.heads, "num_classes": gen.cfg.num_classes},
        "trained_on": f"{data} training split ({len(train_split)} images and their mirror images), bitwise self-correction",
        **_command_and_machine(), "train_config": vars(cfg), **summary,
        "metrics": generator_figures(gen, tok, heldout=heldout),
    }
    save_weights(out, gen, card)
    return card


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


RECIPES = {"classifier": train_classifier, "tokenizer": train_tokenizer, "generator": train_generator}
