"""The published BitMark detector's stream count and bias positions, against a straightforward reference.

The reference below is written from the published detector's description only: take the watermarked
scales in order, each token by token (row-major over the grid) with its d bits in order, as one list of
bits; every neighbouring pair of that list is scored, green when the two bits differ; z = (G - T/2)/sqrt(T/4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bitmark import PlainSampler, WatermarkConfig, WatermarkKey, WatermarkSampler
from bitmark.core.sampler import PUBLISHED_BIAS_FROM, chain_fast, chain_loop
from bitmark.detectors import BitDetector
from bitmark.detectors.stream import PUBLISHED_Z_THRESHOLD, published_stream_z

SECRET = bytes(range(32))


def key(rule="bitmark-2025", **kw) -> WatermarkKey:
    return WatermarkKey(SECRET, WatermarkConfig(rule=rule, **kw))


def reference(pyramid, scales):
    """(T, G, z, G inside tokens only, T inside tokens only) per image, by plain Python loops."""
    out = []
    for b in range(pyramid[0].shape[0]):
        stream, token_of = [], []
        for s in scales:
            x = pyramid[s][b]
            h, w, d = x.shape
            for i in range(h):
                for j in range(w):
                    for k in range(d):
                        stream.append(int(x[i, j, k]))
                        token_of.append((s, i, j))
        T = len(stream) - 1
        G = sum(stream[t] != stream[t - 1] for t in range(1, len(stream)))
        inside = [t for t in range(1, len(stream)) if token_of[t] == token_of[t - 1]]
        g_in = sum(stream[t] != stream[t - 1] for t in inside)
        out.append((T, G, (G - T / 2) / math.sqrt(T / 4), g_in, len(inside)))
    return out


def random_pyramid(sides, d, B, seed, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(B, h, h, d, generator=g) < p for h in sides]


@pytest.mark.parametrize("sides, d, scales", [((1, 2, 3), 8, None), ((1, 2, 4, 5), 32, (1, 3)), ((2, 3), 5, (0,))])
def test_stream_count_matches_the_reference_exactly(sides, d, scales):
    k = key(scales=scales)
    pyramid = random_pyramid(sides, d, B=5, seed=len(sides), p=0.3)
    used = [s for s in range(len(sides)) if k.config.watermarks(s)]
    ref = reference(pyramid, used)
    stream = BitDetector(k, counting="stream").detect(pyramid)
    assert stream.num_scored.tolist() == [r[0] for r in ref]
    assert stream.num_green.tolist() == [r[1] for r in ref]
    assert np.array_equal(stream.z_score, np.array([r[2] for r in ref]))
    assert np.array_equal(published_stream_z(pyramid, used), stream.z_score)
    assert stream.scale_scored.sum(1).tolist() == [sum(t.shape[1] * t.shape[2] * d for t in (pyramid[s] for s in used)) - 1] * 5
    # our default count is exactly the stream's pairs inside a token
    token = BitDetector(k).detect(pyramid)
    assert token.num_green.tolist() == [r[3] for r in ref] and token.num_scored.tolist() == [r[4] for r in ref]


def test_stream_counting_is_only_for_the_published_rule():
    for k in (key("keyed-spatial"), key("keyed"), key(context=3)):
        with pytest.raises(ValueError, match="stream counting"):
            BitDetector(k, counting="stream")
    with pytest.raises(ValueError, match="unknown counting"):
        BitDetector(key(), counting="pairs")


def test_published_positions_leave_bits_0_and_1_as_plain_sampling():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 36, 32, 2, generator=g)
    k = key(delta=3.0)
    plain = PlainSampler()(logits, 0, (6, 6), generator=torch.Generator().manual_seed(1))
    ours = WatermarkSampler(k)(logits, 0, (6, 6), generator=torch.Generator().manual_seed(1))
    published = WatermarkSampler(k, bias_from=PUBLISHED_BIAS_FROM)(logits, 0, (6, 6), generator=torch.Generator().manual_seed(1))
    assert torch.equal(published[..., :2], plain[..., :2]) and not torch.equal(published[..., 2:], plain[..., 2:])
    assert not torch.equal(ours[..., 1], plain[..., 1])
    with pytest.raises(ValueError, match="bias_from"):
        WatermarkSampler(k, bias_from=0)


@pytest.mark.parametrize("n", [2, 3])
def test_both_chains_agree_with_a_later_first_biased_bit(n):
    g = torch.Generator().manual_seed(n)
    lo, u = torch.randn(3, 10, 12, generator=g), torch.rand(3, 10, 12, generator=g)
    table = torch.rand(10, 12, 1 << (n - 1), generator=g) < 0.5
    for start in (n - 1, 2, 5):
        assert torch.equal(chain_loop(lo, u, table, n, 2.0, start=start), chain_fast(lo, u, table, n, 2.0, start=start))


def _marked(sampler, B, seed, sides=(1, 2, 4, 6, 8), d=32):
    g = torch.Generator().manual_seed(seed)
    pyramid = []
    for s, h in enumerate(sides):
        logits = torch.randn(B, h * h, d, 2, generator=g) * 0.5
        pyramid.append(sampler(logits, s, (h, h), generator=g).view(B, h, h, d))
    return pyramid


def test_published_marks_are_found_by_the_published_statistic_and_clean_bits_are_not():
    """121 tokens x 32 bits (an Infinity-like 5-scale pyramid): marked at δ = 2 with the published positions,
    every image passes z > 4 by far; 2,000 clean pyramids give none above 4 (expected 0.06 at P(z > 4))."""
    k = key()
    det = BitDetector(k, counting="stream")
    marked = det.detect(_marked(WatermarkSampler(k, bias_from=PUBLISHED_BIAS_FROM), 64, seed=1)).z_score
    clean = det.detect(_marked(PlainSampler(), 2000, seed=2)).z_score
    assert (marked > PUBLISHED_Z_THRESHOLD).all() and marked.min() > 10
    assert (clean > PUBLISHED_Z_THRESHOLD).sum() == 0 and abs(clean.mean()) < 0.1 and abs(clean.std() - 1) < 0.06
    # on the same marked bits our within-token z is higher by sqrt(32/31) in expectation when bits 2.. carry the mark
    ours = BitDetector(k).detect(_marked(WatermarkSampler(k, bias_from=PUBLISHED_BIAS_FROM), 64, seed=1)).z_score
    assert abs(np.mean(marked) / np.mean(ours) - math.sqrt(31 / 32)) < 0.01
