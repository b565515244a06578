import numpy as np
import pytest
from PIL import Image

from bitmark.io.images import ImageError, fit, iter_image_files, load_image, save_png


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_png_round_trip_is_exact(tmp_path, rgb):
    save_png(tmp_path / "a.png", rgb)
    assert np.array_equal(load_image(tmp_path / "a.png", size=32), rgb)


def test_opaque_rgba_is_unchanged_and_transparency_goes_white(tmp_path, rgb):
    alpha = np.full((32, 32, 1), 255, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], 2), "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(load_image(tmp_path / "opaque.png"), rgb)
    Image.fromarray(np.concatenate([rgb, alpha * 0], 2), "RGBA").save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png") == 255).all()


def test_16_bit_and_greyscale(tmp_path):
    a16 = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(a16).save(tmp_path / "deep.png")
    out = load_image(tmp_path / "deep.png")
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], np.round(a16 / 257).astype(np.uint8))
    Image.fromarray(np.full((40, 20), 7, np.uint8), "L").save(tmp_path / "grey.png")
    assert (load_image(tmp_path / "grey.png", size=16) == 7).all()


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_lossy_formats(tmp_path, fmt):
    ramp = np.linspace(0, 255, 32).astype(np.uint8)
    smooth = np.stack([np.tile(ramp, (32, 1)), np.tile(ramp[:, None], (1, 32)), np.full((32, 32), 128, np.uint8)], 2)
    Image.fromarray(smooth).save(tmp_path / f"a.{fmt.lower()}", format=fmt, quality=90)
    out = load_image(tmp_path / f"a.{fmt.lower()}", size=32)
    assert out.shape == (32, 32, 3) and np.abs(out.astype(int) - smooth).mean() < 4


def test_fit_resizes_shorter_side_and_centre_crops():
    img = np.zeros((64, 128, 3), np.uint8)
    img[:, 32:96] = 200  # the centre square
    out = fit(img, 32)
    assert out.shape == (32, 32, 3) and (out[:, 4:28] == 200).all()


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.write_bytes(_png_bytes()[:200]), "truncated"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, format="PNG"), "too small"),
        (lambda p: None, "no such file"),
    ],
)
def test_bad_files_raise_image_error(tmp_path, make, reason):
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(ImageError, match=reason):
        load_image(path, size=32)


def test_huge_image_is_read_and_fitted(tmp_path):
    Image.new("L", (10_000, 10_000), 90).save(tmp_path / "huge.png")
    out = load_image(tmp_path / "huge.png", size=32)
    assert out.shape == (32, 32, 3) and (out == 90).all()


def test_iter_image_files(tmp_path, rgb):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/b.png", "d/e/a.JPG", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path / "d", tmp_path / "x.webp"])]
    assert found == ["d/b.png", "d/e/a.JPG", "x.webp"]


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
