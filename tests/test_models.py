"""The tokenizer and generator as code (untrained weights): shapes, exact re-quantisation, determinism,
and that the watermark enters only through the sampler."""

import json

import numpy as np
import pytest
import torch

from bitmark import PlainSampler, WatermarkSampler
from bitmark.evaluation.keys import fixed_key
from bitmark.models.generator import Generator, GeneratorConfig
from bitmark.models.store import save_weights
from bitmark.models.tokenizer import Tokenizer, TokenizerConfig
from bitmark.training.recipes import self_correcting_bits

CFG = TokenizerConfig()


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return Tokenizer(CFG).eval()


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return Generator(GeneratorConfig(CFG, num_classes=3, dim=64, depth=2, heads=4)).eval()


def test_any_pyramid_requantises_to_itself():
    """Dyadic scales, nearest up / area down and halving gains: a coarse code outweighs all finer ones,
    so the greedy quantiser recovers every pyramid from its own latent. The shipped ratio 0.75 trades
    that exactness for margin against pixel noise and still recovers nearly every bit."""
    from bitmark.models.tokenizer import Quantizer

    g = torch.Generator().manual_seed(0)
    pyramid = [torch.rand(64, s, s, CFG.d, generator=g) < 0.5 for s in CFG.schedule]
    exact = Quantizer(TokenizerConfig(gain_ratio=0.5))
    assert all(torch.equal(a, b) for a, b in zip(pyramid, exact.quantize(exact.latent(pyramid))[1]))
    shipped = Quantizer(CFG)
    again = shipped.quantize(shipped.latent(pyramid))[1]
    assert sum(int((a == b).sum()) for a, b in zip(pyramid, again)) / sum(a.numel() for a in pyramid) > 0.99


def test_encode_decode_shapes_and_any_input_size(tok):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)]
    bits = tok.encode(images)
    assert [tuple(b.shape) for b in bits] == [(2, s, s, CFG.d) for s in CFG.schedule] and bits[0].dtype == torch.bool
    out = tok.decode(bits)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert CFG.bits_per_image == 32 * (1 + 4 + 16 + 64) >= 2000


def test_self_correction_targets_are_requantised(tok):
    z = torch.randn(4, CFG.d, 8, 8)
    clean_in, clean_out = self_correcting_bits(tok.quantizer, z, torch.zeros(4), torch.Generator().manual_seed(0))
    greedy = tok.quantizer.quantize(z)[1]
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(clean_in, clean_out, greedy))
    noisy_in, noisy_out = self_correcting_bits(tok.quantizer, z, torch.full((4,), 0.3), torch.Generator().manual_seed(0))
    assert not torch.equal(noisy_in[0], noisy_out[0])  # inputs are corrupted ...
    residual = z - tok.quantizer.latent(noisy_in[:2])  # ... and scale 2's target is what greedy picks after them
    assert torch.equal(noisy_out[2], (tok.quantizer.down(residual, 4) >= 0).permute(0, 2, 3, 1))


def test_seed_gives_same_samples_and_unmarked_scales_equal_plain(gen):
    classes = torch.tensor([0, 1, 2, 0])

    def draw(sampler, seed=5):
        return gen.sample(classes, sampler=sampler, generator=torch.Generator().manual_seed(seed))

    a, b = draw(PlainSampler()), draw(PlainSampler())
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, draw(PlainSampler(), seed=6)))
    partial = draw(WatermarkSampler(fixed_key(1, scales=(3,))))  # same uniforms: unmarked scales are plain
    assert all(torch.equal(x, y) for x, y in zip(a[:3], partial[:3])) and not torch.equal(a[3], partial[3])
    marked = draw(WatermarkSampler(fixed_key(1)))
    assert not all(torch.equal(x, y) for x, y in zip(a, marked))


def test_generate_files_writes_pngs_and_sidecar(tmp_path, tok, gen, monkeypatch):
    from bitmark.cli.generate import generate_files
    from bitmark.models import shipped

    save_weights(tmp_path / "toy-tokenizer", tok, {"config": {**vars(CFG), "schedule": list(CFG.schedule), "channels": list(CFG.channels)}})
    save_weights(tmp_path / "toy-generator", gen, {"config": {"num_classes": 3, "dim": 64, "depth": 2, "heads": 4},
                                                   "tokenizer": "toy-tokenizer", "classes": ["a", "b", "c"]})
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    key = fixed_key(2)
    rows = generate_files(tmp_path / "out", 5, key=key, data="toy", class_name="b", seed=3)
    side = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert side == rows and len(rows) == 5 and all(r["class"] == "b" and r["key_id"] == key.key_id for r in rows)
    assert all((tmp_path / "out" / r["file"]).exists() for r in rows)
    with pytest.raises(ValueError, match="unknown class"):
        generate_files(tmp_path / "out2", 1, key=None, data="toy", class_name="zebra")
