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
