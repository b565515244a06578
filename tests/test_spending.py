"""Spending the bias where it is cheap (issue 13): the weighted z, learned scale weights, the model null
and the sampler's entropy gate. Statistical claims use fixed seeds; each tolerance says why it holds."""

import math

import numpy as np
import pytest
import torch

from bitmark import PlainSampler, WatermarkSampler
from bitmark.core.keys import WatermarkKey
from bitmark.core.sampler import binary_entropy, entropy_gate
from bitmark.detectors import BitDetector, stats
from bitmark.detectors.predicted import GeneratorPredictor
from bitmark.evaluation.keys import fixed_key
from bitmark.models.generator import Generator, GeneratorConfig
from bitmark.models.tokenizer import TokenizerConfig

SIZES = (31, 124, 496, 1984)  # scored bits per scale of the shipped schedule 1, 2, 4, 8 at d = 32, n = 2
Z_1PCT = 2.3263478740408408


def _binomial_band(n: int, p: float, sds: float = 4.0) -> tuple[float, float]:
    """A +-4 sd band of a binomial share: a false alarm once in ~16,000 runs if the claim is true."""
    sd = math.sqrt(p * (1 - p) / n)
    return p - sds * sd, p + sds * sd


def test_weighted_z_is_exact_under_a_simulated_null():
    """Fixed residuals b - q (what the bits give), random signs (what a random key gives): for any fixed
    weights z has mean 0 and sd 1 exactly, and with hundreds of bits per scale its tail is normal."""
    rng = np.random.default_rng(0)
    trials = 10000
    resid = [rng.uniform(-1, 1, n) * (rng.random(n) < 0.7) for n in SIZES]  # some bits certain: residual 0
    X = np.stack([(rng.choice([-1.0, 1.0], (trials, len(r))) * r).sum(1) for r in resid], 1)
    V = np.tile([np.sum(r**2) for r in resid], (trials, 1))
    for w in ([1, 1, 1, 1], [0.0, 1.0, 0.45, 0.35], [0.6, 1.0, 0.45, 0.35]):
        z, log_p = stats.weighted_z(X, V, np.array(w, dtype=float))
        # sd of the mean is 1/sqrt(10000) = 0.01 and of the sd about 0.007: 4 sd bands
        assert abs(z.mean()) < 0.04 and abs(z.std() - 1) < 0.03
        lo, hi = _binomial_band(trials, 0.01)  # 0.0060 .. 0.0140
        assert lo <= np.mean(log_p <= math.log(0.01)) <= hi
        assert np.allclose(log_p, stats.normal_log_sf(z))


def test_weighted_z_with_equal_weights_is_the_plain_z_and_zero_spread_is_no_evidence():
    X, V = np.array([[3.0, 4.0], [0.0, 0.0]]), np.array([[4.0, 5.0], [0.0, 0.0]])
    z, log_p = stats.weighted_z(X, V, np.ones(2))
    assert z[0] == pytest.approx(7 / 3) and z[1] == 0 and log_p[1] == 0


def test_scale_weights_recover_mean_shift_over_variance():
    """w_s ∝ mean excess / mean variance, normalised to max 1; a scale with no mean excess gets 0."""
    rng = np.random.default_rng(1)
    n = np.array(SIZES, dtype=float)
    shift, var = np.array([0.0, 0.3, 0.15, 0.05]), np.array([0.1, 0.2, 0.2, 0.25])  # per bit
    X = n * shift + rng.normal(0, 1, (4000, 4)) * np.sqrt(n * var)
    w = stats.scale_weights(X, np.tile(n * var, (4000, 1)))
    expected = (shift / var) / (shift / var).max()
    # the estimate of mean X_s has sd sqrt(n var / 4000) <= 0.35 on a mean of >= 37: within 0.03 of the truth
    assert w[0] == pytest.approx(0, abs=0.03) and np.allclose(w[1:], expected[1:], atol=0.03)
    with pytest.raises(ValueError, match="no scale"):
        stats.scale_weights(-np.abs(X), np.tile(n * var, (4000, 1)))
    with pytest.raises(ValueError, match="one shape"):
        stats.scale_weights(X[:, :2], X)


def _pyramid(seed: int, B: int = 1, d: int = 32, sides=(1, 2, 4, 8), p: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(B, s, s, d, generator=g) < p for s in sides]


def _secret(i: int) -> bytes:
    return int(i).to_bytes(32, "big")


