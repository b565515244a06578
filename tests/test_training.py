import numpy as np
import pytest
import torch

from bitmark.models.classifier import Classifier, ClassifierConfig, to_tensor
from bitmark.models.store import load_card, load_weights, save_weights
from bitmark.training.loop import TrainConfig, train


class Interrupt(Exception):
    pass


def _problem(stop_at: int | None = None):
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def loss_fn(model, step, rng):
        if step == stop_at:
            raise Interrupt
        idx = torch.randint(0, 256, (32,), generator=rng)
        loss = ((model(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        return loss, {"loss": loss.item()}

    return loss_fn


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    cfg = TrainConfig(steps=30, batch_size=32, lr=1e-2, checkpoint_every=5)
    torch.manual_seed(0)
    straight = torch.nn.Linear(4, 1)
    train(straight, _problem(), cfg, tmp_path / "a")
    torch.manual_seed(0)
    resumed = torch.nn.Linear(4, 1)
    with pytest.raises(Interrupt):
        train(resumed, _problem(stop_at=17), cfg, tmp_path / "b")  # dies after the step-15 checkpoint
    torch.manual_seed(1)
    fresh_process = torch.nn.Linear(4, 1)  # new weights: everything must come from the checkpoint
    summary = train(fresh_process, _problem(), cfg, tmp_path / "b")
    assert summary["steps"] == 30
    for p, q in zip(straight.parameters(), fresh_process.parameters()):
        assert torch.equal(p, q)


def test_budget_stops_early_and_checkpoints(tmp_path):
    summary = train(torch.nn.Linear(4, 1), _problem(), TrainConfig(steps=10**6, budget_minutes=0.001), tmp_path)
    assert summary["stopped_by"] == "budget" and 0 < summary["steps"] < 10**6
    assert (tmp_path / "checkpoint.pt").exists()


def test_weights_round_trip_with_card(tmp_path):
    model = Classifier(ClassifierConfig(num_classes=3))
    path = save_weights(tmp_path / "clf", model, {"kind": "classifier", "metrics": {"accuracy": 0.5}})
    assert path.suffix == ".safetensors" and load_card(path)["parameters"] == sum(p.numel() for p in model.parameters())
    back = load_weights(path, Classifier(ClassifierConfig(num_classes=3)))
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert torch.equal(model.eval()(to_tensor(images)), back(to_tensor(images)))
