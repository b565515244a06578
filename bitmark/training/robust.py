"""`bitmark train robust`: fine-tune a trained tokenizer so that its bits survive a random image channel
(issue 13, "channel-robust tokenizer training").

Reverse-cycle consistency: decode codes with the trainable decoder, round to uint8, pass the image through
`bitmark.training.channel`, re-encode with the trainable encoder and penalise, with `band_hinge`, every bit
that did not come back. The codes are those a detector will meet: codes of real training crops, of the
generator's clean and watermarked samples (keys that are *not* the benchmark's, deltas 0.5..2) and of those
codes with a random share of bits flipped. Two regularisers keep the images what they were: the distance to
the frozen decoder's output, split into a low-pass and a (more heavily weighted) high-pass part -- so
robustness is bought with low-frequency changes, not with a visible texture -- and the reconstruction of
real crops, so the encoder still codes real images.

One tokenizer file then serves generation and detection. Its encoder changed, so the codes of real images
moved a little; `refit_steps` > 0 fine-tunes the generator on them (`fit_generator`). The output is a
generator card naming the new tokenizer beside it: `--data OUT` loads both.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bitmark.models import dataset_of, load_generator, load_tokenizer, real_data
from bitmark.models.store import load_card, save_weights
from bitmark.models.tokenizer import Tokenizer, TokenizerConfig, to_unit
from bitmark.training import channel
from bitmark.training.loop import TrainConfig, train

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RobustConfig:
    pool: int = 2048  # generator samples drawn for the code pool (half clean, half watermarked)
    flip_max: float = 0.3  # codes of the flipped half of a batch have up to this share of bits flipped
    low_weight: float = 10.0  # MSE to the frozen decoder's output, low-pass part
    high_weight: float = 40.0  # ... high-pass part (the visible texture)
    rec_weight: float = 1.0  # reconstruction of real crops
    ramp_share: float = 0.3  # channel strength ramps to full over this share of the steps
    drop_skip: bool = False  # remove the linear patch paths (start from the conv nets alone)
    refit_steps: int = 0  # generator fine-tuning steps on the new codes (0: the generator is kept as it is)
    ops: tuple[str, ...] = ()  # channel ops (default: all)


def _low_pass(x: torch.Tensor) -> torch.Tensor:
    """A 4x4-cell average, upsampled back: what one latent cell's linear patch cannot carry as texture."""
    return F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear", align_corners=False)


def _without_skip(tok: Tokenizer) -> Tokenizer:
    plain = Tokenizer(TokenizerConfig(**{**dataclasses.asdict(tok.cfg), "skip": False}))
    plain.load_state_dict({k: v for k, v in tok.state_dict().items() if "_skip" not in k})
    return plain