def test_model_null_is_exact_for_random_keys_at_a_fixed_image():
    """The model null's z for one fixed image over many random keys: mean 0, sd 1 (the identity holds for
    any key-independent q), with and without scale weights; the nominal 1% test keeps its level."""
    bits = _pyramid(3, p=0.3)
    g = torch.Generator().manual_seed(4)
    probs = [torch.rand(b.shape, generator=g, dtype=torch.float64) for b in bits]  # any key-independent q

    def predictor(pyramid):
        return probs

    weights = np.array([0.6, 1, 0.45, 0.35])
    keys = 1000
    terms = []
    for i in range(keys):
        det = BitDetector(WatermarkKey(_secret(i), fixed_key(0).config), null="model", predictor=predictor)
        terms.append(det.scale_terms(bits)[:, 0].numpy())
        if i < 3:  # detect combines the same terms with the same function
            weighted = BitDetector(det.key, null="model", predictor=predictor, weights=weights).detect(bits).z_score
            assert weighted[0] == pytest.approx(stats.weighted_z(terms[-1][1] - terms[-1][2], terms[-1][3], weights)[0])
    t = np.stack(terms)  # (keys, 4, scales)
    for w in (np.ones(4), weights):
        z = stats.weighted_z(t[:, 1] - t[:, 2], t[:, 3], w)[0]
        # 1,000 keys: sd of the mean 0.032 and of the sd about 0.022; 4 sd bands
        assert abs(z.mean()) < 0.13 and abs(z.std() - 1) < 0.09
        lo, hi = _binomial_band(keys, 0.01)  # 0 .. 0.023
        assert np.mean(z >= Z_1PCT) <= hi


def test_model_null_with_a_half_prediction_is_the_binomial_test_and_matches_a_hand_count():
    """q = 1/2 everywhere: E = T/2 and V = T/4, so the model null is the binomial z; and its per-scale terms
    equal a direct sum of (green - expected) over positions."""
    key = fixed_key(7)
    bits = _pyramid(5, B=3)
    half = BitDetector(key, null="model", predictor=lambda p: [torch.full(b.shape, 0.5, dtype=torch.float64) for b in p])
    binomial = BitDetector(key, null="binomial")
    assert np.allclose(half.detect(bits).z_score, binomial.detect(bits).z_score)
    q = [torch.rand(b.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64) for b in bits]
    det = BitDetector(key, null="model", predictor=lambda p: q)
    terms = det.scale_terms(bits)
    status = det.green_status(bits)
    for s, b in enumerate(bits):
        green = status[s][..., 1:] > 0
        value = torch.where(green, b[..., 1:], ~b[..., 1:]).double()  # the green value of each scored bit
        qq = q[s][..., 1:]
        expected = (value * qq + (1 - value) * (1 - qq)).sum((1, 2, 3))
        assert torch.allclose(terms[1, :, s], green.double().sum((1, 2, 3)))
        assert torch.allclose(terms[2, :, s], expected)
        assert torch.allclose(terms[3, :, s], ((b[..., 1:].double() - qq) ** 2).sum((1, 2, 3)))


def test_model_null_refuses_what_it_cannot_test():
    key = fixed_key(0)
    with pytest.raises(ValueError, match="predictor"):
        BitDetector(key, null="model")
    with pytest.raises(ValueError, match="per-position rule"):
        BitDetector(fixed_key(0, rule="keyed"), null="model", predictor=lambda p: p)
    with pytest.raises(ValueError, match="model null's"):
        BitDetector(key, predictor=lambda p: p)
    bits = _pyramid(0)
    det = BitDetector(key, null="model", predictor=lambda p: [torch.zeros(1, 1, 1, 32, dtype=torch.float64)] * 4)
    with pytest.raises(ValueError, match="predictor gave"):
        det.detect(bits)


@pytest.fixture(scope="module")
def tiny_gen():
    torch.manual_seed(0)
    return Generator(GeneratorConfig(TokenizerConfig(), num_classes=3, dim=32, depth=1, heads=2)).eval()


def test_generator_predictor_is_the_unconditional_teacher_forced_prediction(tiny_gen):
    bits = _pyramid(2, B=5)
    probs = GeneratorPredictor(tiny_gen, batch=2)(bits)  # three batches: 2 + 2 + 1
    assert [tuple(p.shape) for p in probs] == [tuple(b.shape) for b in bits]
    with torch.no_grad():
        lo = tiny_gen.forward(bits[:-1], torch.full((5,), 3))
    assert torch.allclose(torch.cat([p.flatten(1, 2) for p in probs], 1), torch.sigmoid(lo.double()), atol=1e-6)
    with pytest.raises(ValueError, match="grids"):
        GeneratorPredictor(tiny_gen)(bits[:3])


