import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from bitmark.io.images import IMAGE_SUFFIXES, ImageError, fit, iter_entries, iter_image_files, load_image, save_png


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


def test_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    """A 9,000 x 9,000 1-bit PNG is a few KB on disk and 81 MP decoded: refused before any pixel is decoded."""
    Image.new("1", (9_000, 9_000), 1).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 50_000
    monkeypatch.setattr(ImageFile.ImageFile, "load", _no_decoding)
    for size in (None, 32):
        with pytest.raises(ImageError, match="over the limit of 40 megapixels"):
            load_image(tmp_path / "bomb.png", size=size)
    (tmp_path / "claims.png").write_bytes(png_header(200_000, 200_000))  # past Pillow's own bomb check
    with pytest.raises(ImageError, match="refused"):
        load_image(tmp_path / "claims.png")


def test_pixel_limit_is_a_parameter_not_a_global(tmp_path):
    Image.new("L", (100, 100), 90).save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="over the limit"):
        load_image(tmp_path / "a.png", max_pixels=9_999)
    assert load_image(tmp_path / "a.png", max_pixels=10_000).shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, left alone for everyone else


def test_huge_jpeg_is_decoded_at_reduced_scale_when_a_size_is_known(tmp_path):
    """7,000 x 7,000 = 49 MP: over the limit in full, but a size-32 read decodes it at 1/8 (875 x 875)."""
    Image.new("L", (7_000, 7_000), 90).save(tmp_path / "huge.jpg", quality=90)
    out = load_image(tmp_path / "huge.jpg", size=32)
    assert out.shape == (32, 32, 3) and (np.abs(out.astype(int) - 90) <= 1).all()
    assert load_image(tmp_path / "huge.jpg", draft=32).shape == (875, 875, 3)
    with pytest.raises(ImageError, match="decodes smaller when a target size is given"):
        load_image(tmp_path / "huge.jpg")


def test_memory_error_while_decoding_is_that_files_error(tmp_path, monkeypatch):
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")

    def exhausted(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)
    with pytest.raises(ImageError, match="out of memory decoding 16x16"):
        load_image(tmp_path / "a.png")


def test_links_and_special_files_are_refused_with_the_reason(tmp_path):
    os.symlink("missing.png", tmp_path / "dangling.png")
    os.symlink("b.png", tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "b.png")
    os.mkfifo(tmp_path / "fifo.png")
    for name, reason in (("dangling.png", "dangling symbolic link"), ("a.png", "cannot open"), ("fifo.png", "not a regular file")):
        with pytest.raises(ImageError, match=reason):
            load_image(tmp_path / name)


def test_iter_image_files(tmp_path, rgb):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/b.png", "d/e/a.JPG", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path / "d", tmp_path / "x.webp"])]
    assert found == ["d/b.png", "d/e/a.JPG", "x.webp"]


def test_iter_entries_accounts_for_every_entry(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.jpg", "notes.txt", "p.npz"):
        (d / name).write_bytes(b"")
    os.symlink("a.png", d / "link.png")
    os.symlink("gone.png", d / "dangling.png")
    os.symlink("gone.txt", d / "dangling.txt")
    os.symlink(".", d / "loop")  # a link to a folder: not followed, so no loop
    os.mkfifo(d / "fifo.png")
    entries = {e.path.relative_to(d).as_posix(): e.skip for e in iter_entries([d], IMAGE_SUFFIXES + (".npz",))}
    assert {k for k, v in entries.items() if v is None} == {"a.png", "sub/b.jpg", "p.npz", "link.png", "dangling.png"}
    assert "not followed" in entries["loop"] and "not a regular file" in entries["fifo.png"]
    assert "(.txt)" in entries["notes.txt"] and "broken link" in entries["dangling.txt"]
    assert len(entries) == 9
    assert [e.skip for e in iter_entries([d / "notes.txt", d / "nothing"])] == [None, None]  # named: always read


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height and holds no pixel data (what a hostile header looks like)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _no_decoding(self):
    raise AssertionError("pixels were decoded")


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
