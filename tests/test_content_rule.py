"""The keyed-content rule: tables seeded by the parent token, its null for single fixed keys, the sampler
and detector agreeing, and the attacks built against it.

FPR tolerances as in test_detector.py: 5,000 pyramids at nominal 1% give a standard error of 0.14%, so
[0.5%, 1.5%] is a +-3.5 sigma band; all seeds are fixed.
"""

import numpy as np
import pytest
import torch

from bitmark import GreenRule, WatermarkSampler, attacks
from bitmark.attacks.stealing import ContentStolenRule
from bitmark.benchmarks.null_calibration import iid_pyramid, markov_pyramid, sample_pyramid
from bitmark.core import rules
from bitmark.core.sampler import chain_fast, chain_loop
from bitmark.detectors import BitDetector
from bitmark.evaluation.keys import fixed_key
from bitmark.models.sampling import sample_images

KEY = fixed_key(300, rule="keyed-content")


def test_tables_follow_position_and_parent_seed():
    rule = GreenRule(KEY)
    parent = torch.zeros(3, 2, 2, 16, dtype=torch.bool)
    parent[1, 0, 0, 0] = True  # image 1: another seed under the top-left parent only
    parent[2, 0, 0, 15] = True  # image 2: the last of the 16 seed bits
    t = rule.token_tables(2, 4, 4, 16, [torch.zeros(3, 1, 1, 16, dtype=torch.bool), parent])
    assert t.shape == (3, 16, 16, 2)
    top_left = [0, 1, 4, 5]  # the 4x4 tokens under parent (0, 0)
    assert not torch.equal(t[0, top_left], t[1, top_left]) and not torch.equal(t[0, top_left], t[2, top_left])
    assert torch.equal(t[0, 2:4], t[1, 2:4])  # other parents: the same seed, the same tables
    assert not torch.equal(t[0, 0], t[0, 1])  # the same seed at another position: another table
    assert torch.equal(t, GreenRule(fixed_key(300, rule="keyed-content")).token_tables(2, 4, 4, 16, [None, parent]))
    assert 0.4 < t.float().mean() < 0.6
    with pytest.raises(ValueError, match="coarser"):
        rule.token_tables(2, 4, 4, 16)
    with pytest.raises(ValueError, match="token_tables"):
        rule.table(2, 4, 4, 16)


def test_seed_reads_only_the_first_seed_bits(monkeypatch):
    monkeypatch.setattr(rules, "SEED_BITS", 4)
    parent = torch.zeros(2, 1, 1, 16, dtype=torch.bool)
    parent[1, 0, 0, 7] = True  # beyond the 4 seed bits
    assert torch.equal(rules.seeds(parent, 2, 2, 16)[0], rules.seeds(parent, 2, 2, 16)[1])
    parent[1, 0, 0, 3] = True
    assert rules.seeds(parent, 2, 2, 16)[1, 0] == 8


@pytest.mark.parametrize("source", ["iid", "markov"])
@pytest.mark.parametrize("k", range(2))
def test_self_normalised_null_holds_for_single_fixed_keys(source, k):
    pyramid = iid_pyramid(5000, seed=31) if source == "iid" else markov_pyramid(5000, seed=32)
    det = BitDetector(fixed_key(400 + k, rule="keyed-content"))
    assert det.null == "self-normalised"
    result = det.detect(pyramid)
    assert 0.005 <= result.is_watermarked.mean() <= 0.015
    assert abs(result.z_score.mean()) < 0.05 and 0.95 < result.z_score.std() < 1.05


@pytest.mark.parametrize("n", [2, 3])
def test_sampler_and_detector_agree(n):
    key = fixed_key(301, rule="keyed-content", context=n)
    sides = (1, 2, 4, 8)
    det = BitDetector(key).detect(sample_pyramid(WatermarkSampler(key), 40, seed=n, sides=sides))
    assert det.is_watermarked.all() and det.z_score.mean() > 10
    wrong = BitDetector(fixed_key(302, rule="keyed-content", context=n)).detect(sample_pyramid(WatermarkSampler(key), 40, seed=n, sides=sides))
    assert abs(wrong.z_score.mean()) < 0.6  # 40 images: the mean of a null z has standard error 0.16
    # the chain's two implementations give the same bits with per-image tables
    g = torch.Generator().manual_seed(n)
    lo, u = torch.randn(5, 16, 16, generator=g), torch.rand(5, 16, 16, generator=g)
    parent = torch.rand(5, 2, 2, 16, generator=g) < 0.5
    table = GreenRule(key).token_tables(2, 4, 4, 16, [parent[:, :1, :1], parent])
    assert torch.equal(chain_fast(lo, u, table, n, 2.0), chain_loop(lo, u, table, n, 2.0))


def test_sampler_refuses_scales_out_of_order():
    sampler = WatermarkSampler(KEY)
    with pytest.raises(RuntimeError, match="in order"):
        sampler(torch.randn(1, 4, 16), scale=1, grid=(2, 2))


