"""The training channel (bitmark.training.channel) and a tiny-config smoke run of `bitmark train robust`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bitmark.training import channel


def _images(n=4, side=16, seed=0):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", channel.names())
def test_every_op_keeps_shape_and_passes_a_gradient(name):
    x = _images().requires_grad_(True)
    y = channel.OPS[name](x[:1], 1.0, torch.Generator().manual_seed(0))
    assert y.shape == (1, 3, 16, 16)
    y.sum().backward()
    # every op -- the codecs straight through -- must let the encoder's error reach the decoder
    assert x.grad is not None and x.grad[:1].abs().sum() > 0


def test_codecs_are_the_real_ones_with_a_straight_through_gradient():
    x = _images(1).requires_grad_(True)
    y = channel.jpeg(x, 0.5, torch.Generator())  # quality 95 - 27.5 -> 68 (rounded)
    im = Image.fromarray((x[0].detach() * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    import io

    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=68, subsampling="4:2:0")
    ref = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255
    assert torch.allclose(y[0].permute(1, 2, 0), torch.from_numpy(ref))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # identity backward


def test_apply_range_determinism_and_ramp():
    x = _images(8)
    a = channel.apply(x, 1.0, torch.Generator().manual_seed(3))
    b = channel.apply(x, 1.0, torch.Generator().manual_seed(3))
    c = channel.apply(x, 1.0, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, (a * 255).round() / 255)  # stored as uint8 levels
    # strength 0: every op is the identity up to the uint8 rounding, except the codecs at quality 95
    weak = channel.apply(x, 0.0, torch.Generator().manual_seed(3), ops=["blur", "resize", "noise", "jitter", "identity"])
    assert (weak - x).abs().max() <= 0.5 / 255 + 1e-6
    assert channel.ramp(0, 100) == pytest.approx(0.2) and channel.ramp(30, 100) == 1.0 and channel.ramp(99, 100) == 1.0


def test_strength_makes_the_channel_harsher():
    # smooth images (photos are): random noise is already destroyed by JPEG 95, whatever the strength
    x = torch.nn.functional.interpolate(_images(16, 8), size=32, mode="bilinear", align_corners=False)
    errs = [float((channel.apply(x, s, torch.Generator().manual_seed(0)) - x).pow(2).mean()) for s in (0.1, 1.0)]
    assert errs[1] > 2 * errs[0]


def _tiny_models(tmp_path):
    """A folder data set of random images and an untrained tiny tokenizer/generator pair on it."""
    from bitmark.models.generator import Generator, GeneratorConfig
    from bitmark.models.store import save_weights
    from bitmark.models.tokenizer import Tokenizer, TokenizerConfig

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    torch.manual_seed(0)
    tcfg = TokenizerConfig(schedule=(1, 2, 4), d=8, channels=(0, 16, 16), image_size=16)
    tok = Tokenizer(tcfg)
    data = str(tmp_path / "data")
    save_weights(tmp_path / "m" / "tiny-tokenizer", tok, {"kind": "tokenizer", "data": data,
                                                        "config": {**vars(tcfg), "schedule": [1, 2, 4], "channels": [0, 16, 16]}})
    gen = Generator(GeneratorConfig(tcfg, num_classes=2, dim=16, depth=1, heads=2))
    save_weights(tmp_path / "m" / "tiny-generator", gen, {"kind": "generator", "data": data, "classes": ["a", "b"],
                                                         "tokenizer": "tiny-tokenizer",
                                                         "config": {"dim": 16, "depth": 1, "heads": 2, "num_classes": 2}})
    return tmp_path / "m" / "tiny-generator"


@pytest.mark.parametrize("drop_skip", [False, True])
def test_robust_recipe_smoke(tmp_path, drop_skip):
    from bitmark.models import load_generator
    from bitmark.training.loop import TrainConfig
    from bitmark.training.robust import RobustConfig, train_robust

    gen_path = _tiny_models(tmp_path)
    out = tmp_path / "run" / "tiny-robust"
    card = train_robust(str(gen_path), out, TrainConfig(steps=3, batch_size=4, warmup=1), tmp_path / "run",
                        rcfg=RobustConfig(pool=8, drop_skip=drop_skip, refit_steps=0 if drop_skip else 2))
    assert card["steps"] == 3 and card["config"]["skip"] is (not drop_skip)
    gen, tok = load_generator(out)  # the output folder loads on its own: generator + the tokenizer it names
    assert json.loads(out.with_suffix(".json").read_text())["tokenizer"] == "tiny-robust-tokenizer"
    assert tok.cfg.skip is (not drop_skip) and len(tok.encode(np.zeros((2, 16, 16, 3), np.uint8))) == 3
