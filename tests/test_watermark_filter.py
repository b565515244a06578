"""WatermarkFilter on samples of the shipped generator: watermarked ones are dropped, clean ones kept,
from the pixels (and from PNG files, where an unreadable file is reported, not kept)."""

import numpy as np
import pytest
import torch

from bitmark.detectors import WatermarkFilter
from bitmark.evaluation.keys import fixed_key
from bitmark.io.images import save_png
from bitmark.models.sampling import sample_images


@pytest.fixture(scope="module")
def samples(models):
    gen, tok = models
    classes = torch.arange(6) % gen.cfg.num_classes
    marked, _ = sample_images(gen, tok, classes, key=fixed_key(0), seed=3, progress=False)
    clean, _ = sample_images(gen, tok, classes, key=None, seed=3, progress=False)
    return tok, marked, clean


def test_split_drops_watermarked_and_keeps_clean(samples):
    tok, marked, clean = samples
    result = WatermarkFilter(fixed_key(0), fpr=0.01, encoder=tok, batch_size=5).split(np.concatenate([marked, clean]))
    assert result.dropped.tolist() == list(range(6))  # z of marked samples is ~20; the 1% cut is z ~ 2.3
    assert result.kept.tolist() == list(range(6, 12))
    assert (result.z_score[:6] > 10).all() and (np.abs(result.z_score[6:]) < 4).all()
    assert result.keep_mask.tolist() == [False] * 6 + [True] * 6


def test_split_files_reports_unreadable_files(samples, tmp_path):
    tok, marked, clean = samples
    paths = [save_png(tmp_path / "m.png", marked[0]), tmp_path / "bad.png", save_png(tmp_path / "c.png", clean[0])]
    paths[1].write_bytes(b"not a png")
    result = WatermarkFilter(fixed_key(0), encoder=tok).split_files(paths)
    assert result.dropped.tolist() == [0] and result.kept.tolist() == [2]
    assert list(result.errors) == [1] and "bad.png" in result.errors[1] and np.isnan(result.z_score[1])
