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

from bitmark.classifier import Classifier, ClassifierConfig, classifier_loss, to_tensor
from bitmark.data import load_dataset
from bitmark.training import TrainConfig, save_weights, train

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"


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


RECIPES = {"classifier": train_classifier}
