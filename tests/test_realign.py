import json

import numpy as np
import pytest
import torch

from bitmark import attacks
from bitmark.detectors import BitDetector
from bitmark.detectors.realign import RealigningDetector, crop_boxes, undo_crop
from bitmark.evaluation.keys import fixed_key
from bitmark.io.datasets import load_dataset
from bitmark.models.sampling import sample_images

KEY = fixed_key(0)


@pytest.fixture(scope="module")
def marked(models):
    gen, tok = models
    return sample_images(gen, tok, torch.arange(16) % gen.cfg.num_classes, key=KEY, seed=3, progress=False)[0]


def test_crop_boxes():
    boxes = crop_boxes(32, 0.5, "centre", jitter=1)
    assert boxes[0] == (32, 0, 0) and len(set(boxes)) == len(boxes)
    assert (29, 2, 2) in boxes and (24, 4, 4) in boxes and (16, 8, 8) in boxes and min(b[0] for b in boxes) == 16
    every = crop_boxes(32, 0.5, "any")
    assert len(every) == 1 + sum((32 - s + 1) ** 2 for s in range(16, 32))
    with pytest.raises(ValueError, match="centre"):
        crop_boxes(32, offsets="middle")


def test_undo_crop_puts_the_content_back_where_it_was(marked):
    cropped = attacks.get("crop", 0.75)(marked)
    undone = np.stack([undo_crop(x, (24, 4, 4)) for x in cropped])
    inner = np.abs(undone[:, 4:28, 4:28].astype(int) - marked[:, 4:28, 4:28]).mean()
    assert inner < 0.5 * np.abs(cropped[:, 4:28, 4:28].astype(int) - marked[:, 4:28, 4:28]).mean()


def test_crop_search_finds_cropped_marks_and_keeps_the_fpr(models, marked):
    tok = models[1]
    det = BitDetector(KEY)
    search = RealigningDetector(tok, det, min_fraction=0.7)
    cropped = attacks.get("crop", 0.75)(marked)
    result, boxes = search.detect_with_boxes(cropped)
    assert result.is_watermarked.all() and boxes.count((24, 4, 4)) >= 12
    assert det.detect(tok.encode(cropped)).is_watermarked.sum() <= 4  # without the search the mark is lost
    # Bonferroni over the boxes: the family-wise FPR is at most 1%; P(>= 5 of 100 | 1%) = 0.003
    real = load_dataset("photos", "heldout").images[::9][:100]
    clean = search.detect(real)
    assert clean.is_watermarked.sum() <= 4 and (clean.p_value <= 1).all()


def test_detect_command_with_realign(tmp_path, marked, capsys):
    from bitmark.cli import main
    from bitmark.io.images import save_png

    KEY.save(tmp_path / "key.json")
    for i, x in enumerate(attacks.get("crop", 0.9)(marked[:3])):
        save_png(tmp_path / f"c{i}.png", x)
    assert main(["detect", "--key", str(tmp_path / "key.json"), "--realign", "--json", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows if "skipped" in r] == [str(tmp_path / "key.json")]  # the key beside them
    rows = [r for r in rows if "skipped" not in r]
    assert len(rows) == 3 and all(r["is_watermarked"] for r in rows)
