"""Image size as an option (issue 13's "larger embedded default"): 32x32 stays the default everywhere; at 64
the schedule, the data sets, the training command and the loaders follow the size the cards record."""

import json

import numpy as np
import pytest
import torch

from bitmark.cli import main
from bitmark.io.images import save_png
from bitmark.models.tokenizer import TokenizerConfig, config_for_size, schedule_for


def test_schedule_follows_the_image_size():
    assert config_for_size(32) == TokenizerConfig()  # the default is untouched
    assert schedule_for(64) == (1, 2, 4, 8, 16) and config_for_size(64).bits_per_image == 10_912
    assert schedule_for(128)[-1] == 32
    for bad in (48, 30):
        with pytest.raises(ValueError):
            schedule_for(bad)


def test_photos_at_64_are_the_32_set_at_twice_the_resolution():
    pytest.importorskip("skimage")
    from bitmark.io.datasets import photos

    for split in ("train", "heldout"):
        small, big = photos(split, 32), photos(split, 64)
        assert big.images.shape[1:] == (64, 64, 3)
        assert len(big) == len(small) and np.array_equal(big.labels, small.labels)
        # Same crop of the same scene: the 64 crop averaged down 2x2 differs from the 32 crop only by the
        # two Lanczos resamplings (a few grey levels); a crop from elsewhere differs by tens of levels.
        down = big.images.reshape(len(big), 32, 2, 32, 2, 3).mean((2, 4))
        same = np.abs(down - small.images).mean()
        shifted = np.abs(down - np.roll(small.images, 7, axis=0)).mean()
        assert same < 6 and shifted > 4 * same, (same, shifted)


@pytest.fixture
def tiny64(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "tiny" / c).mkdir(parents=True)
        for i in range(8):
            save_png(tmp_path / "tiny" / c / f"{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return tmp_path / "tiny"


def test_training_at_64_and_loading_a_set_from_one_folder(tiny64, tmp_path, monkeypatch, capsys):
    """Tokenizer, classifier, autoencoder through `bitmark train --image-size 64` (2 steps each), a
    generator fitted on that tokenizer's codes; the loaders read every size from the cards in the folder."""
    from bitmark.models import load_autoencoder, load_classifier, load_generator, load_tokenizer, real_data
    from bitmark.models.store import save_weights
    from bitmark.training.loop import TrainConfig
    from bitmark.training.recipes import fit_generator

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "runs" / "tiny64"
    for kind in ("tokenizer", "classifier", "autoencoder"):
        argv = ["train", kind, "--data", str(tiny64), "--image-size", "64", "--steps", "2", "--batch-size", "4",
                "--out", str(folder / f"tiny64-{kind}"), "--run-dir", str(tmp_path / f"ckpt-{kind}")]
        assert main(argv) == 0, kind
    card = json.loads((folder / "tiny64-tokenizer.json").read_text())
    assert card["config"]["schedule"] == [1, 2, 4, 8, 16] and card["bits_per_image"] == 10_912
    capsys.readouterr()
    # a generator at 64 needs the tokenizer of that size; one of another size is refused
    assert main(["train", "generator", "--data", str(tiny64), "--image-size", "64", "--steps", "1"]) == 2
    assert "--tokenizer" in capsys.readouterr().err
    assert main(["train", "generator", "--data", str(tiny64), "--image-size", "32", "--steps", "1",
                 "--tokenizer", str(folder / "tiny64-tokenizer")]) == 2
    assert "64x64" in capsys.readouterr().err
    assert main(["train", "tokenizer", "--data", str(tiny64), "--image-size", "48", "--steps", "1"]) == 2
    assert "power of two" in capsys.readouterr().err

    tok = load_tokenizer(folder)
    train = real_data(folder, "train", kind="tokenizer")
    gen, _ = fit_generator(tok, train.images, train.labels, 2, TrainConfig(steps=1, batch_size=4), tmp_path / "g")
    save_weights(folder / "tiny64-generator", gen, {
        "kind": "generator", "data": str(tiny64), "classes": ["a", "b"], "tokenizer": "tiny64-tokenizer",
        "config": {"dim": gen.cfg.dim, "depth": gen.cfg.depth, "heads": gen.cfg.heads, "num_classes": 2},
        "image_size": 64})

    gen, tok = load_generator(folder)
    assert tok.cfg.image_size == 64 and len(gen.cfg.tokenizer.schedule) == 5
    assert load_classifier(folder).cfg.image_size == 64 and load_autoencoder(folder).cfg.image_size == 64
    assert real_data(folder, "heldout").images.shape[1:] == (64, 64, 3)
    pyramid = gen.sample(torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    images = tok.decode(pyramid)
    assert images.shape == (2, 64, 64, 3)
    assert [b.shape[1] for b in tok.encode(images)] == [1, 2, 4, 8, 16]
