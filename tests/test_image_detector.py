"""The image -> bits -> verdict plumbing, with a transparent stand-in encoder (pixel parity bits), so that
batching, order and per-file error rows are tested independently of any trained tokenizer."""

import numpy as np

from bitmark.detectors import BitDetector
from bitmark.detectors.image_detector import ImageDetector
from bitmark.evaluation.keys import fixed_key
from bitmark.io.images import save_png


class ParityEncoder:
    """Bits = low bit of each of the 16 pixels' red channel in a 4x4 block: one scale of 8x8 tokens."""

    def encode(self, images):
        images = np.stack(images)
        bits = (images[..., 0] & 1).reshape(len(images), 8, 4, 8, 4).transpose(0, 1, 3, 2, 4)
        return [bits.reshape(len(images), 8, 8, 16).astype(bool)]


def test_rows_keep_order_and_report_errors(tmp_path):
    key = fixed_key(0)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        if i == 2:
            p.write_text("broken")
        else:
            save_png(p, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        paths.append(p)
    rows = list(ImageDetector(ParityEncoder(), BitDetector(key), batch_size=2).detect_files(paths))
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert "error" in rows[2] and all("z_score" in r for i, r in enumerate(rows) if i != 2)
    assert not any(r.get("is_watermarked") for r in rows)
    assert all(r["num_scored"] == 64 * 15 for i, r in enumerate(rows) if i != 2)


class FittingEncoder(ParityEncoder):
    """Says what it fits to, and records the shapes of the images it is given."""

    input_size = (32, 32)

    def __init__(self, fail_on: int | None = None):
        self.seen, self.fail_on = [], fail_on

    def fit_image(self, image):
        from bitmark.io.images import fit

        return fit(image, 32)

    def encode(self, images):
        self.seen += [im.shape for im in images]
        if self.fail_on is not None and any(int(im[0, 0, 1]) == self.fail_on for im in images):
            raise MemoryError
        return super().encode(images)


def test_images_are_fitted_as_soon_as_they_are_read(tmp_path):
    from PIL import Image

    Image.new("RGB", (3000, 1000), (10, 20, 30)).save(tmp_path / "wide.png")
    Image.new("RGB", (4000, 4000), (10, 20, 30)).save(tmp_path / "big.jpg", quality=90)
    enc = FittingEncoder()
    rows = list(ImageDetector(enc, BitDetector(fixed_key(0))).detect_files([tmp_path / "wide.png", tmp_path / "big.jpg"]))
    assert enc.seen == [(32, 32, 3)] * 2 and all("z_score" in r for r in rows)


def test_memory_error_on_one_image_is_its_error_row(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        image[0, 0, 1] = 200 + i
        paths.append(save_png(tmp_path / f"{i}.png", image))
    rows = list(ImageDetector(FittingEncoder(fail_on=203), BitDetector(fixed_key(0)), batch_size=4).detect_files(paths))
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert ["error" in r for r in rows] == [False, False, False, True, False]
    assert "out of memory" in rows[3]["error"]
