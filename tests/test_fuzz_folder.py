"""A hostile folder through `bitmark detect --json`: every entry is accounted for exactly once.

About 2,100 entries: valid PNG/JPEG (tiny), junk bytes, truncated PNG and JPEG, empty files, images below
the minimum size, a folder nested 1,100 deep, decompression bombs (a real one and hostile headers), link loops, dangling links, links to
files and to folders, a FIFO, odd names (spaces, unicode, bytes that are not UTF-8), nested folders, bit
pyramids (valid and corrupt) and non-image files. Each entry must get exactly one row (an error, a skip, or a
verdict; a pyramid file one row per pyramid in it) and the verdict rows must be the valid inputs.
"""

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bitmark import WatermarkKey, WatermarkSampler, save_pyramid
from bitmark.benchmarks.null_calibration import sample_pyramid
from bitmark.cli import main

NAMES = ["plain", "with space", "été", "日本", "a'quote", "-dash", "x.y.z", "#hash"]


def _png(rng, side: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(rng, side: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


class Fuzz:
    """Builds the folder and records what each entry must become: 'verdict', 'error' or 'skipped'."""

    def __init__(self, root: Path):
        self.root, self.expect, self.n = root, {}, 0

    def path(self, suffix: str, raw: bool = False) -> bytes:
        """A fresh name (bytes) in one of the nested folders; `raw`: with bytes that are not UTF-8."""
        self.n += 1
        folder = self.root / f"d{self.n % 7}" / ("deep/er" if self.n % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        stem = (b"\xff\xfe-%d" % self.n) if raw else f"{NAMES[self.n % len(NAMES)]}-{self.n}".encode()
        return os.fsencode(folder) + b"/" + stem + suffix.encode()

    def file(self, suffix: str, data: bytes, expect: str, raw: bool = False) -> bytes:
        p = self.path(suffix, raw)
        with open(p, "wb") as f:
            f.write(data)
        self.expect[p] = expect
        return p

    def link(self, target: bytes, suffix: str, expect: str) -> None:
        p = self.path(suffix)
        os.symlink(target, p)
        self.expect[p] = expect


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    f = Fuzz(root / "in")
    key_path = root / "key.json"
    assert main(["keygen", "--out", str(key_path)]) == 0
    key = WatermarkKey.load(key_path)
    good = [f.file(".png", _png(rng), "verdict", raw=i % 50 == 0) for i in range(900)]
    good += [f.file(s, _jpeg(rng), "verdict") for i, s in enumerate([".jpg", ".JPEG", ".webp"] * 40) if s != ".webp"]
    for _ in range(40):  # WebP through its own codec
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(buf, format="WEBP")
        good.append(f.file(".webp", buf.getvalue(), "verdict"))
    for i in range(250):
        f.file([".png", ".jpg", ".gif", ".tif"][i % 4], rng.bytes(int(rng.integers(1, 400))), "error", raw=i % 40 == 0)
    for i in range(100):
        png = _png(rng, 16)
        f.file(".png", png[: len(png) * 3 // 5], "error")
        jpeg = _jpeg(rng, 32)
        f.file(".jpg", jpeg[: len(jpeg) // 2], "error")
    for _ in range(20):
        f.file(".png", b"", "error")
        f.file(".png", _png(rng, 4), "error")  # below the minimum side
        f.file(".png", _png_header(13_000, 13_000), "error")  # a hostile header, over the pixel limit
        f.file(".png", _png_header(300_000, 300_000), "error")  # past Pillow's own bomb check
    bomb = io.BytesIO()
    Image.new("1", (9_000, 9_000), 1).save(bomb, format="PNG")  # a real bomb: a few KB, 81 MP decoded
    f.file(".png", bomb.getvalue(), "error")
    for i in range(350):
        f.file([".txt", ".json", "", ".PNG~", ".pyc", ".md", ".jsonl"][i % 7], b"not an image", "skipped", raw=i % 70 == 0)
    for i in range(60):
        f.link(good[i], ".png", "verdict")  # links to files are read
        f.link(b"/nonexistent/target.png", ".png", "error")  # dangling
    for _ in range(20):
        f.link(b"/nonexistent/notes.txt", ".txt", "skipped")
    for _ in range(15):  # two links pointing at each other
        a, b = f.path(".png"), f.path(".jpg")
        os.symlink(b, a)
        os.symlink(a, b)
        f.expect[a] = f.expect[b] = "error"
    for i in range(8):
        f.link(os.fsencode(root / "in"), "", "skipped")  # a link to an ancestor folder: a loop if followed
    fifo = f.path(".png")
    os.mkfifo(fifo)
    f.expect[fifo] = "skipped"
    pyramids = 0
    for i in range(24):
        batch = 1 + i % 3
        p = f.path(".safetensors" if i % 2 else ".npz")
        save_pyramid(os.fsdecode(p), sample_pyramid(WatermarkSampler(key), batch, seed=i))
        f.expect[p] = ("pyramid", batch)
        pyramids += batch
    for i in range(6):
        f.file(".npz" if i % 2 else ".safetensors", rng.bytes(200), "error")
    (root / "in" / "empty-folder").mkdir()
    deep, chain = os.fsencode(root / "in"), []
    for _ in range(1100):  # deeper than Python's recursion limit (os.makedirs itself would overflow)
        deep += b"/n"
        os.mkdir(deep)
        chain.append(deep)
    with open(deep + b"/bottom.png", "wb") as fh:
        fh.write(_png(rng))
    f.expect[deep + b"/bottom.png"] = "verdict"
    yield root, key_path, f.expect
    os.remove(deep + b"/bottom.png")  # bottom-up, without recursion: pytest's own clean-up (shutil.rmtree)
    for folder in reversed(chain):    # would overflow Python's recursion limit on this chain
        os.rmdir(folder)


def test_every_entry_of_a_hostile_folder_is_accounted_for_once(fuzz, capsys):
    root, key_path, expect = fuzz
    assert len(expect) >= 2000
    capsys.readouterr()
    assert main(["detect", "--key", str(key_path), "--json", str(root / "in")]) == 1  # some unreadable, no crash
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    seen: dict[bytes, list[dict]] = {}
    for r in rows:
        seen.setdefault(os.fsencode(r["path"]), []).append(r)
    assert set(seen) == set(expect), (sorted(set(seen) - set(expect))[:5], sorted(set(expect) - set(seen))[:5])
    wrong = []
    for p, want in expect.items():
        got = seen[p]
        if isinstance(want, tuple):  # a pyramid file: one verdict per pyramid, indexed, all marked
            ok = [r.get("index") for r in got] == list(range(want[1])) and all(r["is_watermarked"] for r in got)
        else:
            kind = "error" if "error" in got[0] else "skipped" if "skipped" in got[0] else "verdict"
            ok = len(got) == 1 and kind == want
            if kind == "verdict":
                ok = ok and np.isfinite(got[0]["z_score"]) and got[0]["num_scored"] > 0
        if not ok:
            wrong.append((p, want, got))
    assert not wrong, wrong[:5]
    bomb_errors = [r["error"] for r in rows if "error" in r and "megapixels" in r["error"]]
    assert len(bomb_errors) == 21  # 20 hostile headers of 13,000^2 and the real 9,000^2 bomb


def test_a_folder_without_inputs_is_an_error(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path / "k.json")]) == 0
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    capsys.readouterr()
    assert main(["detect", "--key", str(tmp_path / "k.json"), str(tmp_path / "empty")]) == 2
    assert "no inputs found" in capsys.readouterr().err
    assert main(["detect", "--key", str(tmp_path / "k.json"), "--json", str(tmp_path / "texts")]) == 2
    out = capsys.readouterr()
    assert "no inputs found" in out.err and "1 entry skipped" in out.err
    assert [json.loads(line)["skipped"] for line in out.out.splitlines()] == ["not a file type read here (.txt)"]


def test_a_crash_has_its_own_exit_code(tmp_path, capsys, monkeypatch):
    """1 means 'some inputs unreadable'; an unexpected exception must not look like that."""
    from bitmark.detectors.image_detector import ImageDetector

    assert main(["keygen", "--out", str(tmp_path / "k.json")]) == 0
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")

    def bug(self, paths):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ImageDetector, "detect_files", bug)
    capsys.readouterr()
    assert main(["detect", "--key", str(tmp_path / "k.json"), str(tmp_path / "a.png")]) == 3
    assert "crashed (RuntimeError: a bug)" in capsys.readouterr().err


def test_table_output_survives_names_that_are_not_utf8(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path / "k.json")]) == 0
    (tmp_path / "d").mkdir()
    raw = os.fsencode(tmp_path / "d") + b"/\xff\xfe.png"
    Image.new("RGB", (32, 32)).save(os.fsdecode(raw), format="PNG")
    with open(os.fsencode(tmp_path / "d") + b"/bad\xff.png", "wb") as f:
        f.write(b"junk")
    capsys.readouterr()
    assert main(["detect", "--key", str(tmp_path / "k.json"), str(tmp_path / "d")]) == 1
    out = capsys.readouterr().out
    assert "\\udcff\\udcfe.png" in out and "bad\\udcff.png  error:" in out  # undecodable bytes shown as escapes


def test_a_pyramid_that_inflates_too_far_is_refused_unread(tmp_path, capsys, monkeypatch):
    from bitmark.cli import detect

    assert main(["keygen", "--out", str(tmp_path / "k.json")]) == 0
    key = WatermarkKey.load(tmp_path / "k.json")
    save_pyramid(tmp_path / "p.npz", sample_pyramid(WatermarkSampler(key), 1, seed=0))
    members = sum(i.file_size for i in zipfile.ZipFile(tmp_path / "p.npz").infolist())
    monkeypatch.setattr(detect, "MAX_NPZ_BYTES", members - 1)
    capsys.readouterr()
    assert main(["detect", "--key", str(tmp_path / "k.json"), "--json", str(tmp_path / "p.npz")]) == 1
    assert "refused without inflating" in json.loads(capsys.readouterr().out)["error"]
    monkeypatch.setattr(detect, "MAX_NPZ_BYTES", members)
    assert main(["detect", "--key", str(tmp_path / "k.json"), "--json", str(tmp_path / "p.npz")]) == 0