def code_pool(gen, tok: Tokenizer, real: np.ndarray, n: int, seed: int) -> list[torch.Tensor]:
    """Bit pyramids to train on: `real` crops' codes, n/2 clean samples and n/2 watermarked ones (four keys
    that are not the benchmark's fixed key 0, deltas 0.5, 1, 1.5, 2)."""
    from bitmark.core.keys import WatermarkKey
    from bitmark.evaluation.keys import fixed_key
    from bitmark.models.sampling import sample_images

    pyramids = [tok.encode(real)]
    classes = torch.arange(max(1, n // 2)) % gen.cfg.num_classes
    pyramids.append(sample_images(gen, tok, classes, seed=seed + 101, progress=False)[1])
    for i, delta in enumerate((0.5, 1.0, 1.5, 2.0)):
        key: WatermarkKey = fixed_key(1000 + i, delta=delta)
        part = classes[i :: 4]
        pyramids.append(sample_images(gen, tok, part, key=key, seed=seed + 201 + i, progress=False)[1])
    return [torch.cat(scale) for scale in zip(*pyramids)]


def robust_loss(tok: Tokenizer, frozen: Tokenizer, pool: list[torch.Tensor], images: torch.Tensor,
                cfg: TrainConfig, rcfg: RobustConfig, texture: Tokenizer | None = None):
    """cycle + quality + reconstruction. The quality term's low-pass part is measured against `frozen`'s
    output; its high-pass part against `texture`'s (default `frozen`; without the skip paths: the frozen conv
    decoder alone, so the fine-tuned decoder is not pulled back towards the skip paths' 4x4 texture)."""
    from bitmark.training.recipes import _flips, _uint8_ste, band_hinge

    texture = texture or frozen

    q, n = tok.quantizer, len(pool[0])

    def loss_fn(model: Tokenizer, step: int, rng: torch.Generator):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=rng)
        bits = [b[idx] for b in pool]
        share = torch.rand(cfg.batch_size, generator=rng) * rcfg.flip_max
        share[: cfg.batch_size // 2] = 0  # half the batch as drawn, half with flipped bits
        bits = [b ^ (torch.rand(b.shape, generator=rng) < share.view(-1, 1, 1, 1)) for b in bits]
        latent = q.latent(bits)
        x = model.decode_latent(latent)
        with torch.no_grad():
            x0 = frozen.decode_latent(latent)
            x0_high = x0 if texture is frozen else texture.decode_latent(latent)
        y = channel.apply(_uint8_ste(x), channel.ramp(step, cfg.steps, rcfg.ramp_share), rng, list(rcfg.ops) or None)
        cycle = band_hinge(q, model.encode_latent(y), bits)
        low = _low_pass(x - x0)
        quality = rcfg.low_weight * low.pow(2).mean() + rcfg.high_weight * (x - x0_high - _low_pass(x - x0_high)).pow(2).mean()
        real = _flips(images[torch.randint(0, len(images), (cfg.batch_size,), generator=rng)], rng)
        z = model.encode_latent(real)
        zq, _ = q.quantize(z)
        xr = model.decode_latent(zq)
        rec = F.mse_loss(xr, real) + 0.5 * F.l1_loss(xr, real) + 0.25 * F.mse_loss(z, zq.detach()) * q.d / 4
        loss = cycle + quality + rcfg.rec_weight * rec
        return loss, {"cycle": cycle.item(), "quality": quality.item(), "rec": rec.item()}

    return loss_fn


def train_robust(data: str, out: Path, cfg: TrainConfig, run_dir: Path, tokenizer: str | None = None,
                 generator: str | None = None, rcfg: RobustConfig | None = None) -> dict[str, Any]:
    """Fine-tune the tokenizer of `generator` (default: the models of `data`, shipped name or a generator
    weights path) or `tokenizer` through the channel; write OUT (generator) and OUT-tokenizer beside it."""
    from bitmark.evaluation.provenance import command, machine
    from bitmark.evaluation.roundtrip import generator_figures, tokenizer_figures
    from bitmark.training.recipes import _plain, fit_generator

    rcfg = rcfg or RobustConfig()
    unknown = set(rcfg.ops) - set(channel.names())
    if unknown:
        raise ValueError(f"unknown channel ops {sorted(unknown)}; known: {', '.join(channel.names())}")
    gen_path = generator or data
    gen, tok = load_generator(gen_path, tok=load_tokenizer(tokenizer) if tokenizer else None)
    train_split, heldout = real_data(gen_path, "train"), real_data(gen_path, "heldout").images
    pool = code_pool(gen, tok, train_split.images, rcfg.pool, cfg.seed)
    log.info("code pool: %d pyramids", len(pool[0]))
    frozen = copy.deepcopy(tok).eval().requires_grad_(False)
    model = _without_skip(tok) if rcfg.drop_skip else tok
    texture = _without_skip(frozen).requires_grad_(False) if rcfg.drop_skip else frozen
    loss = robust_loss(model, frozen, pool, to_unit(train_split.images), cfg, rcfg, texture)
    summary = train(model, loss, cfg, run_dir / "tokenizer", desc="robust tokenizer")
    out = Path(out).with_suffix("")
    tok_out = out.parent / f"{out.name}-tokenizer"
    tok_card = {
        "kind": "tokenizer", "data": dataset_of(gen_path), "config": _plain(vars(model.cfg)), "bits_per_image": model.cfg.bits_per_image,
        "trained_on": f"fine-tuned from {tokenizer or 'the tokenizer of ' + str(gen_path)} through a random channel "
                      f"({', '.join(rcfg.ops or channel.names())}) on {len(pool[0])} code pyramids",
        "command": command(), "machine": machine(), "train_config": vars(cfg), "robust_config": _plain(vars(rcfg)),
        **summary, "metrics": tokenizer_figures(model, heldout),
    }
    save_weights(tok_out, model, tok_card)
    gen_summary: dict[str, Any] = {"steps": 0}
    if rcfg.refit_steps > 0:
        gcfg = dataclasses.replace(cfg, steps=rcfg.refit_steps, lr=cfg.lr / 2, warmup=min(cfg.warmup, rcfg.refit_steps // 10),
                                   budget_minutes=None)
        gen, gen_summary = fit_generator(model, train_split.images, train_split.labels, gen.cfg.num_classes, gcfg,
                                         run_dir / "generator", init=gen, desc="generator refit")
    gen_card = {
        **{k: v for k, v in load_card(_weights_path(gen_path, "generator")).items() if k not in ("parameters", "metrics")},
        "tokenizer": tok_out.name, "command": command(), "machine": machine(),
        "refit": {"steps": gen_summary["steps"], "on": "the new tokenizer's codes"} if rcfg.refit_steps else None,
        "metrics": generator_figures(gen, model, heldout=heldout),
    }
    save_weights(out, gen, gen_card)
    return {**tok_card, "steps": summary["steps"], "generator": gen_card["metrics"]}


def _weights_path(data_or_path: str, kind: str) -> Path:
    from bitmark.models.shipped import _path

    return _path(data_or_path, kind)
