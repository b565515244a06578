"""The collapse loop through the web (issue 20): the channel every scraped image passes, the `web` mix of
attack chains, and a marked share below 1 (only some generators mark).

Statistical checks use fixed seeds and the toy world's many seeds; each tolerance is justified where it is
asserted. The bitmark-world checks use the smoke configuration and a handful of images."""

import copy
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from bitmark import attacks
from bitmark.benchmarks.collapse.batch import Batch
from bitmark.benchmarks.collapse.channel import Channel
from bitmark.benchmarks.collapse.config import CEILING_ARM, PRESETS, CollapseConfig
from bitmark.benchmarks.collapse.loop import entering, marked_mask, run_cell, run_world
from bitmark.benchmarks.collapse.report import summary_md
from bitmark.benchmarks.collapse.run import _check_config, totals
from bitmark.benchmarks.collapse.toy import GaussianWorld

TOY = CollapseConfig(generations=8, seeds=50, samples=20, fresh_pool=40, accumulate_real=20)


# ---------------------------------------------------------------------------------- the web mix


def test_web_draws_varied_seeded_chains_from_the_documented_distribution():
    web = attacks.parse("web")
    chains = web.chains(400, seed=5)
    assert chains == web.chains(400, seed=5) and chains != web.chains(400, seed=6)
    assert len(set(chains)) > 300  # strengths are continuous: almost every image gets its own chain
    parts = [c.split("+") for c in chains]
    crop = np.mean([any(p.startswith("random_crop:") for p in c) for c in parts])
    resize = np.mean([any(p.startswith("resize:") for p in c) for c in parts])
    webp = np.mean([c[-1].startswith("webp:") for c in parts])
    # binomial standard errors at n = 400: 0.025 (p = 0.5) and 0.022 (p = 0.25); 4 of them allowed
    assert abs(crop - 0.5) < 0.1 and abs(resize - 0.5) < 0.1 and abs(webp - 0.25) < 0.09
    for c in parts:
        name, q = c[-1].split(":")
        assert name in ("jpeg", "webp") and 60 <= float(q) <= 95  # always one lossy encoding, last
        bounds = {"random_crop": (0.8, 1.0), "resize": (0.5, 1.0)}
        for p in c[:-1]:
            name, v = p.split(":")
            assert bounds[name][0] <= float(v) <= bounds[name][1], p


@pytest.fixture(scope="module")
def real_images():
    from bitmark.io.datasets import load_dataset

    return load_dataset("photos", "heldout").images[:12]


def test_web_applies_the_chain_it_reports(real_images):
    web = attacks.parse("web")
    out, chains = web(real_images, seed=2), web.chains(len(real_images), seed=2)
    plain = [i for i, c in enumerate(chains) if "random_crop" not in c]  # no random placement: replayable alone
    assert plain
    for i in plain:
        assert np.array_equal(out[i], attacks.parse(chains[i])(real_images[i : i + 1])[0]), chains[i]


# ---------------------------------------------------------------------------------- the channel


def _batch(images: np.ndarray) -> Batch:
    n = len(images)
    synthetic = np.arange(n) % 2 == 1
    marked = synthetic & (np.arange(n) % 4 == 1)
    return Batch(images, np.arange(n) % 3, synthetic, np.ones((n, 2)), marked)


def test_channel_changes_every_image_keeps_size_and_provenance_and_is_seeded(real_images):
    batch = _batch(real_images)
    assert Channel(None)(batch, (0, 1, 17)) is batch
    for spec in ("jpeg:75+resize:0.75", "web"):
        out = Channel(spec)(batch, (0, 1, 17))
        assert out.items.shape == batch.items.shape and out.items.dtype == np.uint8
        assert all((o != b).any() for o, b in zip(out.items, batch.items)), spec  # real and synthetic alike
        assert np.array_equal(out.synthetic, batch.synthetic) and np.array_equal(out.marked, batch.marked)
        assert np.array_equal(out.labels, batch.labels) and out.features is None  # new pixels: features recomputed
        assert np.array_equal(out.items, Channel(spec)(batch, (0, 1, 17)).items)
    assert not np.array_equal(Channel("web")(batch, (0, 1, 17)).items, Channel("web")(batch, (0, 2, 17)).items)


# ---------------------------------------------------------------------------------- marked share, toy world


def _toy_cells(cfg: CollapseConfig, arm: str):
    world = GaussianWorld(cfg)
    return [run_cell(world, cfg, "fresh", arm, s, world.generation_zero(s))[1:] for s in range(cfg.seeds)]


