"""Python API inputs that used to give silent wrong results: each is refused with the fix in the message."""

import numpy as np
import pytest
import torch

from bitmark import PlainSampler, WatermarkConfig, WatermarkKey, WatermarkSampler, load_pyramid, save_pyramid
from bitmark.detectors import BitDetector

SIDES = (1, 2, 3, 4, 6, 8)  # 6 scales, d = 16
KEY = WatermarkKey(bytes(range(32)), WatermarkConfig())


def sampled(sampler, batch=4, seed=0):
    """The sampler's own outputs, (B, h*w, d) per scale, from random logits."""
    g = torch.Generator().manual_seed(seed)
    return [sampler(torch.randn(batch, s * s, 16, generator=g), scale=i, grid=(s, s), generator=g) for i, s in enumerate(SIDES)]


def test_sampler_output_is_refused_and_the_recorded_pyramid_detects():
    sampler = WatermarkSampler(KEY, record=True)
    raw = sampled(sampler)
    with pytest.raises(ValueError, match=r"\(B, h\*w, d\).*view\(B, h, w, d\).*sampler.pyramid"):
        BitDetector(KEY).detect(raw)
    result = BitDetector(KEY).detect(sampler.pyramid)
    reshaped = [b.view(4, s, s, 16) for b, s in zip(raw, SIDES)]
    assert np.array_equal(result.z_score, BitDetector(KEY).detect(reshaped).z_score)
    assert result.is_watermarked.all() and len(result) == 4


def test_a_bare_tensor_and_a_path_are_refused():
    bits = torch.zeros(4, 8, 8, 16, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"single Tensor of shape \(4, 8, 8, 16\).*\[bits\]"):
        BitDetector(KEY).detect(bits)
    with pytest.raises(ValueError, match="single ndarray"):
        BitDetector(KEY).detect(bits.numpy())
    with pytest.raises(ValueError, match="load_pyramid"):
        BitDetector(KEY).detect("bits.npz")
    assert len(BitDetector(KEY).detect([bits])) == 4  # a one-scale pyramid is fine


def test_scales_must_go_coarse_to_fine():
    sampler = WatermarkSampler(KEY, record=True)
    sampled(sampler)
    with pytest.raises(ValueError, match=r"scale 1 \(6x6\) is coarser than scale 0 \(8x8\).*pyramid\[::-1\]"):
        BitDetector(KEY).detect(sampler.pyramid[::-1])


def test_scale_indices_the_pyramid_does_not_have_are_refused():
    sampler = WatermarkSampler(KEY, record=True)
    sampled(sampler)
    with pytest.raises(ValueError, match=r"scales=\(9,\) asks for scales this pyramid does not have: it has 6 \(0..5\)"):
        BitDetector(KEY, scales=(9,)).detect(sampler.pyramid)
    far = WatermarkKey.generate(scales=(2, 9))
    with pytest.raises(ValueError, match=r"the key watermarks scales \[9\] but this pyramid has 6 scales"):
        BitDetector(far).detect(sampler.pyramid)
    assert len(BitDetector(KEY, scales=(5,)).detect(sampler.pyramid)) == 4


@pytest.mark.parametrize("weights", [[float("nan")] * 6, [1, 1, float("inf"), 1, 1, 1], [1, -1, 1, 1, 1, 1], [0] * 6, []])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match="weight"):
        BitDetector(KEY, weights=weights)


def test_weights_must_cover_the_pyramid_and_a_scored_scale():
    sampler = WatermarkSampler(KEY, record=True)
    sampled(sampler)
    with pytest.raises(ValueError, match="2 scale weights for a pyramid of 6 scales"):
        BitDetector(KEY, weights=[1, 1]).detect(sampler.pyramid)
    with pytest.raises(ValueError, match=r"0 on every scored scale \[5\]"):
        BitDetector(KEY, scales=(5,), weights=[1, 1, 1, 1, 1, 0]).detect(sampler.pyramid)
    weighted = BitDetector(KEY, weights=[0, 0, 1, 1, 1, 1]).detect(sampler.pyramid)
    assert np.isfinite(weighted.z_score).all() and weighted.is_watermarked.all()


@pytest.mark.parametrize("pyramid", [[torch.zeros(2, 0, 0, 16, dtype=torch.bool)], [torch.zeros(2, 4, 4, 1, dtype=torch.bool)]])
def test_nothing_to_score_is_an_error(pyramid):
    with pytest.raises(ValueError, match="nothing to score"):
        BitDetector(KEY).detect(pyramid)


def test_green_status_has_the_same_guards():
    with pytest.raises(ValueError, match="single Tensor"):
        BitDetector(KEY).green_status(torch.zeros(4, 8, 8, 16, dtype=torch.bool))


@pytest.mark.parametrize("sampler", [PlainSampler(), WatermarkSampler(KEY), WatermarkSampler(KEY, impl="loop")])
def test_nan_logits_are_refused(sampler):
    lo = torch.randn(2, 4, 16)
    lo[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"scale 1: 1 of 128 bit logits are NaN"):
        sampler(lo, scale=1, grid=(2, 2))
    two_way = torch.randn(2, 4, 16, 2)
    two_way[0, 0, 0] = float("inf")  # inf - inf
    with pytest.raises(ValueError, match="NaN"):
        sampler(two_way, scale=1, grid=(2, 2))
    extreme = torch.full((2, 4, 16), float("inf"))  # infinite log-odds are a sure bit, not an error
    assert sampler(extreme, scale=1, grid=(2, 2)).all()


def test_recording_keeps_every_generation_of_a_batch_loop():
    sampler = WatermarkSampler(KEY, record=True)
    outputs = [sampled(sampler, batch=3, seed=b) for b in range(4)]
    assert len(sampler.pyramids) == 4 and sampler.pyramid is sampler.pyramids[-1]
    for raw, recorded in zip(outputs, sampler.pyramids):
        assert all(torch.equal(r.view(3, s, s, 16), t) for r, s, t in zip(raw, SIDES, recorded))
    everything = [torch.cat(scale) for scale in zip(*sampler.pyramids)]
    assert len(BitDetector(KEY).detect(everything)) == 12
    assert PlainSampler().pyramids == []  # nothing is kept without record=True


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_pyramids_of_100_or_more_scales_round_trip(tmp_path, suffix):
    # scale s holds the 8 bits of s % 256 (and one more token at s >= 100), so any reordering shows
    pyramid = [torch.tensor([(s >> k) & 1 for k in range(8)], dtype=torch.bool).expand(2, 1, 1 + (s >= 100), 8)
               for s in range(120)]
    back = load_pyramid(save_pyramid(tmp_path / f"p{suffix}", pyramid))
    assert len(back) == 120 and all(torch.equal(a, b) for a, b in zip(pyramid, back))
