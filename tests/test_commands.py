"""`attack`, `generate` and `train` as a careless user runs them: no input is overwritten, no run leaves stale
rows, settings that sample nonsense are refused, and training never writes into the installed package."""

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bitmark.cli import main
from bitmark.io.images import load_image, save_png


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def images(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("x.png", "y.png"):
        save_png(src / name, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / "x.jpg", quality=95)
    return src


# attack


@pytest.mark.parametrize("spelling", ["same", "dot", "link"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_attack_never_overwrites_an_input(images, tmp_path, capsys, spelling, overwrite, monkeypatch):
    before = _digest(images)
    monkeypatch.chdir(tmp_path)
    out = {"same": str(images), "dot": "./in/../in", "link": str(tmp_path / "alias")}[spelling]
    if spelling == "link":
        os.symlink(images, tmp_path / "alias")
    assert main(["attack", "hflip:1", str(images), "--out", out, *overwrite]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert _digest(images) == before  # x.jpg would have been written as x.png over the original x.png


def test_attack_overwrite_replaces_only_what_a_previous_run_wrote(images, capsys):
    """x.jpg alone into its own folder: x.png is not an input, but no attack run wrote it either."""
    before = _digest(images)
    assert main(["attack", "hflip:1", str(images / "x.jpg"), "--out", str(images), "--overwrite"]) == 2
    assert "no previous attack run wrote" in capsys.readouterr().err
    assert _digest(images) == before


def test_attack_reruns_replace_the_log_and_report(images, tmp_path, capsys):
    out = tmp_path / "out"
    (images / "bad.png").write_text("not an image")
    assert main(["attack", "hflip:1", str(images), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "bitmark attack:" in captured.err and "bad.png" in captured.err and "not an image" in captured.err
    assert "attacked 2 of 4 images with hflip:1" in captured.out  # x.png and x.jpg share a name: one is refused
    assert len((out / "attacks.jsonl").read_text().splitlines()) == 4
    assert main(["attack", "hflip:1", str(images / "y.png"), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["attack", "hflip:1", str(images / "y.png"), "--out", str(out), "--overwrite", "--seed", "7"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"attacked 1 of 1 images with hflip:1 into {out} (rows in {out / 'attacks.jsonl'})"
    rows = _rows((out / "attacks.jsonl").read_text())
    assert [(Path(r["input"]).name, r["seed"]) for r in rows] == [("y.png", 7)]
    assert sorted(p.name for p in out.iterdir()) == ["attacks.jsonl", "y.png"]  # the previous run's x.png is gone
    assert np.array_equal(load_image(out / "y.png"), load_image(images / "y.png")[:, ::-1])


def test_attack_without_images_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["attack", "hflip:1", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no inputs found" in capsys.readouterr().err and not (tmp_path / "o").exists()


# generate

BAD = [
    (["--num", "0"], "number of images"), (["--num", "-3"], "number of images"),
    (["--temperature", "0"], "temperature"), (["--temperature", "-1"], "temperature"),
    (["--cfg", "nan"], "guidance"), (["--cfg", "inf"], "guidance"),
    (["--top-p", "0"], "top_p"), (["--top-p", "1.5"], "top_p"), (["--top-p", "nan"], "top_p"),
]


@pytest.mark.parametrize("flags, word", BAD)
def test_generate_refuses_settings_that_sample_nonsense(tmp_path, capsys, flags, word):
    assert main(["generate", "--no-watermark", "--out", str(tmp_path / "g"), *flags]) == 2
    assert word in capsys.readouterr().err and not (tmp_path / "g").exists()


@pytest.mark.parametrize("num, options", [
    (0, {}), (-3, {}), (1.5, {}), (2, {"temperature": 0.0}), (2, {"cfg_scale": math.nan}), (2, {"cfg_scale": math.inf}),
    (2, {"top_p": 1.01}),
])
def test_the_python_api_refuses_them_too(tmp_path, num, options):
    from bitmark.cli.generate import generate_files
    from bitmark.models.sampling import check_sampling, sample_images

    with pytest.raises(ValueError):
        check_sampling(num, **options)
    with pytest.raises(ValueError):
        generate_files(tmp_path / "g", num, key=None, **options)
    if isinstance(num, int) and num > 0:
        with pytest.raises(ValueError):
            sample_images(None, None, torch.zeros(num, dtype=torch.long), **options)
    assert not (tmp_path / "g").exists()


def test_generate_refuses_a_folder_with_samples_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["generate", "--no-watermark", "--num", "2", "--out", str(out)]) == 0
    before = _digest(out)
    assert main(["generate", "--no-watermark", "--num", "2", "--seed", "1", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and _digest(out) == before
    (out / "notes.txt").write_text("mine")
    assert main(["generate", "--no-watermark", "--num", "1", "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    side = _rows((out / "samples.jsonl").read_text())
    assert [r["file"] for r in side] == ["clean-s1-00000.png"] and side[0]["seed"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["clean-s1-00000.png", "notes.txt", "samples.jsonl"]


# train


@pytest.fixture
def tiny_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "tiny" / c).mkdir(parents=True)
        for i in range(8):
            save_png(tmp_path / "tiny" / c / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return tmp_path / "tiny"


def test_training_never_writes_into_the_package_unless_installed(tiny_folder, tmp_path, monkeypatch, capsys):
    from bitmark import models

    shipped = tmp_path / "package-weights"  # stands in for bitmark/models/weights
    shipped.mkdir()
    (shipped / "tiny-autoencoder.json").write_text("{}")
    monkeypatch.setattr(models, "WEIGHTS_DIR", shipped)
    monkeypatch.chdir(tmp_path)
    before = _digest(shipped)
    argv = ["train", "autoencoder", "--data", str(tiny_folder), "--steps", "2", "--batch-size", "4"]
    assert main(argv) == 0
    assert _digest(shipped) == before
    out = tmp_path / "runs" / "tiny-autoencoder" / "tiny-autoencoder"
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 2 and out.with_suffix(".safetensors").exists()
    assert "--data runs/tiny-autoencoder/tiny-autoencoder" in capsys.readouterr().out
    models.load_autoencoder(out)  # usable from where it was written
    package_out = Path(models.__file__).parent / "weights" / "photos-autoencoder"
    assert main([*argv, "--out", str(package_out)]) == 2
    assert "--install" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "x"), "--install"]) == 2
    assert main([*argv, "--install", "--run-dir", str(tmp_path / "r2")]) == 0
    assert _digest(shipped) != before and json.loads((shipped / "tiny-autoencoder.json").read_text())["steps"] == 2


def test_a_trained_generator_folder_loads_on_its_own(tmp_path):
    """The generator's card names its tokenizer by file name: training copies the tokenizer beside it."""
    import shutil

    from bitmark.models import WEIGHTS_DIR, load_generator
    from bitmark.training.recipes import _place_beside

    out = tmp_path / "runs" / "photos-generator" / "photos-generator"
    out.parent.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):  # as save_weights leaves it
        shutil.copyfile(WEIGHTS_DIR / f"photos-generator{suffix}", f"{out}{suffix}")
    with pytest.raises(FileNotFoundError):
        load_generator(out)
    _place_beside(WEIGHTS_DIR / "photos-tokenizer", out)
    _, tok = load_generator(out)
    assert tok.cfg.image_size == 32
    before = _digest(WEIGHTS_DIR)
    _place_beside(WEIGHTS_DIR / "photos-tokenizer", WEIGHTS_DIR / "photos-generator")  # already beside: no copy
    assert _digest(WEIGHTS_DIR) == before
