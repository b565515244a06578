"""The training loop shared by every shipped model: seeded, resumable, bounded in wall time.

A run lives in one folder: `checkpoint.pt` (model, optimiser, step) is rewritten atomically every
`checkpoint_every` steps and when the run stops, so an interrupted run resumes where it was. Batches are
drawn from a generator seeded by (seed, step), so a resumed run sees the same batches it would have seen.
Finished weights are exported with `save_weights` as safetensors plus a JSON card.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from bitmark.io.progress import progress

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    budget_minutes: float | None = None  # stop early (and checkpoint) when this much wall time has passed
    checkpoint_every: int = 200
    clip_grad: float | None = 1.0  # max gradient norm; None = no clipping
    warmup: int = 100  # linear warm-up steps before the cosine decay (short fine-tunes use fewer)


def batch_generator(seed: int, step: int) -> torch.Generator:
    """The random source of one step: the same for a fresh and a resumed run."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, int, torch.Generator], tuple[torch.Tensor, dict[str, float]]],
    cfg: TrainConfig,
    run_dir: str | Path,
    desc: str = "training",
) -> dict[str, Any]:
    """Optimise `loss_fn(model, step, rng) -> (loss, metrics)` for cfg.steps steps; returns a summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.steps, cfg.warmup))
    ckpt = run_dir / "checkpoint.pt"
    step, wall = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["config"] != asdict(cfg):
            log.warning("resuming %s with a different configuration than it started with", ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, wall = state["step"], state["wall_s"]
        log.info("resumed %s at step %d", ckpt, step)
    start, metrics, stopped_by = time.time() - wall, {}, "steps"
    model.train()
    with progress(desc=desc, total=cfg.steps, initial=step, leave=False) as bar:
        while step < cfg.steps:
            loss, metrics = loss_fn(model, step, batch_generator(cfg.seed, step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            sched.step()
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step % cfg.checkpoint_every == 0:
                _save_checkpoint(ckpt, model, opt, sched, step, time.time() - start, cfg)
            if cfg.budget_minutes is not None and time.time() - start > 60 * cfg.budget_minutes:
                stopped_by = "budget"
                break
    wall = time.time() - start
    _save_checkpoint(ckpt, model, opt, sched, step, wall, cfg)
    model.eval()
    return {"steps": step, "wall_s": round(wall, 1), "stopped_by": stopped_by, "final": metrics}


def _lr_factor(step: int, total: int, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    import math

    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.45 * (1 + math.cos(math.pi * t))


def _save_checkpoint(path: Path, model, opt, sched, step: int, wall: float, cfg: TrainConfig) -> None:
    tmp = path.with_suffix(".tmp")
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": step,
        "wall_s": wall,
        "config": asdict(cfg),
    }
    torch.save(state, tmp)
    os.replace(tmp, path)


