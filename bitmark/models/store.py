"""Weights files of the embedded models: safetensors for the tensors, a JSON card beside them for everything
else (data, schedule, training command, wall time, metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_weights(path: str | Path, model: torch.nn.Module, card: dict[str, Any]) -> Path:
    """Write `path`.safetensors and `path`.json (the card: data, schedule, training command, metrics...)."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path.with_suffix(".safetensors")))
    card = {"parameters": sum(p.numel() for p in model.parameters()), **card}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path.with_suffix(".safetensors")


def load_card(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).with_suffix(".json").read_text())


def load_weights(path: str | Path, model: torch.nn.Module) -> torch.nn.Module:
    """Load safetensors weights into `model` (strict) and put it in eval mode."""
    model.load_state_dict(load_file(str(Path(path).with_suffix(".safetensors"))))
    return model.eval()