def test_model_null_detects_what_the_sampler_marked(tiny_gen):
    """End to end on the tiny generator: marked samples score high under the model null, clean ones do not."""
    key = fixed_key(0, delta=2.0)
    det = BitDetector(key, null="model", predictor=GeneratorPredictor(tiny_gen))
    classes = torch.arange(16) % 3
    marked = tiny_gen.sample(classes, sampler=WatermarkSampler(key), generator=torch.Generator().manual_seed(0))
    clean = tiny_gen.sample(classes, sampler=PlainSampler(), generator=torch.Generator().manual_seed(0))
    # 2,635 scored bits of an untrained (near-uniform) model at δ = 2: z is about 0.46 sqrt(2635) = 24
    assert det.detect(marked).z_score.min() > 10 and abs(det.detect(clean).z_score.mean()) < 1.5


def test_binary_entropy_and_gate():
    lo = torch.tensor([-50.0, -2.0, 0.0, 2.0, 50.0])
    p = torch.sigmoid(lo.double())
    direct = -(p * p.log() + (1 - p) * (1 - p).log())
    assert torch.allclose(binary_entropy(lo).double(), torch.nan_to_num(direct), atol=1e-6)
    assert entropy_gate(lo, 0.2).tolist() == [0, 1, 1, 1, 0]


@pytest.mark.parametrize("rule,n", [("keyed-spatial", 2), ("keyed-spatial", 3), ("keyed", 2)])
def test_entropy_gate_biases_only_uncertain_bits(rule, n):
    """Fast and loop agree; where the gate is shut a bit is the plain sample (same uniforms), and with a gate
    that opens everywhere the bits are the ungated sampler's."""
    key = fixed_key(1, rule=rule, context=n, delta=2.0)
    g = torch.Generator().manual_seed(0)
    lo = torch.randn(70, 64, 32, generator=g) * 3  # 70 * 64 = 4,480 tokens: the sampler's chunked path
    draw = lambda s: s(lo, scale=3, grid=(8, 8), generator=torch.Generator().manual_seed(1))  # noqa: E731
    fast, loop = WatermarkSampler(key, min_entropy=0.3), WatermarkSampler(key, min_entropy=0.3, impl="loop")
    bits_fast, bits_loop, plain = draw(fast), draw(loop), draw(PlainSampler())
    assert torch.equal(bits_fast, bits_loop)
    shut = fast.last_gate == 0
    assert bool(shut[..., n - 1 :].any()) and bool((~shut[..., n - 1 :]).any())
    assert torch.equal(bits_fast[shut], plain[shut])
    assert (bits_fast != plain).float().mean() > 0.05  # open bits were pushed
    assert fast.gate_counts == [int((~shut[..., n - 1 :]).sum()), shut[..., n - 1 :].numel()]
    lo = lo.clamp(-8, 8)  # float32 entropies of |lo| <= 8 are >= 0.003 nats: a gate at 1e-6 opens on every bit
    assert torch.equal(draw(WatermarkSampler(key, min_entropy=1e-6)), draw(WatermarkSampler(key)))


def test_entropy_gate_refuses_thresholds_that_bias_nothing():
    key = fixed_key(0)
    for bad in (-0.1, math.log(2), 1.0, True, "0.2"):
        with pytest.raises(ValueError, match="min_entropy"):
            WatermarkSampler(key, min_entropy=bad)


def test_command_line_generates_gated_and_detects_with_the_model_null(tmp_path, capsys):
    """`generate --min-entropy` and `detect --null model --scale-weights`, on the shipped models."""
    import json

    from bitmark.cli import main

    key = tmp_path / "key.json"
    assert main(["keygen", "--out", str(key), "--json"]) == 0
    assert main(["generate", "--key", str(key), "--num", "4", "--out", str(tmp_path / "wm"), "--min-entropy", "0.3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip().startswith("{")]
    assert [r["min_entropy"] for r in rows[1:]] == [0.3] * 4
    assert main(["detect", str(tmp_path / "wm"), "--key", str(key), "--null", "model", "--scale-weights", "0.6,1,0.45,0.35", "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    pngs = [r for r in found if r.get("path", "").endswith(".png")]
    # unattacked PNGs of δ = 2 gated at 0.3 nats: z about 20 in `bench spending`; 4 of 4 flagged
    assert len(pngs) == 4 and all(r["is_watermarked"] and r["z_score"] > 5 for r in pngs)
    assert main(["generate", "--no-watermark", "--num", "1", "--out", str(tmp_path / "c"), "--min-entropy", "0.3"]) == 2
    assert main(["generate", "--key", str(key), "--num", "1", "--out", str(tmp_path / "d"), "--min-entropy", "0.7"]) == 2
    assert main(["detect", str(tmp_path / "wm"), "--key", str(key), "--null", "model", "--encoder", "infinity"]) == 2
    with pytest.raises(SystemExit) as bad:
        main(["detect", str(tmp_path / "wm"), "--key", str(key), "--scale-weights", "1,x"])
    assert bad.value.code == 2