def test_new_attacks_are_registered():
    for name in ("adaptive_forge", "adaptive_remove", "average_forge", "average_remove"):
        assert name in attacks.names() and "observed" in attacks.REGISTRY[name].options
    with pytest.raises(attacks.AttackError, match="at least 10 watermarked"):
        attacks.get("average_forge", 10, observed=np.zeros((3, 32, 32, 3), np.uint8))


@pytest.mark.parametrize("rule, d", [("keyed-content", 16), ("keyed-content-robust", 32)])
def test_adaptive_estimate_reads_cells_that_repeat(rule, d):
    """Where the coarse content repeats (here: fixed coarse logits), the seeds repeat and the adaptive
    estimate (told the rule) calls the fine scale's cells right on fresh images. keyed-content-robust reads
    its seed from bits chosen for 32-bit tokens, hence d = 32 there."""
    key = fixed_key(303, rule=rule)
    sides = (1, 2, 4)

    def draw(num, seed):
        g = torch.Generator().manual_seed(seed)
        fixed = torch.Generator().manual_seed(0)
        sampler, out = WatermarkSampler(key), []
        for s, side in enumerate(sides):
            logits = (8 * torch.randn(1, side * side, d, generator=fixed)).expand(num, -1, -1) if s < 2 else torch.randn(num, side * side, d, generator=g)
            out.append(sampler(logits, scale=s, grid=(side, side), generator=g).view(num, side, side, d))
        return out

    observed, fresh = draw(300, 1), draw(200, 2)
    guess, truth = ContentStolenRule(observed, rule=rule)(fresh), BitDetector(key).green_status(fresh)
    called = guess[2] != 0
    assert called.float().mean() > 0.5 and (guess[2] == truth[2])[called].float().mean() > 0.8


def test_pixel_averaging_forges_the_fixed_table_but_not_the_content_rule(models):
    gen, tok = models
    classes = torch.arange(64) % gen.cfg.num_classes
    clean, _ = sample_images(gen, tok, classes[:16], key=None, seed=3, progress=False)
    z = {}
    for rule in ("keyed-spatial", "keyed-content"):
        key = fixed_key(304, rule=rule)
        observed, _ = sample_images(gen, tok, classes, key=key, seed=4, progress=False)
        forged = attacks.get("average_forge", 64, observed=observed)(clean)
        z[rule] = BitDetector(key).detect(tok.encode(forged)).z_score.mean()
    assert z["keyed-spatial"] > 3 and z["keyed-content"] < 1


def test_stealing_benchmark_smoke(tmp_path, models, monkeypatch):
    """A tiny run of `bitmark bench stealing`: every (scheme, attacker, N, target) row, and the summary."""
    from bitmark.benchmarks import stealing

    monkeypatch.setattr(stealing, "ROBUSTNESS", ("none:0",))
    cfg = stealing.Config(observed=(5, 10), targets=6, negatives=20)
    result = stealing.run(tmp_path, cfg, progress=False)
    rows = list(__import__("csv").DictReader(open(tmp_path / "stealing.csv")))
    attackers = {"naive", "adaptive", "adaptive (flip 0.5)", "adaptive (flip 0.25)", "average"}
    assert len(rows) == 2 * (1 + 2 * len(attackers) * 3)
    assert {r["attacker"] for r in rows} == attackers | {"robustness"}
    forged = [r for r in rows if r["target"].startswith("forge")]
    assert all(0 <= float(r["flagged"]) <= 1 and float(r["flagged_25db"]) <= float(r["flagged"]) for r in forged)
    assert {r["seed_bits"] for r in rows if r["scheme"] == "keyed-content"} == {str(rules.SEED_BITS)}
    assert "Forgery" in (tmp_path / "summary.md").read_text() and result["wall_s"] > 0


def test_keyed_content_through_the_infinity_adapter(monkeypatch):
    """The Infinity hook samples keyed-content scale by scale (each scale's seeds from the bits it drew) and
    rewrites the logits with the tables it used; the recorded pyramid is detected."""
    import importlib
    import sys
    from pathlib import Path

    from bitmark.adapters.infinity.sampler_hook import watermarked

    for name in [m for m in sys.modules if m == "infinity" or m.startswith("infinity.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "fake_infinity"))
    module = importlib.import_module("infinity.models.infinity")
    schedule = [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8)]
    try:
        with watermarked(WatermarkSampler(KEY), schedule, seed=1) as run:
            module.Infinity(d_vae=16).autoregressive_infer_cfg(
                scale_schedule=schedule, label_B_or_BLT=[0, 1, 2, 3], B=4, g_seed=0, cfg_list=[3.0] * 4,
                tau_list=[1.0] * 4, top_k=900, top_p=0.97)
        assert run.complete
        result = BitDetector(KEY).detect(run.pyramid)
        assert result.is_watermarked.all() and result.z_score.min() > 4
    finally:
        for name in [m for m in sys.modules if m == "infinity" or m.startswith("infinity.")]:
            del sys.modules[name]
