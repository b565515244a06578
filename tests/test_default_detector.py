"""The default detector: the model null with the shipped detector card's per-scale weights where it applies,
the rule's own null elsewhere; calibrated for one fixed key on clean samples and real photos; used by detect,
scan and the filter, with the rule's null for the resynchronisation search and for pyramids of other grids."""

import json

import numpy as np
import pytest

from bitmark.cli import main
from bitmark.detectors import BitDetector, WatermarkFilter
from bitmark.detectors.defaults import default_detector
from bitmark.detectors.manifest import ManifestError
from bitmark.detectors.resync import ResyncDetector, make_image_detector
from bitmark.detectors.scan import scan
from bitmark.evaluation.keys import fixed_key
from bitmark.io.images import save_png
from bitmark.models import detector_card
from bitmark.models.sampling import sample_images
from bitmark.training.detector import DetectorCalibration, train_detector


def test_the_shipped_card_gives_the_model_null_with_its_weights():
    card = detector_card("photos")
    det = default_detector(fixed_key(0))
    assert card["null"] == det.null == "model" and card["rules"] == ["keyed-spatial"]
    assert det.weights.tolist() == card["scale_weights"] and max(card["scale_weights"]) == 1.0
    assert card["calibration"]["key_number"] != 0  # learned on another key than the benchmarks' test key


@pytest.mark.parametrize("why, kwargs", [("rule", {"key": fixed_key(0, rule="keyed")}),
                                         ("bitmark-2025", {"key": fixed_key(0, rule="bitmark-2025")}),
                                         ("no generator", {"key": fixed_key(0), "data": None})])
def test_it_falls_back_to_the_rules_null_where_the_card_does_not_apply(why, kwargs):
    det = default_detector(**kwargs)
    assert det.null == BitDetector(kwargs["key"]).null != "model" and det.weights is None, why


def test_an_encoder_of_another_schedule_or_a_folder_without_a_card_falls_back(tmp_path):
    class Other:  # e.g. Infinity's VAE: no tokenizer schedule
        pass

    assert default_detector(fixed_key(0), encoder=Other()).null == "self-normalised"
    assert detector_card(tmp_path) is None and default_detector(fixed_key(0), data=tmp_path).null == "self-normalised"


def test_training_writes_a_card_of_key_independent_weights(tmp_path):
    card = train_detector("photos", tmp_path / "photos-detector", DetectorCalibration(num=24))
    assert json.loads((tmp_path / "photos-detector.json").read_text()) == card
    w = np.array(card["scale_weights"])
    assert len(w) == len(card["schedule"]) == 4 and w.max() == 1.0 and (w >= 0).all()
    assert card["calibration"]["mean_z"] > 3  # the calibration images carry the mark after JPEG 75
    assert detector_card(tmp_path)["scale_weights"] == card["scale_weights"]  # a folder's card is found


@pytest.fixture(scope="module")
def negatives(models):
    """400 clean samples and 400 held-out real photos, and 64 marked samples, of the shipped generator."""
    import torch

    from bitmark.io.datasets import load_dataset

    gen, tok = models
    classes = torch.arange(400) % gen.cfg.num_classes
    clean, _ = sample_images(gen, tok, classes, key=None, seed=77, progress=False)
    real = load_dataset("photos", "heldout").images[:400]
    marked, _ = sample_images(gen, tok, classes[:64], key=fixed_key(0), seed=78, progress=False)
    return tok, clean, real, marked


def test_the_default_detector_is_calibrated_for_one_key_and_detects(negatives):
    """The nominal 1% test on 400 + 400 negatives: a share of 1% has sd 0.5% there, so 2.5% is 3 sd above it;
    key 0 is the key every benchmark reports."""
    tok, clean, real, marked = negatives
    det = default_detector(fixed_key(0))
    for name, images in (("clean", clean), ("real", real)):
        flagged = det.detect(tok.encode(images)).is_watermarked.mean()
        assert flagged <= 0.025, (name, flagged)
    assert det.detect(tok.encode(marked)).is_watermarked.all()


def test_resync_tests_the_unmoved_image_with_the_model_null_and_the_search_with_the_rules(negatives):
    tok, _, _, marked = negatives
    det = default_detector(fixed_key(0))
    resync = make_image_detector(tok, det)
    assert isinstance(resync, ResyncDetector) and resync.bits is det and resync.search_bits.null == "self-normalised"
    search = resync.search(marked[:16])
    plain = det.detect(tok.encode(marked[:16]))
    np.testing.assert_allclose(search.plain.z_score, plain.z_score, rtol=1e-6)
    assert search.plain.null == "model"
    moved = resync.detect(np.ascontiguousarray(marked[:16, :, ::-1]))  # a flip: found by the search
    assert moved.is_watermarked.mean() >= 0.9


def test_filter_and_scan_use_it_and_a_manifest_keeps_its_null(negatives, tmp_path):
    tok, clean, _, marked = negatives
    assert WatermarkFilter(fixed_key(0), encoder=tok).detector.bits.null == "model"
    assert WatermarkFilter(fixed_key(0), encoder=tok, null="self-normalised").detector.bits.null == "self-normalised"
    root = tmp_path / "scrape"
    root.mkdir()
    for i in range(3):
        save_png(root / f"m{i}.png", marked[i])
        save_png(root / f"c{i}.png", clean[i])
    out = tmp_path / "m.jsonl"
    r = scan(fixed_key(0), [root], out, encoder=tok, progress=False, limit=4)
    assert json.loads(out.read_text().splitlines()[0])["detector"]["null"] == "model" and r["new"] == 4
    with pytest.raises(ManifestError, match="here without --null"):
        scan(fixed_key(0), [root], out, encoder=tok, progress=False, null="self-normalised")
    assert scan(fixed_key(0), [root], out, encoder=tok, progress=False)["new"] == 2


def test_detect_command_default_and_pyramids_of_other_grids(negatives, tmp_path, capsys):
    from bitmark.core.pyramid import save_pyramid

    tok, _, _, marked = negatives
    key = tmp_path / "key.json"
    fixed_key(0).save(key)
    image = save_png(tmp_path / "m.png", marked[0])
    pyramid = tmp_path / "m.safetensors"
    save_pyramid(pyramid, tok.encode(marked[:2]))
    rng = np.random.default_rng(0)
    other = tmp_path / "other.npz"  # grids (1, 3, 5): no shipped generator predicts them
    save_pyramid(other, [rng.integers(0, 2, (1, s, s, 32)).astype(bool) for s in (1, 3, 5)])
    assert main(["detect", str(image), str(pyramid), str(other), "--key", str(key), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["null"] for r in rows] == ["model", "model", "model", "self-normalised"]
    assert all(r["is_watermarked"] for r in rows[:3]) and not rows[3]["is_watermarked"]
    assert main(["detect", str(image), "--key", str(key), "--json", "--null", "self-normalised"]) == 0
    assert json.loads(capsys.readouterr().out)["null"] == "self-normalised"