def _sum(cells, column: str) -> int:
    return sum(r[column] for cell in cells for r in cell)


def test_marked_share_zero_leaks_everything_past_the_watermark_filter_but_not_the_oracle():
    cfg = replace(TOY, marked_share=0.0)
    wm = _toy_cells(cfg, "watermark@0.01")
    assert _sum(wm, "marked_in") == 0 and _sum(wm, "unmarked_in") == _sum(wm, "synthetic_in") == 50 * 8 * 20
    # nothing carries the mark: the filter flags unmarked images at its FPR only (1%; at n = 8,000 the
    # binomial standard error is 0.0011, so 2% is 9 of them away)
    assert _sum(wm, "unmarked_kept") / _sum(wm, "unmarked_in") > 0.98
    assert all(r["contamination_ceiling"] == 0 for cell in wm for r in cell)  # a mark can close nothing here
    oracle = _toy_cells(cfg, "oracle")
    assert _sum(oracle, "synthetic_kept") == 0 and _sum(oracle, "real_dropped") == 0


def test_marked_share_half_splits_the_leak_and_the_ceiling_arm_reaches_the_ceiling():
    cfg = replace(TOY, marked_share=0.5)
    assert cfg.arms_of("fresh")[-1] == CEILING_ARM and CEILING_ARM not in TOY.arms_of("fresh")
    wm = _toy_cells(cfg, "watermark@0.01")
    assert _sum(wm, "marked_in") == _sum(wm, "unmarked_in") == 50 * 8 * 10  # exactly half of each generation's 20
    # toy detector z ~ N(4, 1) on marked items: a marked item leaks with P(z < 2.326) = 0.047 (se 0.0047 at
    # n = 4,000); an unmarked one with 0.99 (se 0.0016)
    assert abs(_sum(wm, "marked_kept") / _sum(wm, "marked_in") - 0.047) < 0.02
    assert _sum(wm, "unmarked_kept") / _sum(wm, "unmarked_in") > 0.97
    ceiling = _toy_cells(cfg, CEILING_ARM)
    assert _sum(ceiling, "marked_kept") == 0 and _sum(ceiling, "unmarked_kept") == _sum(ceiling, "unmarked_in")
    # r = 20 real, s = 20 synthetic, u = 10 unmarked: 1 - (10 / 30) / (20 / 40) = 1/3, reached exactly
    rows = [r for c in ceiling for r in c]
    assert all(r["contamination_closed"] == pytest.approx(1 / 3) == r["contamination_ceiling"] for r in rows)
    # the filter misses ~5% of the marked images, and its false flags hit real and unmarked images at the
    # same rate, so on average it stays under the ceiling (one generation can pass it by a lucky false flag)
    closed = np.mean([r["contamination_closed"] for c in wm for r in c])
    assert 0.8 / 3 < closed < 1 / 3


def test_marked_mask_is_exact_seeded_and_spread_over_classes():
    m = marked_mask(96, 0.5, seed=3)
    assert m.sum() == 48 and np.array_equal(m, marked_mask(96, 0.5, seed=3))
    assert not np.array_equal(m, marked_mask(96, 0.5, seed=4))
    assert marked_mask(10, 1.0, 0).all() and not marked_mask(10, 0.0, 0).any()
    assert 0 < m[np.arange(96) % 2 == 0].sum() < 48  # not tied to the round-robin classes
    with pytest.raises(ValueError, match="0..1"):
        CollapseConfig(marked_share=1.5)


def test_report_and_totals_show_the_channel_the_share_and_the_ceiling(tmp_path):
    cfg = replace(TOY, seeds=3, generations=3, regimes=("fresh",), channel="web", marked_share=0.5,
                  arms=("none", "watermark@0.01", "oracle"))
    rows = run_world(lambda: GaussianWorld(cfg), GaussianWorld.name, cfg, tmp_path, progress=False, resumable=False)
    md = summary_md(rows, [], cfg, cfg, ["header"])
    assert "Channel: web (per image a random chain" in md and "Marked share: 0.5" in md
    assert re.search(r"\| watermark@0\.01 \| 1 \| 10\.0 \| [\d.]+ \| 10\.0 \|", md)  # the per-generation table
    assert f"ceiling ({CEILING_ARM}, marked share 0.5)" in md
    t = totals(rows, cfg)["fresh"]
    assert set(t) == {"none", "watermark@0.01", "oracle", CEILING_ARM}
    assert t[CEILING_ARM]["leak_marked"] == 0 and t[CEILING_ARM]["leak_unmarked"] == 1 and t["oracle"]["leak"] == 0
    # gap closed is None where the oracle was no better than no filter (the toy's fresh loop barely collapses)
    assert all(t[a]["gap_closed"] in (None, pytest.approx(v)) for a, v in (("oracle", 1), ("none", 0)))


