"""The resynchronisation stage: it undoes crops, flips and rotations of marked samples, and its corrected
p-values keep the false-positive rate on real photographs (which carry no mark), moved or not."""

import json

import numpy as np
import pytest
import torch

from bitmark import attacks
from bitmark.detectors import BitDetector, ResyncDetector, make_image_detector
from bitmark.detectors.image_detector import ImageDetector
from bitmark.detectors.realign import undo_crop
from bitmark.detectors.resync import Candidates, Move
from bitmark.evaluation.keys import fixed_key
from bitmark.io.datasets import load_dataset
from bitmark.models.sampling import sample_images
from bitmark.models.tokenizer import to_unit

KEY = fixed_key(0)


@pytest.fixture(scope="module")
def marked(models):
    gen, tok = models
    return sample_images(gen, tok, torch.arange(16) % gen.cfg.num_classes, key=KEY, seed=3, progress=False)[0]


@pytest.fixture(scope="module")
def search(models):
    return ResyncDetector(models[1], BitDetector(KEY))


def test_undoing_a_box_matches_pillow(marked):
    """The matrices are Pillow's Lanczos resize: the same pixels as the crop search's undo_crop, up to rounding."""
    x = to_unit(marked[:4])
    ours = Move(box=(24, 24, 4, 4)).undo(x)
    pillow = to_unit([undo_crop(m, (24, 4, 4)) for m in marked[:4]])
    assert (ours - pillow).abs().max() < 2 / 255
    assert torch.equal(Move(flip=True).undo(x), x.flip(-1))


def test_candidates_cover_every_phase_and_mirror_onto_themselves():
    c = Candidates(32, 4)
    assert c.keys[0] == (32, 32, 0, 0) and len(set(c.keys)) == len(c)
    assert {(k[2], k[3]) for k in c.keys if k[0] == k[1] == 24} == {(x, y) for x in range(4) for y in range(4)}
    assert all(c.keys[p[0]] == k for p, k in zip(c.partners.tolist(), c.keys))  # the baseline includes the move
    assert c.move(0, True) == Move(flip=True)


@pytest.mark.parametrize("spec, truth", [("crop:0.75", "crop 24x24+4+4"), ("hflip:1", "flip"), ("rotate:9", "rotate +9"),
                                         ("random_crop:0.75", None)])
def test_the_stage_recovers_moved_marks(models, marked, search, spec, truth):
    tok = models[1]
    moved = attacks.parse(spec)(marked, seed=5)
    result, moves = search.detect_with_moves(moved)
    assert result.is_watermarked.sum() >= 14, (spec, result.z_score)
    assert BitDetector(KEY).detect(tok.encode(moved)).is_watermarked.sum() <= 3  # without it the mark is lost
    if truth:
        assert [str(m) for m in moves].count(truth) >= 12, [str(m) for m in moves]
    unmoved = search.detect(marked)  # un-moved samples: stage 1 keeps them, the verdict is the plain one
    assert np.allclose(unmoved.neg_log10_p, BitDetector(KEY).detect(tok.encode(marked)).neg_log10_p)


@pytest.mark.parametrize("spec", ["none:0", "crop:0.75", "hflip:1"])
def test_false_positive_rate_on_real_photographs(search, spec):
    """200 held-out photographs, at a nominal 10% so that a miscalibration shows with few images: the search
    tries up to ~30 candidates per image, so without its correction about half would be flagged. The bound
    is conservative (Bonferroni), so at most 10% in expectation; P(>= 31 of 200 | 10%) = 0.008."""
    real = load_dataset("photos", "heldout").images[::4][:200]
    found = search.search(attacks.parse(spec)(real, seed=7))
    flagged, _ = found.verdict(search.weight, 0.1)
    assert flagged.is_watermarked.sum() <= 30, flagged.is_watermarked.sum()
    assert (found.tests > 0).mean() > 0.5  # real photos carry no cell texture: stage 1 rarely keeps them un-moved
    assert (flagged.p_value <= 1).all() and (flagged.p_value > 0).all()


def test_weight_one_is_the_plain_detector(models, marked):
    tok = models[1]
    plain = ResyncDetector(tok, BitDetector(KEY), weight=1.0).detect(attacks.get("crop", 0.75)(marked))
    assert np.allclose(plain.neg_log10_p, BitDetector(KEY).detect(tok.encode(attacks.get("crop", 0.75)(marked))).neg_log10_p)
    with pytest.raises(ValueError, match="weight"):
        ResyncDetector(tok, BitDetector(KEY), weight=0.0)


def test_make_image_detector(models):
    tok = models[1]
    assert isinstance(make_image_detector(tok, BitDetector(KEY)), ResyncDetector)  # on by default
    assert type(make_image_detector(tok, BitDetector(KEY), resync=False)) is ImageDetector
    assert type(make_image_detector(object(), BitDetector(KEY))) is ImageDetector  # other encoders: no stage
    with pytest.raises(ValueError, match="shipped tokenizer"):
        ResyncDetector(object(), BitDetector(KEY))


def test_detect_command_resyncs_by_default(tmp_path, marked, capsys):
    from bitmark.cli import main
    from bitmark.io.images import save_png

    KEY.save(tmp_path / "key.json")
    for i, x in enumerate(attacks.get("crop", 0.75)(marked[:3])):
        save_png(tmp_path / f"c{i}.png", x)
    assert main(["detect", "--key", str(tmp_path / "key.json"), "--json", str(tmp_path)]) == 0
    rows = [r for r in map(json.loads, capsys.readouterr().out.splitlines()) if "skipped" not in r]  # key.json: a skip row
    assert len(rows) == 3 and all(r["is_watermarked"] for r in rows) and all(r["resync"].startswith("crop") for r in rows)
    assert main(["detect", "--key", str(tmp_path / "key.json"), "--json", "--no-resync", str(tmp_path)]) == 0
    rows = [r for r in map(json.loads, capsys.readouterr().out.splitlines()) if "skipped" not in r]
    assert not any(r["is_watermarked"] for r in rows) and "resync" not in rows[0]


def test_only_tokens_inside_an_undone_crop_are_scored(models, marked, search):
    """After crop 0.5 three quarters of the undone frame are repeated edge pixels: their bits are noise, and
    scoring them dilutes z (300 samples, `python -m bitmark.benchmarks.resync_oracle --quality 0 --keep 0.5
    --no-flip --centre`: mean 4.4 against 7.3 inside the box)."""
    from bitmark.detectors.resync import inside

    assert inside([(16, 16, 8, 8)], 32, 8)[0].sum() == 16 and inside([None], 32, 8).all()
    assert inside([(16, 16, 8, 8)], 32, 2).sum() == 0  # no 16-px token is half inside a centred 16-px box
    tok = models[1]
    moved = attacks.get("crop", 0.5)(marked)
    box = Move(box=(16, 16, 8, 8))
    pyramid = tok.encode(list(box.undo(to_unit(moved)).mul(255).round().byte().permute(0, 2, 3, 1).numpy()))
    everything = BitDetector(KEY).detect(pyramid).z_score
    masked = BitDetector(KEY).detect(pyramid, [inside([box.box] * len(moved), 32, b.shape[1]) for b in pyramid]).z_score
    assert masked.mean() > everything.mean() + 1.5, (masked.mean(), everything.mean())
