import numpy as np
import pytest
from PIL import Image

from bitmark.io.datasets import PHOTOS, crop_boxes, digits, folder, load_dataset, photos


def test_photo_split_is_by_region():
    for h, w in [(128, 192), (128, 128), (171, 256)]:
        train, held = crop_boxes(h, w, 32, 4, "train"), crop_boxes(h, w, 32, 8, "heldout")
        assert train and held
        assert max(x for _, x in train) + 32 <= min(x for _, x in held)  # no held-out crop overlaps training


def test_photos_and_digits():
    train, held = photos("train"), photos("heldout")
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    assert set(train.labels) == set(held.labels) == set(range(len(PHOTOS)))
    assert len(train) > 3 * len(held) > 0
    d = digits("heldout")
    assert d.images.shape[1:] == (32, 32, 3) and len(d) == 360 and set(d.labels) == set(range(10))


def test_folder_dataset(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.new("RGB", (40, 50), (i * 20, 0, 0)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dogs" / "broken.png").write_text("nope")
    both = [folder(tmp_path, split) for split in ("train", "heldout")]
    assert sum(len(s) for s in both) == 20  # the broken file is skipped, nothing else lost
    assert both[0].classes == ("cats", "dogs") and both[0].images.shape[1:] == (32, 32, 3)
    assert len(load_dataset(str(tmp_path))) == len(both[0])
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("imagenet")