def test_a_rerun_with_another_channel_or_share_is_refused(tmp_path):
    path = tmp_path / "config.json"
    cfg = PRESETS["smoke"]
    _check_config(path, cfg)
    _check_config(path, cfg)  # the same configuration: accepted
    for other in (replace(cfg, channel="web"), replace(cfg, marked_share=0.5)):
        with pytest.raises(ValueError, match="channel|marked_share"):
            _check_config(path, other)
    old = tmp_path / "old"  # cells made before these options existed ran with their defaults
    old.mkdir()
    text = path.read_text()
    (old / "config.json").write_text(re.sub(r',\s*"channel": null,\s*"marked_share": 1.0', "", text))
    assert "marked_share" not in (old / "config.json").read_text()
    _check_config(old / "config.json", cfg)
    with pytest.raises(ValueError, match="marked_share"):
        _check_config(old / "config.json", replace(cfg, marked_share=0.5))


def test_a_folder_from_before_the_model_null_default_is_read_as_self_normalised(tmp_path):
    path = tmp_path / "config.json"
    cfg = PRESETS["smoke"]
    assert cfg.null is None  # the detectors' default
    _check_config(path, replace(cfg, null="self-normalised"))
    path.write_text(re.sub(r',\s*"null": "self-normalised"', "", path.read_text()))
    assert '"null"' not in path.read_text()
    with pytest.raises(ValueError, match="null"):
        _check_config(path, cfg)  # those cells ran with the self-normalised filter
    _check_config(path, replace(cfg, null="self-normalised"))


def test_cli_knows_every_preset_and_checks_the_share():
    import argparse

    from bitmark.cli import collapse

    assert set(collapse.PRESETS) == set(PRESETS)
    assert collapse.share("0.25") == 0.25
    with pytest.raises(argparse.ArgumentTypeError):
        collapse.share("1.5")


# ---------------------------------------------------------------------------------- the bitmark world


@pytest.fixture(scope="module")
def world():
    from bitmark.benchmarks.collapse.world import BitmarkWorld

    return BitmarkWorld(replace(PRESETS["smoke"], channel="web", marked_share=0.5))


def test_bitmark_world_marks_exactly_the_share_and_only_those_carry_the_mark(world):
    batch = world.sample(world.gen0, 16, seed=7)
    assert batch.synthetic.all() and batch.marked.sum() == 8
    flagged = world.flagged(batch, 0.01)
    # marked samples score z around 23 (measured), far past the 1% threshold; the unmarked copy's expected
    # number of false flags among 8 is 0.08 at 1% FPR, and with these fixed seeds it is 0
    assert flagged[batch.marked].all() and not flagged[~batch.marked].any()


def test_marked_share_one_samples_as_before(world, models):
    from bitmark.models.sampling import sample_images

    before = copy.copy(world)
    before.cfg = replace(world.cfg, marked_share=1.0)
    batch = before.sample(world.gen0, 8, seed=4)
    plain, _ = sample_images(world.gen0, world.tok, torch.arange(8) % world.num_classes, key=world.key, seed=4,
                             progress=False)
    assert batch.marked.all() and np.array_equal(batch.items, plain)


def test_every_scraped_image_passes_the_channel_before_the_filter(world):
    cfg = world.cfg
    samples = world.sample(world.gen0, cfg.samples, seed=1)
    incoming = entering(world, cfg, "fresh", 0, 1, samples)
    syn = cfg.synthetic_per_scrape()
    raw = world.real(0, 0, cfg.fresh_pool - syn).concat(samples.take(np.arange(syn)))
    assert incoming.items.shape == raw.items.shape
    assert all((a != b).any() for a, b in zip(incoming.items, raw.items))  # real and synthetic alike
    assert np.array_equal(incoming.synthetic, raw.synthetic) and np.array_equal(incoming.marked, raw.marked)
    assert np.array_equal(incoming.items, entering(world, cfg, "fresh", 0, 1, samples).items)  # same in every arm
