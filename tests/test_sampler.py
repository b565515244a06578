import pytest
import torch

from bitmark import GreenRule, PlainSampler, WatermarkKey, WatermarkSampler
from bitmark.benchmarks.null_calibration import sample_pyramid
from bitmark.core.rules import contexts
from bitmark.core.sampler import chain_fast, chain_loop


@pytest.mark.parametrize("n", [2, 3, 4, 8])
@pytest.mark.parametrize("rule", ["keyed-spatial", "keyed", "bitmark-2025"])
@pytest.mark.parametrize("top_k, top_p", [(0, 1.0), (0, 0.8), (1, 1.0), (2, 0.95)])
def test_fast_chain_equals_loop(n, rule, top_k, top_p):
    g = torch.Generator().manual_seed(n * 7 + top_k)
    lo = torch.randn(4, 25, 24, generator=g) * 3
    u = torch.rand(lo.shape, generator=g)
    table = GreenRule(WatermarkKey.generate(rule=rule, context=n)).table(1, 5, 5, 24)
    for delta in (0.5, 2.0, 8.0):
        assert torch.equal(chain_loop(lo, u, table, n, delta, top_k, top_p), chain_fast(lo, u, table, n, delta, top_k, top_p))


def test_samplers_agree_through_the_public_interface():
    key = WatermarkKey.generate(context=3)
    a = sample_pyramid(WatermarkSampler(key, impl="loop"), 8, seed=3)
    b = sample_pyramid(WatermarkSampler(key, impl="fast"), 8, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_delta_zero_and_unmarked_scales_equal_plain():
    """The watermark draws the plain sampler's uniforms: its chain at delta = 0 gives the plain bits (keys
    refuse delta = 0, so the chains are called directly), and scales the key leaves unmarked are plain."""
    g = torch.Generator().manual_seed(5)
    lo, table = torch.randn(4, 16, 16, generator=g) * 3, GreenRule(WatermarkKey.generate()).table(0, 4, 4, 16)
    u = torch.rand(lo.shape, generator=g)
    for chain in (chain_fast, chain_loop):
        assert torch.equal(chain(lo, u, table, 2, 0.0), u < torch.sigmoid(lo))
        assert torch.equal(chain(lo, u, table, 2, 0.0, top_p=0.8), PlainSampler(top_p=0.8)._sample(lo, u, 0, 4, 4))
    plain = sample_pyramid(PlainSampler(), 6, seed=5)
    partial = sample_pyramid(WatermarkSampler(WatermarkKey.generate(scales=(5,))), 6, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(plain[:5], partial[:5]))
    assert not torch.equal(plain[5], partial[5])


def test_both_logit_layouts_give_the_same_bits():
    key = WatermarkKey.generate()
    two_way = torch.randn(3, 16, 16, 2)
    log_odds = two_way[..., 1] - two_way[..., 0]
    a = WatermarkSampler(key)(two_way, 0, (4, 4), torch.Generator().manual_seed(1))
    b = WatermarkSampler(key)(log_odds, 0, (4, 4), torch.Generator().manual_seed(1))
    assert a.shape == (3, 16, 16) and a.dtype == torch.bool
    assert torch.equal(a, b)


def test_top_p_applies_after_the_bias():
    """Log-odds -1 (P(1) = 0.27) pushed by delta = 2 toward green: green bits have P = 0.73 >= top_p = 0.7,
    so top-p keeps only the green value. Applied before the bias, it would force every bit to 0."""
    key = WatermarkKey.generate(delta=2.0)
    lo = torch.full((64, 36, 16), -1.0)
    bits = WatermarkSampler(key, top_p=0.7)(lo, 0, (6, 6), torch.Generator().manual_seed(0))
    green = GreenRule(key).green_values(GreenRule(key).table(0, 6, 6, 16), contexts(bits, 2))
    assert torch.equal(bits[..., 1:], green)  # every scored bit is green, deterministically
    assert bits[..., 1:].float().mean() > 0.4  # ... and so about half are 1, impossible if cut before the bias


def test_top_k_one_is_greedy():
    lo = torch.randn(2, 9, 8)
    bits = PlainSampler(top_k=1)(lo, 0, (3, 3))
    assert torch.equal(bits, lo >= 0)


def test_recording_and_errors():
    sampler = WatermarkSampler(WatermarkKey.generate(), record=True)
    pyramid = sample_pyramid(sampler, 2, seed=0)
    assert [tuple(t.shape) for t in sampler.pyramid] == [tuple(t.shape) for t in pyramid]
    assert all(torch.equal(a, b) for a, b in zip(sampler.pyramid, pyramid))
    with pytest.raises(RuntimeError, match="expects scale"):
        sampler(torch.randn(2, 4, 16), 3, (2, 2))
    with pytest.raises(ValueError, match="grid"):
        sampler(torch.randn(2, 5, 16), 0, (2, 2))
    with pytest.raises(ValueError, match="logits"):
        sampler(torch.randn(2, 4, 16, 3), 0, (2, 2))
    with pytest.raises(ValueError):
        WatermarkSampler(WatermarkKey.generate(), impl="magic")
